#pragma once
// The writer's queue of unacknowledged steps and the queue policies. Pure bookkeeping, no
// I/O, so that it can be tested on its own: who still owes an ack for which step, who
// holds which step (its memory must not move), which group still has to pick a member,
// what a full queue drops, what is kept for readers that join later.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "core/messages.hpp"
#include "core/segment.hpp"
#include "twinstream/attribute.hpp"
#include "twinstream/options.hpp"

namespace twinstream {

using ReaderId = std::uint64_t;
using GroupId = std::uint32_t;

struct QueuedStep {
  std::uint64_t index = 0;
  std::unique_ptr<Slot> slot;
  std::vector<wire::VariableMeta> variables;
  Attributes attributes;
  /// Stream attributes as they were when the step ended (shared between steps).
  std::shared_ptr<const Attributes> stream_attributes;
  std::uint64_t stream_attributes_version = 0;
  std::set<ReaderId> pending;      ///< readers that still owe an ack
  std::set<ReaderId> holding;      ///< readers the step was handed to (subset of pending)
  std::set<ReaderId> redelivered;  ///< readers it goes to after another member failed
  /// Groups that must still pick a member (on_demand, and re-delivery); true when the step
  /// had already been handed to a member that left.
  std::map<GroupId, bool> owed;
  std::set<GroupId> claims;  ///< shuffle groups that keep it for their batches

  bool needed() const { return !pending.empty() || !owed.empty() || !claims.empty(); }
};

class StepQueue {
 public:
  StepQueue(std::uint32_t limit, QueuePolicy policy) : limit_(limit), policy_(policy) {}

  /// A step the policy dropped (or a `latest` reader skipped), and who will never see it.
  struct Dropped {
    std::uint64_t index = 0;
    std::set<ReaderId> readers;
    std::set<GroupId> groups;
  };
  struct PublishResult {
    std::vector<Dropped> dropped;
    std::vector<std::unique_ptr<Slot>> freed;  ///< slots free for reuse
  };

  /// Steps kept after everyone acknowledged them, for readers that join later.
  void set_retention(std::uint32_t history, bool keep_first) {
    history_ = history;
    keep_first_ = keep_first;
  }
  /// `latest` readers never hold the writer back: full() ignores them.
  void set_latest(ReaderId reader) { latest_.insert(reader); }

  /// Whether a new step would exceed queue_limit (block waits while this holds). Counts
  /// the steps somebody other than a `latest` reader still needs.
  bool full() const;
  std::size_t size() const { return steps_.size(); }

  /// Queues a step. A step nobody is waiting for is released at once (or kept, under
  /// history/keep_first). When the queue is full: drop_newest drops this step; drop_oldest
  /// drops the oldest step nobody holds (this one if every queued step is held); block
  /// never gets here full. A `latest` reader skips every older step it does not hold.
  PublishResult publish(QueuedStep step);

  /// The step `reader` (member of `group`) should be handed next, marked as held; nullptr
  /// if none. Oldest first, or the newest for a `latest` reader (the older ones it skips
  /// are added to `skipped`).
  QueuedStep* take_next(ReaderId reader, GroupId group, std::vector<std::uint64_t>* skipped,
                        std::vector<std::unique_ptr<Slot>>* freed);
  /// `reader` acknowledged step `index`. Returns the slot if nobody needs the step any more.
  /// Throws ProtocolError if the reader does not hold that step.
  std::unique_ptr<Slot> ack(ReaderId reader, std::uint64_t index);
  /// The reader left or died. With `redeliver`, the steps it was given and had not
  /// acknowledged become owed by `group` again (marked as re-deliveries if it held them);
  /// otherwise it simply owes nothing any more. Returns freed slots.
  std::vector<std::unique_ptr<Slot>> remove_reader(ReaderId reader, GroupId group, bool redeliver);
  /// The group is gone (its last member left): it needs nothing any more.
  std::vector<std::unique_ptr<Slot>> remove_group(GroupId group);
  /// The shuffle group `group` is done with step `index`.
  std::unique_ptr<Slot> release_claim(GroupId group, std::uint64_t index);
  /// A newcomer: it gets the kept steps (step 0 under keep_first, the last `history`
  /// steps when `with_history`) that are still around.
  void add_newcomer(ReaderId reader, bool with_history);
  /// True when `reader` (member of `group`) could still be handed a queued step.
  /// The oldest queued step `reader` still has to be handed (kept steps for a newcomer).
  std::optional<std::uint64_t> oldest_pending(ReaderId reader) const;
  bool owes(ReaderId reader, GroupId group) const;
  /// True when a queued step is still pending for any of `members` or owed by `group`:
  /// under a re-delivering policy it may yet come to any member.
  bool owes_any(const std::vector<ReaderId>& members, GroupId group) const;
  /// The step `reader` holds with that index, or nullptr.
  QueuedStep* held_by(ReaderId reader, std::uint64_t index);
  /// The queued step with that index, or nullptr.
  QueuedStep* find(std::uint64_t index);
  /// Empties the queue (the stream is closed); returns every slot.
  std::vector<std::unique_ptr<Slot>> clear();

 private:
  bool kept(const QueuedStep& s) const;
  // Removes steps nobody needs (unless kept for newcomers) and trims the history.
  void collect(std::vector<std::unique_ptr<Slot>>& freed);
  std::unique_ptr<Slot> drop(std::deque<QueuedStep>::iterator it, PublishResult& out);

  std::uint32_t limit_;
  QueuePolicy policy_;
  std::uint32_t history_ = 0;
  bool keep_first_ = false;
  std::uint64_t newest_ = 0;  // index of the newest published step
  bool published_ = false;
  std::set<ReaderId> latest_;
  std::deque<QueuedStep> steps_;  // by index, oldest first
};

}  // namespace twinstream
