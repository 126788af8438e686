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

// Hands `reader` (group 1) its next step, as the writer's pump does.
QueuedStep* take(StepQueue& q, ReaderId reader, GroupId group = 1) {
  return q.take_next(reader, group, nullptr, nullptr);
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
  auto* s = take(q, 1);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->index, 0u);
  EXPECT_EQ(take(q, 1)->index, 1u);  // then the next one
  EXPECT_EQ(take(q, 1), nullptr);
  EXPECT_NE(q.ack(1, 0), nullptr);
  EXPECT_EQ(q.size(), 1u);
}

TEST(StepQueue, ReleasedOnlyWhenEveryReaderAcked) {
  StepQueue q(2, QueuePolicy::Block);
  q.publish(make_step(0, {1, 2}));
  take(q, 1);
  take(q, 2);
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
  take(q, 1);
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
  EXPECT_EQ(take(q, 1)->index, 0u);
}

TEST(StepQueue, DropOldestSkipsHeldSteps) {
  StepQueue q(2, QueuePolicy::DropOldest);
  q.publish(make_step(0, {1}));
  q.publish(make_step(1, {1}));
  take(q, 1);  // step 0 is being read: its memory must stay
  auto r = q.publish(make_step(2, {1}));
  ASSERT_EQ(r.dropped.size(), 1u);
  EXPECT_EQ(r.dropped[0].index, 1u);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_NE(q.ack(1, 0), nullptr);
  EXPECT_EQ(take(q, 1)->index, 2u);  // the reader sees 0, then 2
}

TEST(StepQueue, DropOldestDropsNewWhenAllHeld) {
  StepQueue q(1, QueuePolicy::DropOldest);
  q.publish(make_step(0, {1}));
  take(q, 1);
  auto r = q.publish(make_step(1, {1}));
  ASSERT_EQ(r.dropped.size(), 1u);
  EXPECT_EQ(r.dropped[0].index, 1u);
  EXPECT_EQ(q.size(), 1u);
}

TEST(StepQueue, RemovingAReaderReleasesWhatOnlyItOwed) {
  StepQueue q(4, QueuePolicy::Block);
  q.publish(make_step(0, {1, 2}));
  q.publish(make_step(1, {2}));
  take(q, 2);
  auto freed = q.remove_reader(2, 1, false);
  EXPECT_EQ(freed.size(), 1u);  // step 1 was only for reader 2
  EXPECT_EQ(q.size(), 1u);
  EXPECT_TRUE(q.owes(1, 1));
  EXPECT_FALSE(q.owes(2, 2));
  EXPECT_EQ(q.held_by(2, 0), nullptr);
}

TEST(StepQueue, HeldByFindsOnlyTheHolder) {
  StepQueue q(2, QueuePolicy::Block);
  q.publish(make_step(5, {1, 2}));
  take(q, 1);
  EXPECT_NE(q.held_by(1, 5), nullptr);
  EXPECT_EQ(q.held_by(2, 5), nullptr);
  EXPECT_EQ(q.held_by(1, 6), nullptr);
}

TEST(StepQueue, OwedStepGoesToWhoeverAsksFirst) {
  StepQueue q(4, QueuePolicy::Block);
  auto s = make_step(0, {});
  s.owed[7] = false;
  q.publish(std::move(s));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_TRUE(q.owes(3, 7));
  EXPECT_EQ(take(q, 3, 8), nullptr);  // another group's member
  auto* got = take(q, 4, 7);
  ASSERT_NE(got, nullptr);
  EXPECT_TRUE(got->owed.empty());
  EXPECT_EQ(got->pending, (std::set<ReaderId>{4}));
  EXPECT_EQ(take(q, 3, 7), nullptr);  // taken once only
  EXPECT_NE(q.ack(4, 0), nullptr);
}

TEST(StepQueue, DeadMembersStepsGoBackToItsGroupMarkedIfHeld) {
  StepQueue q(4, QueuePolicy::Block);
  q.publish(make_step(0, {1}));
  q.publish(make_step(1, {1}));
  take(q, 1, 7);  // holds 0; 1 assigned but not handed
  EXPECT_TRUE(q.remove_reader(1, 7, true).empty());
  auto* a = take(q, 2, 7);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->index, 0u);
  EXPECT_TRUE(a->redelivered.count(2));  // reader 1 may have seen it
  auto* b = take(q, 2, 7);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->index, 1u);
  EXPECT_FALSE(b->redelivered.count(2));  // never handed before
  EXPECT_NE(q.ack(2, 0), nullptr);
  EXPECT_NE(q.ack(2, 1), nullptr);
}

TEST(StepQueue, LatestReaderTakesNewestAndNeverFillsTheQueue) {
  StepQueue q(2, QueuePolicy::Block);
  q.set_latest(9);
  q.publish(make_step(0, {9}));
  q.publish(make_step(1, {9}));
  EXPECT_FALSE(q.full());  // the writer never waits for a latest reader
  auto r = q.publish(make_step(2, {9}));
  ASSERT_EQ(r.dropped.size(), 1u);  // 1 replaced by 2 (0 was replaced by 1)
  EXPECT_EQ(r.dropped[0].index, 1u);
  EXPECT_EQ(q.size(), 1u);
  std::vector<std::uint64_t> skipped;
  auto* s = q.take_next(9, 1, &skipped, nullptr);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->index, 2u);
  q.publish(make_step(3, {9, 1}));  // 2 is held: kept
  q.publish(make_step(4, {9}));     // 3 not held: skipped for 9, still owed to 1
  EXPECT_NE(q.find(2), nullptr);
  EXPECT_EQ(q.find(3)->pending, (std::set<ReaderId>{1}));
}

TEST(StepQueue, HistoryAndFirstStepAreKeptForNewcomers) {
  StepQueue q(2, QueuePolicy::Block);
  q.set_retention(2, true);
  for (std::uint64_t i = 0; i < 5; ++i) {
    q.publish(make_step(i, {}));
  }
  EXPECT_FALSE(q.full());   // kept steps do not count
  EXPECT_EQ(q.size(), 3u);  // 0 (keep_first), 3 and 4 (history=2)
  q.add_newcomer(5, true);
  std::vector<std::uint64_t> seen;
  while (auto* s = take(q, 5)) seen.push_back(s->index);
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{0, 3, 4}));
  q.add_newcomer(6, false);  // first step only
  EXPECT_EQ(take(q, 6)->index, 0u);
  EXPECT_EQ(take(q, 6), nullptr);
}

TEST(StepQueue, ClaimedStepsStayUntilReleasedAndDoNotFillTheQueue) {
  StepQueue q(1, QueuePolicy::Block);
  auto s = make_step(0, {});
  s.claims.insert(3);
  q.publish(std::move(s));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.remove_group(4).size(), 0u);
  EXPECT_NE(q.release_claim(3, 0), nullptr);
  EXPECT_EQ(q.size(), 0u);
}

}  // namespace
}  // namespace twinstream
