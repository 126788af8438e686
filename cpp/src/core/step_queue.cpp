#include "core/step_queue.hpp"

#include <algorithm>

#include "twinstream/errors.hpp"

namespace twinstream {

std::unique_ptr<Slot> StepQueue::drop(std::deque<QueuedStep>::iterator it, PublishResult& out) {
  out.dropped.push_back({it->index, std::move(it->pending)});
  auto slot = std::move(it->slot);
  steps_.erase(it);
  return slot;
}

StepQueue::PublishResult StepQueue::publish(QueuedStep step) {
  PublishResult out;
  if (step.pending.empty()) {
    out.freed.push_back(std::move(step.slot));
    return out;
  }
  if (full()) {
    if (policy_ == QueuePolicy::DropNewest) {
      out.dropped.push_back({step.index, std::move(step.pending)});
      out.freed.push_back(std::move(step.slot));
      return out;
    }
    if (policy_ == QueuePolicy::DropOldest) {
      auto victim = std::find_if(steps_.begin(), steps_.end(),
                                 [](const QueuedStep& s) { return s.holding.empty(); });
      if (victim == steps_.end()) {
        // Every queued step is being read right now: its memory must not be reused, so
        // the newest step is the one that goes.
        out.dropped.push_back({step.index, std::move(step.pending)});
        out.freed.push_back(std::move(step.slot));
        return out;
      }
      out.freed.push_back(drop(victim, out));
    }
  }
  steps_.push_back(std::move(step));
  return out;
}

QueuedStep* StepQueue::next_for(ReaderId reader) {
  for (auto& s : steps_) {
    if (s.pending.count(reader) && !s.holding.count(reader)) return &s;
  }
  return nullptr;
}

void StepQueue::hold(QueuedStep& step, ReaderId reader) { step.holding.insert(reader); }

QueuedStep* StepQueue::held_by(ReaderId reader, std::uint64_t index) {
  for (auto& s : steps_) {
    if (s.index == index) return s.holding.count(reader) ? &s : nullptr;
  }
  return nullptr;
}

std::unique_ptr<Slot> StepQueue::ack(ReaderId reader, std::uint64_t index) {
  auto it = std::find_if(steps_.begin(), steps_.end(),
                         [&](const QueuedStep& s) { return s.index == index; });
  if (it == steps_.end() || !it->holding.count(reader)) {
    throw ProtocolError("acknowledged step " + std::to_string(index) + " it does not hold");
  }
  it->holding.erase(reader);
  it->pending.erase(reader);
  if (!it->pending.empty()) return nullptr;
  auto slot = std::move(it->slot);
  steps_.erase(it);
  return slot;
}

std::vector<std::unique_ptr<Slot>> StepQueue::remove_reader(ReaderId reader) {
  std::vector<std::unique_ptr<Slot>> freed;
  for (auto it = steps_.begin(); it != steps_.end();) {
    it->holding.erase(reader);
    it->pending.erase(reader);
    if (it->pending.empty()) {
      freed.push_back(std::move(it->slot));
      it = steps_.erase(it);
    } else {
      ++it;
    }
  }
  return freed;
}

std::vector<std::unique_ptr<Slot>> StepQueue::clear() {
  std::vector<std::unique_ptr<Slot>> slots;
  for (auto& s : steps_) slots.push_back(std::move(s.slot));
  steps_.clear();
  return slots;
}

bool StepQueue::owes(ReaderId reader) const {
  return std::any_of(steps_.begin(), steps_.end(),
                     [&](const QueuedStep& s) { return s.pending.count(reader) > 0; });
}

}  // namespace twinstream
