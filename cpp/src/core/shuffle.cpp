#include "core/shuffle.hpp"

#include <algorithm>
#include <string>

#include "twinstream/errors.hpp"

namespace twinstream {
namespace {
std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256**: small, fast, and fully specified, so every platform draws the same order.
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t stream) {
    std::uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (auto& w : s_) w = splitmix64(x);
  }
  std::uint64_t next() {
    const std::uint64_t out = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return out;
  }
  /// Uniform in [0, n) without modulo bias (rejects the short tail of the 2^64 range).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t threshold = (0 - n) % n;
    while (true) {
      const auto r = next();
      if (r >= threshold) return r % n;
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};
}  // namespace

std::vector<std::uint64_t> seeded_permutation(std::uint64_t n, std::uint64_t seed,
                                              std::uint64_t stream) {
  std::vector<std::uint64_t> p(n);
  for (std::uint64_t i = 0; i < n; ++i) p[i] = i;
  Rng rng(seed, stream);
  for (std::uint64_t i = n; i > 1; --i) std::swap(p[i - 1], p[rng.below(i)]);  // Fisher-Yates
  return p;
}

void Shuffler::add_step(std::uint64_t index, std::uint64_t rows) {
  if (rows == 0) throw InvalidArgument("a step without samples cannot join a shuffle window");
  if (windows_.empty() || window_ready(windows_.back())) windows_.emplace_back();
  auto& w = windows_.back();
  w.steps.emplace_back(index, rows);
  if (w.steps.size() >= opt_.window) w.full = true;
  if (!delivering_) start_pass();
}

void Shuffler::finish() {
  finished_ = true;
  if (!windows_.empty() && windows_.back().steps.empty()) windows_.pop_back();
  if (!delivering_) start_pass();
}

void Shuffler::set_members(std::vector<ReaderId> members) { members_ = std::move(members); }

void Shuffler::start_pass() {
  batches_.clear();
  if (windows_.empty() || !window_ready(windows_.front())) return;
  const auto& w = windows_.front();
  if (!delivering_) {
    delivering_ = true;
    pass_in_window_ = 0;
    ++windows_started_;
  }
  std::vector<Sample> all;
  for (const auto& [index, rows] : w.steps) {
    for (std::uint64_t r = 0; r < rows; ++r) all.push_back({index, r});
  }
  // Each pass of each window draws its own order; the stream number makes passes differ.
  const auto order = seeded_permutation(all.size(), opt_.seed, passes_started_++);
  for (std::size_t i = 0; i < order.size(); i += opt_.batch_size) {
    Batch b;
    b.id = next_batch_++;
    b.pass = passes_started_ - 1;
    const auto end = std::min<std::size_t>(order.size(), i + opt_.batch_size);
    for (auto k = i; k < end; ++k) b.samples.push_back(all[order[k]]);
    const auto j = batches_.size();
    b.assigned = members_.empty() ? 0 : members_[j % members_.size()];
    batches_.push_back(std::move(b));
  }
}

Batch* Shuffler::next_for(ReaderId member) {
  for (auto& b : batches_) {
    if (b.acked || b.holder != 0) continue;
    if (b.assigned != member && b.assigned != 0) continue;
    b.holder = member;
    return &b;
  }
  return nullptr;
}

const Batch* Shuffler::held(ReaderId member, std::uint64_t id) const {
  for (const auto& b : batches_) {
    if (b.id == id) return b.holder == member && !b.acked ? &b : nullptr;
  }
  return nullptr;
}

std::vector<std::uint64_t> Shuffler::ack(ReaderId member, std::uint64_t id) {
  auto it = std::find_if(batches_.begin(), batches_.end(),
                         [&](const Batch& b) { return b.id == id; });
  if (it == batches_.end() || it->holder != member || it->acked) {
    throw ProtocolError("acknowledged batch " + std::to_string(id) + " it does not hold");
  }
  it->acked = true;
  if (!std::all_of(batches_.begin(), batches_.end(), [](const Batch& b) { return b.acked; })) {
    return {};
  }
  std::vector<std::uint64_t> released;
  if (++pass_in_window_ < opt_.passes) {
    start_pass();
    return released;
  }
  for (const auto& [index, rows] : windows_.front().steps) released.push_back(index);
  windows_.pop_front();
  delivering_ = false;
  batches_.clear();
  start_pass();
  return released;
}

void Shuffler::remove_member(ReaderId member) {
  members_.erase(std::remove(members_.begin(), members_.end(), member), members_.end());
  for (auto& b : batches_) {
    if (b.acked) continue;
    if (b.holder == member) {
      b.holder = 0;
      b.redelivered = true;
      b.assigned = 0;
    } else if (b.assigned == member) {
      b.assigned = 0;
    }
  }
}

bool Shuffler::backlogged() const {
  return delivering_ && windows_.size() >= 2 && windows_[1].full;
}

bool Shuffler::done() const { return finished_ && windows_.empty() && batches_.empty(); }

std::vector<std::uint64_t> Shuffler::steps() const {
  std::vector<std::uint64_t> out;
  for (const auto& w : windows_) {
    for (const auto& [index, rows] : w.steps) out.push_back(index);
  }
  return out;
}

}  // namespace twinstream
