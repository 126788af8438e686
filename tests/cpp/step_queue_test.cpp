// The writer's queue: limits, policies, holding, acks, reader removal.
#include "core/step_queue.hpp"

#include <gtest/gtest.h>

#include "twinstream/errors.hpp"

namespace twinstream {
namespace {

QueuedStep make_step(std::uint64_t index, std::set<ReaderId> readers) {
  QueuedStep s;
  s.index = index;
  s.slot = std::make_unique<Slot>();
  s.pending = std::move(readers);
  return s;
}

TEST(StepQueue, StepNobodyWaitsForIsReleasedAtOnce) {
  StepQueue q(2, QueuePolicy::Block);
  auto r = q.publish(make_step(0, {}));
  EXPECT_EQ(q.size(), 0u);
  ASSERT_EQ(r.freed.size(), 1u);
  EXPECT_TRUE(r.dropped.empty());
}

TEST(StepQueue, FullAtLimit) {
  StepQueue q(2, QueuePolicy::Block);
  q.publish(make_step(0, {1}));
  EXPECT_FALSE(q.full());
  q.publish(make_step(1, {1}));
  EXPECT_TRUE(q.full());
}

TEST(StepQueue, HandsStepsInOrderOneAtATime) {
  StepQueue q(4, QueuePolicy::Block);
  q.publish(make_step(0, {1}));
  q.publish(make_step(1, {1}));
  auto* s = q.next_for(1);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->index, 0u);
  q.hold(*s, 1);
  EXPECT_EQ(q.next_for(1)->index, 1u);  // the next one is offered only after 0
  EXPECT_NE(q.ack(1, 0), nullptr);
  EXPECT_EQ(q.size(), 1u);
}

TEST(StepQueue, ReleasedOnlyWhenEveryReaderAcked) {
  StepQueue q(2, QueuePolicy::Block);
  q.publish(make_step(0, {1, 2}));
  q.hold(*q.next_for(1), 1);
  q.hold(*q.next_for(2), 2);
  EXPECT_EQ(q.ack(1, 0), nullptr);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_NE(q.ack(2, 0), nullptr);
  EXPECT_EQ(q.size(), 0u);
}

TEST(StepQueue, ShouldRejectAckOfStepNotHeld) {
  StepQueue q(2, QueuePolicy::Block);
  q.publish(make_step(0, {1}));
  EXPECT_THROW(q.ack(1, 0), ProtocolError);  // not handed yet
  EXPECT_THROW(q.ack(1, 7), ProtocolError);  // unknown step
  q.hold(*q.next_for(1), 1);
  EXPECT_THROW(q.ack(2, 0), ProtocolError);  // another reader
}

TEST(StepQueue, DropNewestDropsTheIncomingStep) {
  StepQueue q(2, QueuePolicy::DropNewest);
  q.publish(make_step(0, {1}));
  q.publish(make_step(1, {1}));
  auto r = q.publish(make_step(2, {1, 2}));
  ASSERT_EQ(r.dropped.size(), 1u);
  EXPECT_EQ(r.dropped[0].index, 2u);
  EXPECT_EQ(r.dropped[0].readers, (std::set<ReaderId>{1, 2}));
  EXPECT_EQ(r.freed.size(), 1u);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.next_for(1)->index, 0u);
}

TEST(StepQueue, DropOldestSkipsHeldSteps) {
  StepQueue q(2, QueuePolicy::DropOldest);
  q.publish(make_step(0, {1}));
  q.publish(make_step(1, {1}));
  q.hold(*q.next_for(1), 1);  // step 0 is being read: its memory must stay
  auto r = q.publish(make_step(2, {1}));
  ASSERT_EQ(r.dropped.size(), 1u);
  EXPECT_EQ(r.dropped[0].index, 1u);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_NE(q.ack(1, 0), nullptr);
  EXPECT_EQ(q.next_for(1)->index, 2u);  // the reader sees 0, then 2
}

TEST(StepQueue, DropOldestDropsNewWhenAllHeld) {
  StepQueue q(1, QueuePolicy::DropOldest);
  q.publish(make_step(0, {1}));
  q.hold(*q.next_for(1), 1);
  auto r = q.publish(make_step(1, {1}));
  ASSERT_EQ(r.dropped.size(), 1u);
  EXPECT_EQ(r.dropped[0].index, 1u);
  EXPECT_EQ(q.size(), 1u);
}

TEST(StepQueue, RemovingAReaderReleasesWhatOnlyItOwed) {
  StepQueue q(4, QueuePolicy::Block);
  q.publish(make_step(0, {1, 2}));
  q.publish(make_step(1, {2}));
  q.hold(*q.next_for(2), 2);
  auto freed = q.remove_reader(2);
  EXPECT_EQ(freed.size(), 1u);  // step 1 was only for reader 2
  EXPECT_EQ(q.size(), 1u);
  EXPECT_TRUE(q.owes(1));
  EXPECT_FALSE(q.owes(2));
  EXPECT_EQ(q.held_by(2, 0), nullptr);
}

TEST(StepQueue, HeldByFindsOnlyTheHolder) {
  StepQueue q(2, QueuePolicy::Block);
  q.publish(make_step(5, {1, 2}));
  q.hold(*q.next_for(1), 1);
  EXPECT_NE(q.held_by(1, 5), nullptr);
  EXPECT_EQ(q.held_by(2, 5), nullptr);
  EXPECT_EQ(q.held_by(1, 6), nullptr);
}

}  // namespace
}  // namespace twinstream
