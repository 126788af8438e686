// for_each_run (core/box_copy.hpp) against a naive element-by-element copy, and the box
// helpers of twinstream/selection.hpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/box_copy.hpp"
#include "twinstream/errors.hpp"
#include "twinstream/selection.hpp"

namespace twinstream {
namespace {

struct CopyRun {
  std::uint64_t src = 0;
  std::uint64_t dst = 0;
  std::uint64_t n = 0;
  bool operator==(const CopyRun&) const = default;
};

std::ostream& operator<<(std::ostream& os, const CopyRun& r) {
  return os << "{src " << r.src << ", dst " << r.dst << ", n " << r.n << "}";
}

std::string box_str(const Box& b) {
  return "start " + dims_to_string(b.start) + " count " + dims_to_string(b.count);
}

std::vector<CopyRun> runs_of(const Box& src, const Box& dst, const Box& region, std::size_t elem) {
  std::vector<CopyRun> out;
  for_each_run(src, dst, region, elem, [&](std::uint64_t s, std::uint64_t d, std::uint64_t n) {
    out.push_back({s, d, n});
  });
  return out;
}

std::uint64_t elements(const Dims& count) {
  std::uint64_t n = 1;
  for (auto c : count) n *= c;
  return n;
}

/// Element offset of global index `g` inside the C-order array `box`.
std::uint64_t offset_in(const Box& box, const Dims& g) {
  std::uint64_t off = 0;
  for (std::size_t d = 0; d < g.size(); ++d) off = off * box.count[d] + (g[d] - box.start[d]);
  return off;
}

/// Reference: copies `region` element by element.
void naive_copy(const Box& src, const Box& dst, const Box& region, std::size_t elem,
                const std::vector<std::uint8_t>& in, std::vector<std::uint8_t>& out) {
  const auto rank = region.count.size();
  if (elements(region.count) == 0) return;
  Dims idx(rank, 0);
  while (true) {
    Dims g(rank);
    for (std::size_t d = 0; d < rank; ++d) g[d] = region.start[d] + idx[d];
    std::memcpy(out.data() + offset_in(dst, g) * elem, in.data() + offset_in(src, g) * elem, elem);
    std::size_t d = rank;
    bool done = true;
    while (d > 0) {
      --d;
      if (++idx[d] < region.count[d]) {
        done = false;
        break;
      }
      idx[d] = 0;
    }
    if (done) return;
  }
}

/// Number of runs a maximal merge gives: one per index of the axes before the innermost
/// axis that is not covered entirely in both arrays.
std::uint64_t expected_runs(const Box& src, const Box& dst, const Box& region) {
  const auto rank = region.count.size();
  if (elements(region.count) == 0) return 0;
  if (rank == 0) return 1;
  std::size_t k = rank - 1;
  while (k > 0 && region.count[k] == src.count[k] && region.count[k] == dst.count[k]) --k;
  std::uint64_t n = 1;
  for (std::size_t d = 0; d < k; ++d) n *= region.count[d];
  return n;
}

/// Runs the runs-based copy and the naive copy and compares everything that can be
/// compared. Returns the runs.
std::vector<CopyRun> check_copy(const Box& src, const Box& dst, const Box& region, std::size_t elem,
                            std::mt19937_64& rng) {
  SCOPED_TRACE("src " + box_str(src) + ", dst " + box_str(dst) + ", region " + box_str(region) +
               ", elem " + std::to_string(elem));
  const auto src_bytes = elements(src.count) * elem;
  const auto dst_bytes = elements(dst.count) * elem;
  std::vector<std::uint8_t> in(src_bytes);
  for (auto& b : in) b = static_cast<std::uint8_t>(rng());
  std::vector<std::uint8_t> want(dst_bytes, 0xEE), got(dst_bytes, 0xEE);
  naive_copy(src, dst, region, elem, in, want);

  const auto runs = runs_of(src, dst, region, elem);
  std::uint64_t total = 0;
  for (const auto& r : runs) {
    EXPECT_GT(r.n, 0u) << r;
    EXPECT_EQ(r.n % elem, 0u) << r;
    EXPECT_EQ(r.src % elem, 0u) << r;
    EXPECT_EQ(r.dst % elem, 0u) << r;
    // Bounds first: a bad run must fail the test, not corrupt memory.
    if (r.src > src_bytes || r.n > src_bytes - r.src || r.dst > dst_bytes ||
        r.n > dst_bytes - r.dst) {
      ADD_FAILURE() << "run " << r << " outside the arrays (" << src_bytes << ", " << dst_bytes
                    << " bytes)";
      return runs;
    }
    std::memcpy(got.data() + r.dst, in.data() + r.src, r.n);
    total += r.n;
  }
  EXPECT_EQ(total, elements(region.count) * elem);
  EXPECT_EQ(got, want);

  // Runs are disjoint in the destination (and in the source: each element read once).
  for (auto pick : {&CopyRun::src, &CopyRun::dst}) {
    auto sorted = runs;
    std::sort(sorted.begin(), sorted.end(),
              [pick](const CopyRun& a, const CopyRun& b) { return a.*pick < b.*pick; });
    for (std::size_t i = 1; i < sorted.size(); ++i) {
      EXPECT_LE(sorted[i - 1].*pick + sorted[i - 1].n, sorted[i].*pick)
          << sorted[i - 1] << " overlaps " << sorted[i];
    }
  }
  // Merging is maximal: no two consecutive runs could have been one.
  for (std::size_t i = 1; i < runs.size(); ++i) {
    const auto& a = runs[i - 1];
    const auto& b = runs[i];
    EXPECT_FALSE(a.src + a.n == b.src && a.dst + a.n == b.dst)
        << a << " and " << b << " are contiguous in both arrays but were not merged";
  }
  EXPECT_EQ(runs.size(), expected_runs(src, dst, region));
  return runs;
}

// =======================================================================================
// Fixed cases

TEST(BoxCopy, RankZeroIsOneElement) {
  for (std::size_t elem : {1u, 8u, 32u}) {
    const Box scalar{{}, {}};
    const auto runs = runs_of(scalar, scalar, scalar, elem);
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0], (CopyRun{0, 0, elem}));
  }
}

TEST(BoxCopy, WholeArrayIsOneRun) {
  std::mt19937_64 rng(1);
  for (std::size_t rank = 1; rank <= 4; ++rank) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    Box b{Dims(rank, 2), Dims(rank, 3)};
    const auto runs = check_copy(b, b, b, 8, rng);
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0], (CopyRun{0, 0, elements(b.count) * 8}));
  }
}

TEST(BoxCopy, FullRowsMergeIntoOneRun) {
  std::mt19937_64 rng(2);
  // Rows 3..5 of a 10x8 source into a 5x8 destination that starts at row 2: whole rows
  // in both, so one run.
  const Box src{{0, 0}, {10, 8}};
  const Box dst{{2, 0}, {5, 8}};
  const Box region{{3, 0}, {3, 8}};
  const auto runs = check_copy(src, dst, region, 4, rng);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0], (CopyRun{3 * 8 * 4, 1 * 8 * 4, 3 * 8 * 4}));

  // 3-d: whole planes of both arrays.
  const Box s3{{0, 0, 0}, {6, 4, 5}};
  const Box d3{{1, 0, 0}, {4, 4, 5}};
  const Box r3{{2, 0, 0}, {3, 4, 5}};
  const auto runs3 = check_copy(s3, d3, r3, 2, rng);
  ASSERT_EQ(runs3.size(), 1u);
  EXPECT_EQ(runs3[0], (CopyRun{2 * 20 * 2, 1 * 20 * 2, 3 * 20 * 2}));
}

TEST(BoxCopy, RowsNotFullInOneArrayAreSeparateRuns) {
  std::mt19937_64 rng(3);
  // Full rows of the source, but the destination is wider: one run per row.
  const Box src{{0, 0}, {4, 3}};
  const Box dst{{0, 0}, {4, 5}};
  const Box region{{1, 0}, {2, 3}};
  const auto runs = check_copy(src, dst, region, 1, rng);
  EXPECT_EQ(runs, (std::vector<CopyRun>{{3, 5, 3}, {6, 10, 3}}));
  // And the other way round.
  const auto back = check_copy(dst, src, region, 1, rng);
  EXPECT_EQ(back, (std::vector<CopyRun>{{5, 3, 3}, {10, 6, 3}}));
}

TEST(BoxCopy, PartialOverlapOfTwoBlocks) {
  std::mt19937_64 rng(4);
  const Box src{{0, 0}, {4, 6}};
  const Box dst{{1, 2}, {3, 3}};
  const auto ov = intersect(src, dst);
  ASSERT_FALSE(ov.empty);
  EXPECT_EQ(ov.box, (Box{{1, 2}, {3, 3}}));
  const auto runs = check_copy(src, dst, ov.box, 8, rng);
  EXPECT_EQ(runs, (std::vector<CopyRun>{{(6 + 2) * 8, 0, 24}, {(12 + 2) * 8, 24, 24},
                                    {(18 + 2) * 8, 48, 24}}));
}

TEST(BoxCopy, ThreeDimensionalPartialMerge) {
  std::mt19937_64 rng(5);
  // Last axis whole in both arrays, middle axis not: the region's rows along the middle
  // axis are contiguous, so each index of the first axis gives one run of 2 x 5.
  const Box src{{0, 0, 0}, {3, 4, 5}};
  const Box dst{{0, 1, 0}, {3, 2, 5}};
  const Box region{{1, 1, 0}, {2, 2, 5}};
  const auto runs = check_copy(src, dst, region, 1, rng);
  EXPECT_EQ(runs, (std::vector<CopyRun>{{25, 10, 10}, {45, 20, 10}}));
  // Last axis not whole in the destination: one run per (i, j).
  const Box dst_narrow{{0, 1, 1}, {3, 2, 4}};
  const Box region_narrow{{1, 1, 1}, {2, 2, 4}};
  EXPECT_EQ(check_copy(src, dst_narrow, region_narrow, 1, rng).size(), 4u);
  // Middle and last axes whole in both: whole planes, a single run.
  const Box src2{{0, 0, 0}, {3, 2, 5}};
  const Box dst2{{1, 0, 0}, {2, 2, 5}};
  const Box region2{{1, 0, 0}, {2, 2, 5}};
  const auto runs2 = check_copy(src2, dst2, region2, 1, rng);
  EXPECT_EQ(runs2, (std::vector<CopyRun>{{10, 0, 20}}));
}

TEST(BoxCopy, EmptyRegionEmitsNothing) {
  const Box src{{0, 0, 0, 0}, {2, 3, 4, 5}};
  for (std::size_t axis = 0; axis < 4; ++axis) {
    Box region{{0, 0, 0, 0}, {2, 3, 4, 5}};
    region.count[axis] = 0;
    EXPECT_TRUE(runs_of(src, src, region, 8).empty()) << axis;
  }
  const Box line{{0}, {10}};
  EXPECT_TRUE(runs_of(line, line, Box{{10}, {0}}, 4).empty());
  EXPECT_TRUE(runs_of(line, line, Box{{0}, {0}}, 4).empty());
}

TEST(BoxCopy, OffsetsUse64Bits) {
  // A 2^20 x 2^20 source: row 3000 starts beyond 4 GiB. Only the runs are computed.
  const std::uint64_t n = 1u << 20;
  const Box src{{0, 0}, {n, n}};
  const Box dst{{3000, 5}, {2, 7}};
  const auto runs = runs_of(src, dst, dst, 8);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0], (CopyRun{(3000 * n + 5) * 8, 0, 56}));
  EXPECT_EQ(runs[1], (CopyRun{(3001 * n + 5) * 8, 56, 56}));
  // Boxes far from the origin: only relative positions matter.
  const std::uint64_t far = 1ull << 50;
  const Box a{{far, far}, {4, 4}};
  const Box b{{far + 1, far}, {2, 4}};
  EXPECT_EQ(runs_of(a, b, b, 1), (std::vector<CopyRun>{{4, 0, 8}}));
}

// =======================================================================================
// Randomized comparison with the naive copy

Box random_sub_box(const Box& outer, std::mt19937_64& rng, bool allow_empty) {
  Box b;
  const auto rank = outer.count.size();
  b.start.resize(rank);
  b.count.resize(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    const auto len = outer.count[d];
    if (len == 0) {
      b.start[d] = outer.start[d];
      b.count[d] = 0;
      continue;
    }
    const auto mode = rng() % 4;
    if (mode == 0) {  // the whole extent: lets runs merge
      b.start[d] = outer.start[d];
      b.count[d] = len;
      continue;
    }
    const auto lo = rng() % len;
    const auto hi = lo + 1 + rng() % (len - lo);  // (lo, len]
    b.start[d] = outer.start[d] + lo;
    b.count[d] = hi - lo;
    if (allow_empty && rng() % 25 == 0) b.count[d] = 0;
  }
  return b;
}

/// A box of the global shape that contains `inner`.
Box random_super_box(const Box& inner, const Dims& global, std::mt19937_64& rng) {
  Box b;
  const auto rank = inner.count.size();
  b.start.resize(rank);
  b.count.resize(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    const auto end = inner.start[d] + inner.count[d];
    if (rng() % 2 == 0) {  // tight on this axis
      b.start[d] = inner.start[d];
      b.count[d] = inner.count[d];
    } else {
      b.start[d] = inner.start[d] - rng() % (inner.start[d] + 1);
      b.count[d] = end + rng() % (global[d] - end + 1) - b.start[d];
    }
  }
  return b;
}

TEST(BoxCopy, RandomRegionsMatchNaiveCopy) {
  std::mt19937_64 rng(0x626f78636f7079ull);
  const std::size_t elems[] = {1, 2, 3, 4, 8, 16};
  std::size_t merged = 0, split = 0;
  for (int it = 0; it < 3000 && !HasFailure(); ++it) {
    const std::size_t rank = static_cast<std::size_t>(rng() % 5);
    Dims global(rank);
    for (auto& g : global) g = 1 + rng() % 6;
    const Box whole{Dims(rank, 0), global};
    const bool empty_ok = rng() % 10 == 0;
    const Box region = random_sub_box(whole, rng, empty_ok);
    const Box src = random_super_box(region, global, rng);
    const Box dst = random_super_box(region, global, rng);
    const auto runs = check_copy(src, dst, region, elems[rng() % std::size(elems)], rng);
    (runs.size() <= 1 ? merged : split) += 1;
  }
  // Both kinds of outcome were exercised.
  EXPECT_GT(merged, 300u);
  EXPECT_GT(split, 300u);
}

TEST(BoxCopy, RandomBlocksViaIntersect) {
  // What a data plane does: a writer block and a reader selection, copy their overlap.
  std::mt19937_64 rng(0x696e746572736563ull);
  int overlapping = 0;
  for (int it = 0; it < 2000 && !HasFailure(); ++it) {
    const std::size_t rank = static_cast<std::size_t>(rng() % 5);
    Dims global(rank);
    for (auto& g : global) g = 1 + rng() % 7;
    const Box whole{Dims(rank, 0), global};
    const Box block = random_sub_box(whole, rng, false);
    const Box selection = random_sub_box(whole, rng, false);
    const auto ov = intersect(block, selection);
    if (ov.empty) continue;
    ++overlapping;
    check_copy(block, selection, ov.box, 4, rng);
  }
  EXPECT_GT(overlapping, 500);
}

// =======================================================================================
// selection.hpp

TEST(Selection, IntersectOverlapping) {
  const auto ov = intersect(Box{{0, 0}, {4, 6}}, Box{{2, 3}, {5, 5}});
  EXPECT_FALSE(ov.empty);
  EXPECT_EQ(ov.box, (Box{{2, 3}, {2, 3}}));
}

TEST(Selection, IntersectContainedAndIdentical) {
  const Box outer{{1, 1, 1}, {8, 8, 8}};
  const Box inner{{2, 3, 4}, {1, 2, 3}};
  EXPECT_EQ(intersect(outer, inner).box, inner);
  EXPECT_EQ(intersect(inner, outer).box, inner);
  EXPECT_FALSE(intersect(inner, outer).empty);
  EXPECT_EQ(intersect(outer, outer).box, outer);
}

TEST(Selection, IntersectDisjointAndTouching) {
  // Disjoint on the second axis only.
  auto ov = intersect(Box{{0, 0}, {4, 3}}, Box{{1, 5}, {2, 2}});
  EXPECT_TRUE(ov.empty);
  EXPECT_EQ(ov.box.count[1], 0u);
  // Touching edges do not overlap.
  ov = intersect(Box{{0}, {5}}, Box{{5}, {5}});
  EXPECT_TRUE(ov.empty);
  EXPECT_EQ(ov.box.count[0], 0u);
  ov = intersect(Box{{5}, {5}}, Box{{0}, {5}});
  EXPECT_TRUE(ov.empty);
  // Empty boxes overlap nothing, even inside the other one.
  EXPECT_TRUE(intersect(Box{{0}, {10}}, Box{{3}, {0}}).empty);
  EXPECT_TRUE(intersect(Box{{0, 0}, {10, 10}}, Box{{3, 3}, {2, 0}}).empty);
}

TEST(Selection, IntersectRankZero) {
  const auto ov = intersect(Box{}, Box{});
  EXPECT_FALSE(ov.empty);
  EXPECT_TRUE(ov.box.start.empty());
  EXPECT_TRUE(ov.box.count.empty());
}

TEST(Selection, IntersectMatchesPointMembership) {
  std::mt19937_64 rng(77);
  for (int it = 0; it < 500; ++it) {
    const std::size_t rank = 1 + static_cast<std::size_t>(rng() % 3);
    Dims global(rank);
    for (auto& g : global) g = 1 + rng() % 6;
    const Box whole{Dims(rank, 0), global};
    const Box a = random_sub_box(whole, rng, true);
    const Box b = random_sub_box(whole, rng, true);
    const auto ov = intersect(a, b);
    const auto inside = [](const Box& box, const Dims& p) {
      for (std::size_t d = 0; d < p.size(); ++d) {
        if (p[d] < box.start[d] || p[d] >= box.start[d] + box.count[d]) return false;
      }
      return true;
    };
    bool any = false;
    Dims p(rank, 0);
    while (true) {
      const bool both = inside(a, p) && inside(b, p);
      any = any || both;
      if (!ov.empty) {
        ASSERT_EQ(inside(ov.box, p), both) << dims_to_string(p);
      }
      std::size_t d = rank;
      bool done = true;
      while (d > 0) {
        --d;
        if (++p[d] < global[d]) {
          done = false;
          break;
        }
        p[d] = 0;
      }
      if (done) break;
    }
    ASSERT_EQ(ov.empty, !any) << box_str(a) << " / " << box_str(b);
  }
}

TEST(Selection, ElementCount) {
  EXPECT_EQ(element_count({}), 1u);
  EXPECT_EQ(element_count({7}), 7u);
  EXPECT_EQ(element_count({3, 4, 5}), 60u);
  EXPECT_EQ(element_count({3, 0, 5}), 0u);
  EXPECT_EQ(element_count({0, UINT64_MAX}), 0u);
  EXPECT_EQ(element_count({1ull << 32, 1ull << 31}), 1ull << 63);
  EXPECT_EQ(element_count({UINT64_MAX}), UINT64_MAX);
  EXPECT_THROW(element_count({1ull << 32, 1ull << 32}), InvalidArgument);
  EXPECT_THROW(element_count({UINT64_MAX, 2}), InvalidArgument);
  EXPECT_THROW(element_count({3, 1ull << 21, 1ull << 21, 1ull << 21}), InvalidArgument);
}

TEST(Selection, DimsToString) {
  EXPECT_EQ(dims_to_string({}), "()");
  EXPECT_EQ(dims_to_string({3}), "(3,)");
  EXPECT_EQ(dims_to_string({3, 4}), "(3, 4)");
  EXPECT_EQ(dims_to_string({1, 2, 3}), "(1, 2, 3)");
  EXPECT_EQ(dims_to_string({UINT64_MAX}), "(18446744073709551615,)");
}

}  // namespace
}  // namespace twinstream
