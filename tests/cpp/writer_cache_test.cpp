// The writer-side cache: its byte bound holds whatever is asked of it, least recently
// used entries go first, entries a reader holds are never evicted, and the counters say
// what happened.
#include "core/writer_cache.hpp"

#include <gtest/gtest.h>

namespace twinstream {
namespace {

constexpr std::uint64_t kPage = 4096;

struct Fixture {
  WriterCache cache;
  std::uint32_t next_segment = 1;
  std::vector<std::shared_ptr<Segment>> gone;

  explicit Fixture(std::uint64_t max_bytes) : cache(max_bytes) {}

  // A miss followed by a kept result of `pages` pages, as the writer does it.
  bool add(std::uint64_t step, const std::string& var, std::uint64_t pages,
           const std::string& pipeline = "cast(to=float16)") {
    const WriterCacheKey key{step, var, pipeline};
    EXPECT_EQ(cache.lookup(key), nullptr);
    const auto charge = writer_cache_charge(pages * kPage);
    if (!cache.make_room(charge, gone)) return false;
    auto r = std::make_shared<WriterCacheResult>();
    r->segment = std::make_shared<Segment>(next_segment++, charge, "");
    r->bytes = pages * kPage;
    cache.insert(key, r, charge);
    EXPECT_LE(cache.counters().bytes, cache.counters().max_bytes);
    return true;
  }
};

TEST(WriterCache, ChargesWholePagesAtLeastOne) {
  EXPECT_EQ(writer_cache_charge(0), kPage);
  EXPECT_EQ(writer_cache_charge(1), kPage);
  EXPECT_EQ(writer_cache_charge(kPage), kPage);
  EXPECT_EQ(writer_cache_charge(kPage + 1), 2 * kPage);
}

TEST(WriterCache, HitPinsAndMovesToFront) {
  Fixture f(10 * kPage);
  ASSERT_TRUE(f.add(0, "x", 1));
  ASSERT_TRUE(f.add(1, "x", 1));
  f.cache.unpin({0, "x", "cast(to=float16)"});
  f.cache.unpin({1, "x", "cast(to=float16)"});
  const WriterCacheKey k0{0, "x", "cast(to=float16)"};
  auto hit = f.cache.lookup(k0);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->bytes, kPage);
  EXPECT_EQ(f.cache.pins(k0), 1u);
  EXPECT_EQ(f.cache.keys().front(), k0);
  EXPECT_EQ(f.cache.counters().hits, 1u);
  EXPECT_EQ(f.cache.counters().misses, 2u);
  // Another pipeline or variable of the same step is another entry.
  EXPECT_EQ(f.cache.lookup({0, "x", "log1p"}), nullptr);
  EXPECT_EQ(f.cache.lookup({0, "y", "cast(to=float16)"}), nullptr);
  EXPECT_EQ(f.cache.counters().misses, 4u);
}

TEST(WriterCache, EvictsLeastRecentlyUsedUnpinnedFirst) {
  Fixture f(3 * kPage);
  for (std::uint64_t s = 0; s < 3; ++s) {
    ASSERT_TRUE(f.add(s, "x", 1));
    f.cache.unpin({s, "x", "cast(to=float16)"});
  }
  // Step 0 used again: step 1 is now the least recently used.
  f.cache.unpin({0, "x", "cast(to=float16)"});
  ASSERT_NE(f.cache.lookup({0, "x", "cast(to=float16)"}), nullptr);
  f.cache.unpin({0, "x", "cast(to=float16)"});
  ASSERT_TRUE(f.add(3, "x", 1));
  EXPECT_EQ(f.cache.counters().evictions, 1u);
  ASSERT_EQ(f.gone.size(), 1u);
  EXPECT_EQ(f.gone[0]->id(), 2u);  // step 1's segment
  const auto keys = f.cache.keys();
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0].step, 3u);
  EXPECT_EQ(keys[1].step, 0u);
  EXPECT_EQ(keys[2].step, 2u);
  EXPECT_EQ(f.cache.counters().bytes, 3 * kPage);
}

TEST(WriterCache, PinnedEntriesAreNeverEvicted) {
  Fixture f(3 * kPage);
  ASSERT_TRUE(f.add(0, "x", 1));  // stays pinned
  ASSERT_TRUE(f.add(1, "x", 1));
  f.cache.unpin({1, "x", "cast(to=float16)"});
  ASSERT_TRUE(f.add(2, "x", 1));  // pinned
  // Two pages wanted, one unpinned page can go: refused, and nothing evicted for it.
  EXPECT_FALSE(f.add(3, "x", 2));
  EXPECT_EQ(f.cache.counters().rejected, 1u);
  EXPECT_EQ(f.cache.counters().evictions, 0u);
  EXPECT_EQ(f.cache.counters().entries, 3u);
  // One page fits by evicting the unpinned step 1, never the pinned step 0.
  ASSERT_TRUE(f.add(4, "x", 1));
  EXPECT_EQ(f.cache.counters().evictions, 1u);
  ASSERT_EQ(f.gone.size(), 1u);
  EXPECT_EQ(f.gone[0]->id(), 2u);
  EXPECT_EQ(f.cache.pins({0, "x", "cast(to=float16)"}), 1u);
  // Larger than the whole bound: never kept.
  EXPECT_FALSE(f.add(5, "x", 4));
  EXPECT_EQ(f.cache.counters().rejected, 2u);
  EXPECT_EQ(f.cache.counters().bytes, 3 * kPage);
}

TEST(WriterCache, BoundHoldsUnderAnyMix) {
  Fixture f(7 * kPage);
  std::uint64_t seed = 12345;
  auto rnd = [&] { return seed = seed * 6364136223846793005ULL + 1442695040888963407ULL; };
  std::vector<WriterCacheKey> pinned;
  for (int i = 0; i < 2000; ++i) {
    const auto r = rnd() >> 33;
    if (r % 3 == 0 && !pinned.empty()) {
      f.cache.unpin(pinned.back());
      pinned.pop_back();
      continue;
    }
    const WriterCacheKey key{r % 16, "v" + std::to_string(r % 3), "p"};
    if (f.cache.lookup(key)) {
      pinned.push_back(key);
    } else {
      const auto charge = writer_cache_charge(((r >> 8) % 3) * kPage + 1);
      if (f.cache.make_room(charge, f.gone)) {
        auto res = std::make_shared<WriterCacheResult>();
        f.cache.insert(key, res, charge);
        pinned.push_back(key);
      }
    }
    ASSERT_LE(f.cache.counters().bytes, 7 * kPage);
    for (const auto& k : pinned) ASSERT_GE(f.cache.pins(k), 1u);
  }
  const auto& c = f.cache.counters();
  EXPECT_GT(c.hits, 0u);
  EXPECT_GT(c.evictions, 0u);
  EXPECT_EQ(c.entries, f.cache.keys().size());
}

TEST(WriterCache, DropsReleasedStepsUnlessPinned) {
  Fixture f(10 * kPage);
  ASSERT_TRUE(f.add(0, "x", 1));
  ASSERT_TRUE(f.add(0, "y", 1));
  ASSERT_TRUE(f.add(1, "x", 1));
  f.cache.unpin({0, "x", "cast(to=float16)"});
  f.cache.unpin({1, "x", "cast(to=float16)"});
  f.cache.drop_steps([](std::uint64_t s) { return s == 0; }, f.gone);
  const auto keys = f.cache.keys();
  ASSERT_EQ(keys.size(), 2u);  // step 0's y is still pinned; step 1 was not released
  EXPECT_EQ(f.gone.size(), 1u);
  EXPECT_EQ(f.cache.counters().evictions, 0u);
  EXPECT_EQ(f.cache.counters().bytes, 2 * kPage);
}

}  // namespace
}  // namespace twinstream
