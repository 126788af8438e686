#include "core/segment.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "core/page_memory.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {
namespace {
std::size_t align_up(std::size_t n) { return (n + kAlignment - 1) & ~(kAlignment - 1); }
}  // namespace

Segment::Segment(std::uint32_t id, std::size_t size, const std::string& shm_prefix)
    : id_(id), size_(size) {
  if (!shm_prefix.empty()) {
    shm_ = shm::SharedMemory::create(shm::segment_name(shm_prefix, id), size);
    data_ = shm_.data();
  } else {
    data_ = allocate_pages(size);
  }
}

Segment::~Segment() {
  if (!shm_.data()) free_pages(data_);
}

void SegmentDirectory::add(const std::shared_ptr<Segment>& s) {
  std::lock_guard lock(mu_);
  segments_[s->id()] = s;
}
void SegmentDirectory::remove(std::uint32_t id) {
  std::lock_guard lock(mu_);
  segments_.erase(id);
}
void SegmentDirectory::clear() {
  std::lock_guard lock(mu_);
  segments_.clear();
}
std::shared_ptr<Segment> SegmentDirectory::find(std::uint32_t id) const {
  std::lock_guard lock(mu_);
  auto it = segments_.find(id);
  return it == segments_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Segment>> SegmentDirectory::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Segment>> out;
  for (const auto& [id, s] : segments_) out.push_back(s);
  return out;
}

void Slot::reset(const NewSegment& make, std::vector<std::uint32_t>& retired) {
  if (segments_.size() > 1) {
    std::size_t total = 0;
    for (const auto& s : segments_) {
      total += s->size();
      retired.push_back(s->id());
    }
    segments_.clear();
    segments_.push_back(make(total));
  }
  used_.assign(segments_.size(), 0);
  used_total_ = 0;
}

Allocation Slot::allocate(std::size_t bytes, const NewSegment& make) {
  const std::size_t need = align_up(bytes == 0 ? 1 : bytes);
  for (std::size_t i = 0; i < segments_.size(); ++i) {
    if (segments_[i]->size() - used_[i] >= need) {
      Allocation a{segments_[i]->id(), used_[i], segments_[i]->data() + used_[i]};
      used_[i] += need;
      used_total_ += need;
      return a;
    }
  }
  // Grow geometrically so a step of many puts needs few segments.
  std::size_t capacity = 0;
  for (const auto& s : segments_) capacity += s->size();
  segments_.push_back(make(std::max(need, capacity)));
  used_.push_back(need);
  used_total_ += need;
  return {segments_.back()->id(), 0, segments_.back()->data()};
}

}  // namespace twinstream
