#include "transport/writer_plane.hpp"

#include "core/log.hpp"
#include "transport/registry.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::transport {

WriterPlanes::WriterPlanes(WriterContext ctx, std::shared_ptr<SegmentDirectory> segments)
    : ctx_(std::move(ctx)), segments_(std::move(segments)) {
  for (const auto& e : registry()) {
    if (e.available && e.on_writer_open) e.on_writer_open(ctx_);
  }
}

bool WriterPlanes::needs_writer(const std::string& name) {
  for (const auto& e : registry()) {
    if (e.name == name) return e.make_writer != nullptr;
  }
  return false;
}

void WriterPlanes::add_segment(const std::shared_ptr<Segment>& s) {
  std::lock_guard lock(mu_);
  for (auto& [key, plane] : planes_) {
    try {
      plane->add_segment(s);
    } catch (const std::exception& e) {
      // The simulation goes on; a reader of this plane that needs the segment gets an
      // error naming it (describe() leaves it out).
      log::warn("stream '" + ctx_.stream + "': " + std::string(plane->name()) +
                " plane could not expose segment " + std::to_string(s->id()) + ": " + e.what());
    }
  }
}

void WriterPlanes::remove_segment(std::uint32_t id) {
  std::lock_guard lock(mu_);
  for (auto& [key, plane] : planes_) plane->remove_segment(id);
}

void WriterPlanes::admit(std::uint64_t reader, const std::string& name,
                         const std::string& option, wire::Welcome& welcome) {
  const auto& entry = find(name);
  if (!entry.make_writer) return;
  std::lock_guard lock(mu_);
  const std::string instance = option.substr(0, option.find('|'));
  const std::string key = name + ":" + instance;
  auto it = planes_.find(key);
  if (it == planes_.end()) {
    auto plane = entry.make_writer(ctx_, instance);
    // Segments created before this plane opened: the hub's lock keeps add/remove of
    // segments out until they are all registered (add_segment is idempotent).
    for (const auto& s : segments_->all()) plane->add_segment(s);
    it = planes_.emplace(key, std::move(plane)).first;
  }
  auto grant = it->second->admit(reader, option);
  readers_[reader] = it->second.get();
  welcome.plane_detail = std::move(grant.detail);
  welcome.plane_addresses = std::move(grant.addresses);
}

void WriterPlanes::describe(std::uint64_t reader, wire::StepMeta& step) {
  std::lock_guard lock(mu_);
  auto it = readers_.find(reader);
  if (it == readers_.end()) return;
  for (const auto& s : step.segments) {
    wire::RemoteSegment r;
    if (it->second->describe(reader, s.id, r)) step.remote.push_back(r);
  }
}

void WriterPlanes::steps_held(std::uint64_t reader, std::size_t held) {
  std::lock_guard lock(mu_);
  auto it = readers_.find(reader);
  if (it != readers_.end()) it->second->steps_held(reader, held);
}

void WriterPlanes::reader_left(std::uint64_t reader) {
  std::lock_guard lock(mu_);
  auto it = readers_.find(reader);
  if (it == readers_.end()) return;
  it->second->reader_left(reader);
  readers_.erase(it);
}

void WriterPlanes::close() {
  std::lock_guard lock(mu_);
  for (auto& [key, plane] : planes_) {
    try {
      plane->close();
    } catch (const std::exception& e) {
      log::warn("stream '" + ctx_.stream + "': closing the " + std::string(plane->name()) +
                " plane: " + e.what());
    }
  }
  readers_.clear();
  planes_.clear();
}

}  // namespace twinstream::transport
