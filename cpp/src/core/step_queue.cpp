#include "core/step_queue.hpp"

#include <algorithm>

#include "twinstream/errors.hpp"

namespace twinstream {

bool StepQueue::kept(const QueuedStep& s) const {
  return (keep_first_ && s.index == 0) || (history_ > 0 && s.index + history_ > newest_);
}

bool StepQueue::full() const {
  std::size_t n = 0;
  for (const auto& s : steps_) {
    const bool counts =
        !s.owed.empty() || std::any_of(s.pending.begin(), s.pending.end(),
                                       [&](ReaderId r) { return !latest_.count(r); });
    n += counts ? 1 : 0;
  }
  return n >= limit_;
}

void StepQueue::collect(std::vector<std::unique_ptr<Slot>>& freed) {
  for (auto it = steps_.begin(); it != steps_.end();) {
    if (!it->needed() && !kept(*it)) {
      freed.push_back(std::move(it->slot));
      it = steps_.erase(it);
    } else {
      ++it;
    }
  }
}

std::unique_ptr<Slot> StepQueue::drop(std::deque<QueuedStep>::iterator it, PublishResult& out) {
  Dropped d{it->index, std::move(it->pending), {}};
  for (const auto& [g, again] : it->owed) d.groups.insert(g);
  out.dropped.push_back(std::move(d));
  auto slot = std::move(it->slot);
  steps_.erase(it);
  return slot;
}

StepQueue::PublishResult StepQueue::publish(QueuedStep step) {
  PublishResult out;
  newest_ = step.index;
  // A `latest` reader never catches up on old steps: the new one replaces every older step
  // it has not started reading.
  for (auto r : latest_) {
    for (auto& s : steps_) {
      if (s.pending.count(r) && !s.holding.count(r)) {
        s.pending.erase(r);
        out.dropped.push_back({s.index, {r}, {}});
      }
    }
  }
  if (step.needed() && full()) {
    if (policy_ == QueuePolicy::DropNewest) {
      Dropped d{step.index, std::move(step.pending), {}};
      for (const auto& [g, again] : step.owed) d.groups.insert(g);
      out.dropped.push_back(std::move(d));
      step.pending.clear();
      step.owed.clear();
      step.claims.clear();
    } else if (policy_ == QueuePolicy::DropOldest) {
      auto victim = std::find_if(steps_.begin(), steps_.end(), [](const QueuedStep& s) {
        return s.needed() && s.holding.empty() && s.claims.empty();
      });
      if (victim == steps_.end()) {
        // Every queued step is being read right now: its memory must not be reused, so
        // the newest step is the one that goes.
        Dropped d{step.index, std::move(step.pending), {}};
        for (const auto& [g, again] : step.owed) d.groups.insert(g);
        out.dropped.push_back(std::move(d));
        step.pending.clear();
        step.owed.clear();
        step.claims.clear();
      } else {
        out.freed.push_back(drop(victim, out));
      }
    }
  }
  if (step.needed() || kept(step)) {
    steps_.push_back(std::move(step));
  } else {
    out.freed.push_back(std::move(step.slot));
  }
  collect(out.freed);
  return out;
}

QueuedStep* StepQueue::take_next(ReaderId reader, GroupId group,
                                 std::vector<std::uint64_t>* skipped,
                                 std::vector<std::unique_ptr<Slot>>* freed) {
  auto eligible = [&](const QueuedStep& s) {
    return (s.pending.count(reader) && !s.holding.count(reader)) || s.owed.count(group);
  };
  const bool latest = latest_.count(reader) > 0;
  const QueuedStep* pick = nullptr;
  for (const auto& s : steps_) {
    if (!eligible(s)) continue;
    pick = &s;
    if (!latest) break;  // oldest first; a latest reader keeps looking for the newest
  }
  if (!pick) return nullptr;
  const std::uint64_t index = pick->index;
  if (latest) {
    for (auto& s : steps_) {
      if (s.index < index && s.pending.count(reader) && !s.holding.count(reader)) {
        s.pending.erase(reader);
        if (skipped) skipped->push_back(s.index);
      }
    }
    std::vector<std::unique_ptr<Slot>> gone;
    collect(freed ? *freed : gone);
  }
  QueuedStep* s = find(index);
  if (auto it = s->owed.find(group); it != s->owed.end() && !s->pending.count(reader)) {
    if (it->second) s->redelivered.insert(reader);
    s->owed.erase(it);
    s->pending.insert(reader);
  }
  s->holding.insert(reader);
  return s;
}

QueuedStep* StepQueue::find(std::uint64_t index) {
  for (auto& s : steps_) {
    if (s.index == index) return &s;
  }
  return nullptr;
}

QueuedStep* StepQueue::held_by(ReaderId reader, std::uint64_t index) {
  auto* s = find(index);
  return s && s->holding.count(reader) ? s : nullptr;
}

std::unique_ptr<Slot> StepQueue::ack(ReaderId reader, std::uint64_t index) {
  auto it = std::find_if(steps_.begin(), steps_.end(),
                         [&](const QueuedStep& s) { return s.index == index; });
  if (it == steps_.end() || !it->holding.count(reader)) {
    throw ProtocolError("acknowledged step " + std::to_string(index) + " it does not hold");
  }
  it->holding.erase(reader);
  it->pending.erase(reader);
  it->redelivered.erase(reader);
  if (it->needed() || kept(*it)) return nullptr;
  auto slot = std::move(it->slot);
  steps_.erase(it);
  return slot;
}

std::vector<std::unique_ptr<Slot>> StepQueue::remove_reader(ReaderId reader, GroupId group,
                                                            bool redeliver) {
  latest_.erase(reader);
  for (auto& s : steps_) {
    const bool held = s.holding.erase(reader) > 0;
    const bool owed = s.pending.erase(reader) > 0;
    s.redelivered.erase(reader);
    if (owed && redeliver) {
      // Handed and not acknowledged: the member may have seen it, so the next one is told.
      auto [it, fresh] = s.owed.emplace(group, held);
      if (!fresh) it->second = it->second || held;
    }
  }
  std::vector<std::unique_ptr<Slot>> freed;
  collect(freed);
  return freed;
}

std::vector<std::unique_ptr<Slot>> StepQueue::remove_group(GroupId group) {
  for (auto& s : steps_) {
    s.owed.erase(group);
    s.claims.erase(group);
  }
  std::vector<std::unique_ptr<Slot>> freed;
  collect(freed);
  return freed;
}

std::unique_ptr<Slot> StepQueue::release_claim(GroupId group, std::uint64_t index) {
  auto it = std::find_if(steps_.begin(), steps_.end(),
                         [&](const QueuedStep& s) { return s.index == index; });
  if (it == steps_.end()) return nullptr;
  it->claims.erase(group);
  if (it->needed() || kept(*it)) return nullptr;
  auto slot = std::move(it->slot);
  steps_.erase(it);
  return slot;
}

void StepQueue::add_newcomer(ReaderId reader, bool with_history) {
  for (auto& s : steps_) {
    const bool first = keep_first_ && s.index == 0;
    const bool recent = with_history && history_ > 0 && s.index + history_ > newest_;
    if (first || recent) s.pending.insert(reader);
  }
}

std::vector<std::unique_ptr<Slot>> StepQueue::clear() {
  std::vector<std::unique_ptr<Slot>> slots;
  for (auto& s : steps_) slots.push_back(std::move(s.slot));
  steps_.clear();
  return slots;
}

std::optional<std::uint64_t> StepQueue::oldest_pending(ReaderId reader) const {
  for (const auto& s : steps_) {
    if (s.pending.count(reader)) return s.index;
  }
  return std::nullopt;
}

bool StepQueue::owes(ReaderId reader, GroupId group) const {
  return std::any_of(steps_.begin(), steps_.end(), [&](const QueuedStep& s) {
    return s.pending.count(reader) > 0 || s.owed.count(group) > 0;
  });
}

bool StepQueue::owes_any(const std::vector<ReaderId>& members, GroupId group) const {
  return std::any_of(steps_.begin(), steps_.end(), [&](const QueuedStep& s) {
    if (s.owed.count(group)) return true;
    return std::any_of(members.begin(), members.end(),
                       [&](ReaderId r) { return s.pending.count(r) > 0; });
  });
}

}  // namespace twinstream
