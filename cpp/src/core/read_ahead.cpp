#include "core/read_ahead.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

namespace twinstream {

ReadAhead::ReadAhead(transport::DataPlaneReader& plane, std::shared_ptr<BufferPool> buffers)
    : plane_(plane), buffers_(std::move(buffers)) {}

void ReadAhead::learn(const wire::StepMeta& held, std::span<const transport::Copy> copies) {
  if (blocks_of_ != held.index) {
    blocks_.clear();
    for (std::uint32_t v = 0; v < held.variables.size(); ++v) {
      const auto& blocks = held.variables[v].blocks;
      for (std::uint32_t b = 0; b < blocks.size(); ++b) {
        const auto& m = blocks[b];
        if (m.nbytes > 0) blocks_.push_back({m.segment, m.offset, m.offset + m.nbytes, v, b});
      }
    }
    std::sort(blocks_.begin(), blocks_.end(), [](const Located& a, const Located& b) {
      return std::tie(a.segment, a.begin) < std::tie(b.segment, b.begin);
    });
    blocks_of_ = held.index;
  }
  for (const auto& c : copies) {
    // The last block starting at or before the piece.
    auto it = std::upper_bound(blocks_.begin(), blocks_.end(), c, [](const auto& c, const Located& l) {
      return std::tie(c.segment, c.offset) < std::tie(l.segment, l.begin);
    });
    if (it == blocks_.begin()) continue;
    --it;
    if (it->segment != c.segment || c.offset + c.length > it->end) continue;  // not a block's
    const auto& var = held.variables[it->variable];
    learned_.insert({var.name, it->block, it->end - it->begin, c.offset - it->begin, c.length});
  }
}

bool ReadAhead::start(const wire::StepMeta& next) {
  const auto& pattern = learned_before_.empty() ? learned_ : learned_before_;
  std::map<std::string_view, const wire::VariableMeta*> vars;
  for (const auto& v : next.variables) vars.emplace(v.name, &v);
  // Lay the pieces out 64 bytes apart, as the places they are copied to often are.
  std::vector<transport::Copy> copies;
  std::uint64_t total = 0;
  for (const auto& p : pattern) {
    auto v = vars.find(p.variable);
    if (v == vars.end() || p.block >= v->second->blocks.size()) continue;
    const auto& m = v->second->blocks[p.block];
    if (m.nbytes != p.block_bytes) continue;  // another shape: read it when asked
    copies.push_back({m.segment, m.offset + p.offset, reinterpret_cast<std::byte*>(total), p.length});
    total += (p.length + 63) / 64 * 64;
  }
  if (copies.empty()) return false;
  Batch b;
  // A fresh buffer each step, so that an array view() handed out keeps its values while
  // the reader keeps it. The plane has finished or abandoned every read into a buffer
  // before it goes back: the reader destroys its plane first (ReaderSource::close).
  b.buffer = buffers_->acquire(total);
  for (auto& c : copies) {
    const auto at = reinterpret_cast<std::uint64_t>(c.dst);
    c.dst = b.buffer.get() + at;
    b.pieces.emplace(Where{c.segment, c.offset, c.length}, Batch::At{at, false});
    b.bytes += c.length;
  }
  try {
    b.ticket = plane_.start_read(next.index, copies);
  } catch (...) {
    keep_forever(b.buffer);  // the pieces started before the failure may still land
    throw;
  }
  b.step = next.index;
  b.active = true;
  ahead_.push_back(std::move(b));
  return true;
}

void ReadAhead::prepare(const wire::StepMeta& held, std::span<const transport::Copy> copies,
                        const Peek& peek) {
  learn(held, copies);
  // Steps are read ahead in order: one that cannot be (not announced yet, nothing to
  // read) stops the look further out until the next read.
  while (tried_ < kPreloadDepth && ahead_.size() == tried_) {
    const auto* next = peek(tried_ + 1);
    if (!next) return;
    ++tried_;
    if (!start(*next)) return;
  }
}

std::shared_ptr<const std::byte> ReadAhead::view(const wire::StepMeta& held,
                                                 std::uint32_t segment, std::uint64_t offset,
                                                 std::uint64_t length, const Peek& peek) {
  const transport::Copy piece{segment, offset, nullptr, length};
  prepare(held, {&piece, 1}, peek);
  if (!held_.active) return nullptr;
  auto it = held_.pieces.find(Where{segment, offset, length});
  if (it == held_.pieces.end()) return nullptr;
  land(held_);
  return {held_.buffer, take(it->second, length)};
}

const std::byte* ReadAhead::take(Batch::At& at, std::uint64_t length) {
  if (!at.used) held_.used += length;
  at.used = true;
  served_ += length;
  return held_.buffer.get() + at.offset;
}

void ReadAhead::read(const wire::StepMeta& held, std::span<const transport::Copy> copies,
                     const Peek& peek) {
  prepare(held, copies, peek);
  std::vector<std::pair<Batch::At*, const transport::Copy*>> served;
  std::vector<transport::Copy> rest;
  for (const auto& c : copies) {
    auto it = held_.active ? held_.pieces.find(Where{c.segment, c.offset, c.length})
                           : held_.pieces.end();
    if (it != held_.pieces.end()) {
      served.emplace_back(&it->second, &c);
    } else {
      rest.push_back(c);
    }
  }
  // The pieces not read ahead start first, and travel while this thread copies.
  const auto ticket = rest.empty() ? 0 : plane_.start_read(held.index, rest);
  if (!served.empty()) {
    land(held_);
    for (auto [at, c] : served) std::memcpy(c->dst, take(*at, c->length), c->length);
  }
  if (!rest.empty()) plane_.finish_read(ticket);
}

void ReadAhead::land(Batch& b) {
  if (b.landed) return;
  plane_.finish_read(b.ticket);
  b.landed = true;
}

void ReadAhead::land_all() {
  if (held_.active) land(held_);
  for (auto& b : ahead_) land(b);
}

void ReadAhead::keep_forever(std::shared_ptr<std::byte> buffer) {
  static std::mutex mu;
  static std::vector<std::shared_ptr<std::byte>> kept;
  std::lock_guard lock(mu);
  kept.push_back(std::move(buffer));
}

void ReadAhead::abandon() {
  if (held_.active && !held_.landed) keep_forever(held_.buffer);
  for (const auto& b : ahead_) {
    if (!b.landed) keep_forever(b.buffer);
  }
}

void ReadAhead::retire(Batch& b) {
  if (!b.active) return;
  land(b);
  unused_ += b.bytes - b.used;
  b.active = false;
  b.pieces.clear();
  b.buffer.reset();
}

void ReadAhead::begin_step(std::uint64_t index) {
  retire(held_);
  // The steps begin in the order they were announced: the first read ahead is this one.
  if (!ahead_.empty() && ahead_.front().step == index) {
    held_ = std::move(ahead_.front());
    ahead_.pop_front();
  } else {
    while (!ahead_.empty()) {
      retire(ahead_.front());
      ahead_.pop_front();
    }
  }
  tried_ = ahead_.size();
}

void ReadAhead::end_step() {
  retire(held_);
  learned_before_ = std::move(learned_);
  learned_.clear();
}

}  // namespace twinstream
