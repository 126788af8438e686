#pragma once
// The writer's queue of unacknowledged steps and the queue policies. Pure bookkeeping, no
// I/O, so that it can be tested on its own: who still owes an ack for which step, who
// holds which step (its memory must not move), what a full queue drops.
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <vector>

#include "core/messages.hpp"
#include "core/segment.hpp"
#include "twinstream/attribute.hpp"
#include "twinstream/options.hpp"

namespace twinstream {

using ReaderId = std::uint64_t;

struct QueuedStep {
  std::uint64_t index = 0;
  std::unique_ptr<Slot> slot;
  std::vector<wire::VariableMeta> variables;
  Attributes attributes;
  /// Stream attributes as they were when the step ended (shared between steps).
  std::shared_ptr<const Attributes> stream_attributes;
  std::uint64_t stream_attributes_version = 0;
  std::set<ReaderId> pending;  ///< readers that still owe an ack
  std::set<ReaderId> holding;  ///< readers the step was handed to (subset of pending)
};

class StepQueue {
 public:
  StepQueue(std::uint32_t limit, QueuePolicy policy) : limit_(limit), policy_(policy) {}

  /// A step the policy dropped, and the readers that will never see it.
  struct Dropped {
    std::uint64_t index = 0;
    std::set<ReaderId> readers;
  };
  struct PublishResult {
    std::vector<Dropped> dropped;
    std::vector<std::unique_ptr<Slot>> freed;  ///< slots free for reuse
  };

  /// Whether a new step would exceed queue_limit (block waits while this holds).
  bool full() const { return steps_.size() >= limit_; }
  std::size_t size() const { return steps_.size(); }

  /// Queues a step. A step nobody is waiting for is released at once. When the queue is
  /// full: drop_newest drops this step; drop_oldest drops the oldest step no reader holds
  /// (this one if every queued step is held); block never gets here full.
  PublishResult publish(QueuedStep step);

  /// The oldest step `reader` owes an ack for and does not hold yet; nullptr if none.
  QueuedStep* next_for(ReaderId reader);
  /// Marks `step` as handed to `reader`.
  void hold(QueuedStep& step, ReaderId reader);
  /// `reader` acknowledged step `index`. Returns the slot if nobody owes an ack any more.
  /// Throws ProtocolError if the reader does not hold that step.
  std::unique_ptr<Slot> ack(ReaderId reader, std::uint64_t index);
  /// The reader left or died: it owes nothing any more. Returns freed slots.
  std::vector<std::unique_ptr<Slot>> remove_reader(ReaderId reader);
  /// True when `reader` owes an ack for any queued step.
  bool owes(ReaderId reader) const;
  /// The step `reader` holds with that index, or nullptr.
  QueuedStep* held_by(ReaderId reader, std::uint64_t index);
  /// Empties the queue (the stream is closed); returns every slot.
  std::vector<std::unique_ptr<Slot>> clear();

 private:
  std::unique_ptr<Slot> drop(std::deque<QueuedStep>::iterator it, PublishResult& out);

  std::uint32_t limit_;
  QueuePolicy policy_;
  std::deque<QueuedStep> steps_;  // by index, oldest first
};

}  // namespace twinstream
