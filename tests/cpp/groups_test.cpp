// Reader groups, the shuffle bookkeeping and shuffle batches as steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "core/batches.hpp"
#include "core/reader_group.hpp"
#include "core/shuffle.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {
namespace {

TEST(ReaderGroups, RoundRobinGivesStepKToMemberKModN) {
  ReaderGroups g;
  g.join("train", "round_robin", 1, false, {});
  g.join("train", "round_robin", 2, false, {});
  g.join("train", "round_robin", 3, false, {});
  for (std::uint64_t k = 0; k < 9; ++k) {
    EXPECT_EQ(g.recipients(k).readers, (std::set<ReaderId>{1 + k % 3})) << k;
  }
  g.leave(2);  // rebalanced from the next step
  EXPECT_EQ(g.recipients(4).readers, (std::set<ReaderId>{1}));
  EXPECT_EQ(g.recipients(5).readers, (std::set<ReaderId>{3}));
}

TEST(ReaderGroups, EveryGroupSeesTheWholeStream) {
  ReaderGroups g;
  g.join("viz", "all", 1, false, {});
  g.join("viz", "all", 2, false, {});
  g.join("train", "on_demand", 3, false, {});
  g.join("mix", "shuffle", 4, false, {});
  auto r = g.recipients(0);
  EXPECT_EQ(r.readers, (std::set<ReaderId>{1, 2}));
  EXPECT_EQ(r.owed.size(), 1u);
  EXPECT_EQ(r.claims.size(), 1u);
}

TEST(ReaderGroups, LaterMembersMustAgree) {
  ReaderGroups g;
  ShuffleOptions a;
  a.seed = 1;
  g.join("t", "shuffle", 1, false, a);
  EXPECT_THROW(g.join("t", "on_demand", 2, false, {}), InvalidArgument);
  ShuffleOptions b = a;
  b.batch_size = 7;
  EXPECT_THROW(g.join("t", "shuffle", 2, false, b), InvalidArgument);
  EXPECT_NO_THROW(g.join("t", "shuffle", 2, false, a));
  EXPECT_THROW(g.join("r", "round_robin", 3, true, {}), InvalidArgument);  // latest
  EXPECT_THROW(g.join("x", "fastest", 4, false, {}), InvalidArgument);
}

TEST(ReaderGroups, LastMemberLeavingRemovesTheGroup) {
  ReaderGroups g;
  const auto id = g.join("t", "on_demand", 1, false, {});
  g.join("t", "on_demand", 2, false, {});
  EXPECT_FALSE(g.leave(1).has_value());
  EXPECT_EQ(g.leave(2), id);
  EXPECT_EQ(g.groups(), 0u);
}

TEST(Shuffle, PermutationIsAPermutationAndDependsOnSeedAndStream) {
  const auto p = seeded_permutation(1000, 42, 0);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (std::uint64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(p, seeded_permutation(1000, 42, 0));
  EXPECT_NE(p, seeded_permutation(1000, 43, 0));
  EXPECT_NE(p, seeded_permutation(1000, 42, 1));
}

// Drains every batch through `members` in turn, acking each; returns released steps.
std::vector<std::uint64_t> drain(Shuffler& s, const std::vector<ReaderId>& members,
                                 std::map<std::uint32_t, std::vector<Sample>>* per_pass) {
  std::vector<std::uint64_t> released;
  for (int guard = 0; guard < 100000; ++guard) {
    bool any = false;
    for (auto m : members) {
      if (auto* b = s.next_for(m)) {
        any = true;
        if (per_pass) {
          auto& v = (*per_pass)[b->pass];
          v.insert(v.end(), b->samples.begin(), b->samples.end());
        }
        for (auto i : s.ack(m, b->id)) released.push_back(i);
      }
    }
    if (!any) break;
  }
  return released;
}

TEST(Shuffle, EverySampleExactlyOncePerPass) {
  ShuffleOptions o;
  o.window = 3;
  o.batch_size = 4;
  o.passes = 2;
  Shuffler s(o);
  s.set_members({1, 2});
  for (std::uint64_t i = 0; i < 3; ++i) s.add_step(i, 5);  // 15 samples
  std::map<std::uint32_t, std::vector<Sample>> seen;
  const auto released = drain(s, {1, 2}, &seen);
  EXPECT_EQ(released, (std::vector<std::uint64_t>{0, 1, 2}));
  ASSERT_EQ(seen.size(), 2u);
  for (auto& [pass, samples] : seen) {
    ASSERT_EQ(samples.size(), 15u) << pass;
    std::set<std::pair<std::uint64_t, std::uint64_t>> unique;
    for (auto& x : samples) unique.insert({x.step, x.row});
    EXPECT_EQ(unique.size(), 15u) << pass;
  }
  EXPECT_NE(seen[0], seen[1]);  // each pass draws its own order
}

TEST(Shuffle, SameSeedAndMembersGiveEachMemberTheSameSequence) {
  auto run = [](std::uint64_t seed) {
    ShuffleOptions o;
    o.window = 2;
    o.batch_size = 3;
    o.seed = seed;
    Shuffler s(o);
    s.set_members({10, 20});
    s.add_step(0, 7);
    s.add_step(1, 7);
    std::map<ReaderId, std::vector<Sample>> got;
    for (int round = 0; round < 10; ++round) {
      for (ReaderId m : {20, 10}) {  // the order members ask in does not matter
        if (auto* b = s.next_for(m)) {
          got[m].insert(got[m].end(), b->samples.begin(), b->samples.end());
          s.ack(m, b->id);
        }
      }
    }
    return got;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

TEST(Shuffle, WindowsFillWhileTheCurrentOneIsDeliveredThenBacklog) {
  ShuffleOptions o;
  o.window = 2;
  o.batch_size = 10;
  Shuffler s(o);
  s.set_members({1});
  s.add_step(0, 2);
  EXPECT_EQ(s.next_for(1), nullptr);  // window not full yet
  s.add_step(1, 2);
  auto* b = s.next_for(1);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->samples.size(), 4u);
  s.add_step(2, 2);
  EXPECT_FALSE(s.backlogged());
  s.add_step(3, 2);
  EXPECT_TRUE(s.backlogged());  // a blocking writer waits now
  EXPECT_EQ(s.ack(1, b->id), (std::vector<std::uint64_t>{0, 1}));
  EXPECT_FALSE(s.backlogged());
  s.finish();
  EXPECT_EQ(drain(s, {1}, nullptr), (std::vector<std::uint64_t>{2, 3}));
  EXPECT_TRUE(s.done());
}

TEST(Shuffle, PartialLastWindowIsDeliveredAtTheEnd) {
  ShuffleOptions o;
  o.window = 4;
  o.batch_size = 2;
  Shuffler s(o);
  s.set_members({1});
  s.add_step(0, 3);
  EXPECT_EQ(s.next_for(1), nullptr);
  s.finish();
  std::map<std::uint32_t, std::vector<Sample>> seen;
  EXPECT_EQ(drain(s, {1}, &seen), (std::vector<std::uint64_t>{0}));
  EXPECT_EQ(seen[0].size(), 3u);  // batches of 2 and 1
  EXPECT_TRUE(s.done());
}

TEST(Shuffle, ALeavingMembersBatchesAreRedelivered) {
  ShuffleOptions o;
  o.window = 1;
  o.batch_size = 1;
  Shuffler s(o);
  s.set_members({1, 2});
  s.add_step(0, 4);
  auto* b1 = s.next_for(1);
  ASSERT_NE(b1, nullptr);
  const auto held_id = b1->id;
  s.remove_member(1);
  std::vector<bool> redelivered;
  std::set<std::uint64_t> ids;
  while (auto* b = s.next_for(2)) {
    redelivered.push_back(b->redelivered && b->id == held_id);
    ids.insert(b->id);
    s.ack(2, b->id);
  }
  EXPECT_EQ(ids.size(), 4u);  // all four batches reach member 2
  EXPECT_EQ(std::count(redelivered.begin(), redelivered.end(), true), 1);
  EXPECT_THROW(s.ack(2, 99), ProtocolError);
}

wire::VariableMeta var(const std::string& name, Dims shape, std::vector<wire::BlockMeta> blocks) {
  wire::VariableMeta v;
  v.name = name;
  v.dtype = DType::Float32;
  v.shape = std::move(shape);
  v.blocks = std::move(blocks);
  return v;
}

TEST(Batches, RowsComeFromTheBlocksThatHoldThem) {
  // x is (4, 3) float32 in two blocks of two rows; y is (4,) in one block.
  std::vector<wire::VariableMeta> step{
      var("x", {4, 3}, {{{0, 0}, {2, 3}, 1, 0, 24}, {{2, 0}, {2, 3}, 1, 100, 24}}),
      var("y", {4}, {{{0}, {4}, 2, 0, 16}}),
      var("scalar", {}, {{{}, {}, 2, 64, 4}})};
  SampleSignature sig;
  std::string why;
  EXPECT_EQ(sample_rows({}, step, sig, &why), 4u);
  ASSERT_EQ(sig.vars.size(), 2u);  // the scalar is not sampled
  const auto vars = batch_variables(sig, {{0, 3}, {0, 0}}, [&](std::uint64_t) -> auto& {
    return step;
  });
  ASSERT_EQ(vars.size(), 2u);
  EXPECT_EQ(vars[0].shape, (Dims{2, 3}));
  ASSERT_EQ(vars[0].blocks.size(), 2u);
  EXPECT_EQ(vars[0].blocks[0].offset, 100u + 12u);  // row 3 = second row of block 2
  EXPECT_EQ(vars[0].blocks[0].start, (Dims{0, 0}));
  EXPECT_EQ(vars[0].blocks[1].offset, 0u);
  EXPECT_EQ(vars[0].blocks[1].start, (Dims{1, 0}));
  EXPECT_EQ(vars[1].blocks[0].offset, 12u);
  EXPECT_EQ(vars[1].blocks[0].nbytes, 4u);

  std::vector<wire::VariableMeta> other{var("x", {4, 5}, {}), var("y", {4}, {})};
  EXPECT_EQ(sample_rows({}, other, sig, &why), 0u);  // row shape changed
  EXPECT_NE(why.find("'x'"), std::string::npos);
  ShuffleOptions named;
  named.variables = {"z"};
  SampleSignature sig2;
  EXPECT_EQ(sample_rows(named, step, sig2, &why), 0u);
  EXPECT_NE(why.find("'z'"), std::string::npos);
}

TEST(Batches, SampleIdsAreStepAndRow) {
  const auto a = sample_ids({{7, 1}, {9, 4}});
  EXPECT_EQ(a.shape, (Dims{2, 2}));
  std::int64_t v[4];
  std::memcpy(v, a.bytes.data(), sizeof v);
  EXPECT_EQ(v[0], 7);
  EXPECT_EQ(v[1], 1);
  EXPECT_EQ(v[2], 9);
  EXPECT_EQ(v[3], 4);
}

}  // namespace
}  // namespace twinstream
