// Writer and reader through the public C++ API, on every data plane, in one process (the
// writer on its own thread). Mostly here so that the sanitizer presets (asan, tsan)
// exercise the threaded paths; the full conformance suite is tests/python.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "plane_test.hpp"
#include "twinstream/twinstream.hpp"

namespace twinstream {
namespace {

using StreamTest = testing_support::PlaneTest;
using testing_support::planes_of_this_build;

TEST_P(StreamTest, EveryStepArrivesIntactInOrder) {
  constexpr int kSteps = 40;
  std::thread writer([&] {
    Writer w("s", writer_options());
    w.set_attribute("units", std::string("lj"));
    for (int i = 0; i < kSteps; ++i) {
      const std::uint64_t n = 1000 + 5000 * (i % 7);  // sizes change: slots grow and shrink
      std::vector<double> x(n);
      for (std::uint64_t k = 0; k < n; ++k) x[k] = i * 1e6 + static_cast<double>(k);
      w.begin_step();
      w.put("x", DType::Float64, {n}, x.data());
      auto y = w.reserve("y", DType::Int32, {3});
      const std::int32_t vals[3] = {i, -i, 7};
      std::memcpy(y.data(), vals, sizeof vals);
      w.set_step_attribute("step", std::int64_t{i});
      w.end_step();
    }
    w.close();
  });
  Reader r("s", reader_options());
  int seen = 0;
  while (r.begin_step() == StepStatus::Ok) {
    const auto i = static_cast<int>(r.step_index());
    EXPECT_EQ(i, seen);
    auto x = r.get("x");
    const auto* xd = reinterpret_cast<const double*>(x.data);
    ASSERT_EQ(x.shape, (Dims{1000 + 5000 * static_cast<std::uint64_t>(i % 7)}));
    EXPECT_EQ(xd[0], i * 1e6);
    EXPECT_EQ(xd[x.shape[0] - 1], i * 1e6 + static_cast<double>(x.shape[0] - 1));
    std::int32_t y[3];
    r.get_into("y", Box{{0}, {3}}, y, sizeof y);
    EXPECT_EQ(y[0], i);
    EXPECT_EQ(y[1], -i);
    EXPECT_EQ(std::get<std::int64_t>(r.step_attributes().at("step")), i);
    EXPECT_EQ(std::get<std::string>(r.stream_attributes().at("units")), "lj");
    r.end_step();
    ++seen;
  }
  EXPECT_EQ(seen, kSteps);
  EXPECT_EQ(r.stats().data_plane, reader_options().at("data_plane"));
  writer.join();
}

TEST_P(StreamTest, BoxSelectionAcrossBlocks) {
  std::thread writer([&] {
    Writer w("box", writer_options());
    std::vector<float> left(8 * 4), right(8 * 4);
    for (int r = 0; r < 8; ++r) {
      for (int c = 0; c < 4; ++c) {
        left[r * 4 + c] = static_cast<float>(r * 8 + c);
        right[r * 4 + c] = static_cast<float>(r * 8 + c + 4);
      }
    }
    w.begin_step();
    w.put("f", DType::Float32, {8, 8}, {0, 0}, {8, 4}, left.data());
    w.put("f", DType::Float32, {8, 8}, {0, 4}, {8, 4}, right.data());
    w.end_step();
    w.close();
  });
  Reader r("box", reader_options());
  ASSERT_EQ(r.begin_step(), StepStatus::Ok);
  auto v = r.get("f", Box{{2, 2}, {3, 4}});
  const auto* f = reinterpret_cast<const float*>(v.data);
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 4; ++j) EXPECT_EQ(f[i * 4 + j], static_cast<float>((2 + i) * 8 + 2 + j));
  }
  r.end_step();
  EXPECT_EQ(r.begin_step(), StepStatus::EndOfStream);
  writer.join();
}

TEST_P(StreamTest, WriterJobOfThreeRanksJoinedAndLocalArrays) {
  // Three writer ranks (as twinstream/mpi.hpp opens them) in threads of this process.
  constexpr std::uint32_t kRanks = 3;
  std::vector<std::thread> ranks;
  for (std::uint32_t rank = 0; rank < kRanks; ++rank) {
    ranks.emplace_back([&, rank] {
      Writer w("job", writer_options({{"rank", std::to_string(rank)},
                                      {"ranks", std::to_string(kRanks)}, {"job", "t"}}));
      for (int i = 0; i < 3; ++i) {
        w.begin_step();
        std::vector<std::int64_t> rows(2 * 4, 100 * i + rank);  // rows 2r, 2r+1 of (6, 4)
        w.put("g", DType::Int64, {6, 4}, {2 * rank, 0}, {2, 4}, rows.data());
        std::vector<float> atoms(rank * 3, static_cast<float>(rank));  // rank 0: none
        w.put_joined("atoms", DType::Float32, {rank, 3}, atoms.data());
        std::vector<std::int16_t> tile(rank + 1, static_cast<std::int16_t>(rank));
        w.put_local("tile", DType::Int16, {rank + 1}, tile.data());
        w.end_step();
      }
      w.close();
    });
  }
  Reader r("job", reader_options());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(r.begin_step(), StepStatus::Ok);
    EXPECT_EQ(r.step_index(), static_cast<std::uint64_t>(i));
    // A box spanning ranks 0-2: each pulled from its owner.
    std::int64_t box[4 * 2];
    r.get_into("g", Box{{1, 1}, {4, 2}}, box, sizeof box);
    for (int row = 0; row < 4; ++row) {
      EXPECT_EQ(box[row * 2], 100 * i + (1 + row) / 2) << row;
    }
    const auto* atoms = r.find("atoms");
    ASSERT_NE(atoms, nullptr);
    EXPECT_EQ(atoms->kind, ArrayKind::Joined);
    EXPECT_EQ(atoms->shape, (Dims{3, 3}));  // 0 + 1 + 2 rows
    auto a = r.get("atoms", Box{{0, 0}, {3, 1}});
    const auto* af = reinterpret_cast<const float*>(a.data);
    EXPECT_EQ(af[0], 1.0f);
    EXPECT_EQ(af[1], 2.0f);
    EXPECT_EQ(af[2], 2.0f);
    const auto* tile = r.find("tile");
    ASSERT_EQ(tile->blocks.size(), 3u);
    for (std::uint32_t b = 0; b < 3; ++b) {
      EXPECT_EQ(tile->blocks[b].owner, b);
      auto t = r.get_block("tile", b);
      EXPECT_EQ(t.shape, (Dims{b + 1}));
      EXPECT_EQ(reinterpret_cast<const std::int16_t*>(t.data)[b], static_cast<std::int16_t>(b));
    }
    EXPECT_THROW(r.get("tile"), InvalidArgument);
    r.end_step();
  }
  EXPECT_EQ(r.begin_step(), StepStatus::EndOfStream);
  for (auto& t : ranks) t.join();
}

TEST_P(StreamTest, DropNewestNeverBlocksAndCountsDrops) {
  constexpr int kSteps = 30;
  std::atomic<bool> writer_done{false};
  std::thread writer([&] {
    Writer w("drops", writer_options({{"queue_policy", "drop_newest"}, {"queue_limit", "2"}}));
    std::uint64_t v = 0;
    for (int i = 0; i < kSteps; ++i) {
      w.begin_step();
      v = static_cast<std::uint64_t>(i);
      w.put("v", DType::UInt64, {1}, &v);
      w.end_step();
    }
    writer_done = true;
    w.close();
  });
  Reader r("drops", reader_options());
  ASSERT_EQ(r.begin_step(), StepStatus::Ok);  // holds step 0 until the writer is done
  for (int i = 0; i < 6000 && !writer_done; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // bounded: 30 s at most
  }
  ASSERT_TRUE(writer_done) << "drop_newest blocked the writer";
  std::uint64_t last = r.step_index();
  int got = 1;
  r.end_step();
  while (r.begin_step() == StepStatus::Ok) {
    EXPECT_GT(r.step_index(), last);
    last = r.step_index();
    ++got;
    r.end_step();
  }
  EXPECT_EQ(got + static_cast<int>(r.stats().dropped), kSteps);
  EXPECT_GT(r.stats().dropped, 0u);
  writer.join();
}

TEST_P(StreamTest, RefusedPutLeavesTheStepAsItWas) {
  std::thread writer([&] {
    Writer w("refused", writer_options());
    const double one = 1.0;
    w.begin_step();
    EXPECT_THROW(w.put("x", DType::Float64, {4}, nullptr), InvalidArgument);
    w.put("y", DType::Float64, {1}, &one);
    w.end_step();
    w.close();
  });
  Reader r("refused", reader_options());
  ASSERT_EQ(r.begin_step(), StepStatus::Ok);
  EXPECT_EQ(r.find("x"), nullptr);
  ASSERT_NE(r.find("y"), nullptr);
  r.end_step();
  writer.join();
}

// Two readers (threads) in one group under each lazy or batching policy, one of them
// leaving early with a step in hand: every step (or sample) still arrives.
TEST_P(StreamTest, GroupPoliciesWithAMemberLeavingMidStream) {
  for (const std::string policy : {"round_robin", "on_demand", "shuffle"}) {
    SCOPED_TRACE(policy);
    constexpr int kSteps = 24;
    const std::string name = "groups-" + policy;
    std::thread writer([&] {
      Writer w(name, writer_options({{"min_readers", "2"}}));
      for (int i = 0; i < kSteps; ++i) {
        const std::int64_t rows[4] = {i, i, i, i};
        w.begin_step();
        w.put("x", DType::Int64, {4}, rows);
        w.end_step();
      }
      w.close();
    });
    Options o = reader_options({{"group", "g"}, {"policy", policy}});
    if (policy == "shuffle") {
      o["window"] = "3";
      o["batch_size"] = "5";
    }
    std::atomic<int> samples{0};
    auto read = [&](int leave_after) {
      Reader r(name, o);
      int steps = 0;
      while (r.begin_step() == StepStatus::Ok) {
        auto x = r.get("x");
        const auto* v = reinterpret_cast<const std::int64_t*>(x.data);
        if (!r.step_is_batch()) {
          EXPECT_EQ(v[0], static_cast<std::int64_t>(r.step_index()));
        }
        if (++steps == leave_after) {
          r.close();  // leaves holding this step: it goes to the other member
          return;
        }
        samples += static_cast<int>(x.shape[0]);
        r.end_step();
      }
    };
    auto guarded = [&](int leave_after) {
      try {
        read(leave_after);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "reader (leave_after=" << leave_after << "): " << e.what();
      }
    };
    std::thread early([&] { guarded(3); });
    guarded(-1);
    early.join();
    writer.join();
    EXPECT_EQ(samples.load(), kSteps * 4);
  }
}

TEST_P(StreamTest, WriterPlacedPipelineRunsOnTheAssembledArray) {
  std::thread writer([&] {
    Writer w("s", writer_options());
    // Refused at define: a bad pipeline never reaches the stream.
    EXPECT_THROW(w.define("f", "cast(to=float32)|blur()", Placement::Writer), InvalidArgument);
    EXPECT_THROW(w.define("f", "log1p()", Placement::Writer, DType::Int32, {4, 6}),
                 InvalidArgument);
    w.define("f", "cast(to=float32)|subsample(strides=2x3)", Placement::Writer, DType::Float64,
             {4, 6});
    for (int i = 0; i < 3; ++i) {
      std::vector<double> top(12), bottom(12);
      for (int k = 0; k < 12; ++k) {
        top[k] = i + k;
        bottom[k] = i + 12 + k;
      }
      w.begin_step();
      w.put("f", DType::Float64, {4, 6}, {0, 0}, {2, 6}, top.data());
      w.put("f", DType::Float64, {4, 6}, {2, 0}, {2, 6}, bottom.data());
      w.end_step();
    }
    EXPECT_EQ(w.stats().ops_steps, 3u);
    w.close();
  });
  Reader r("s", reader_options());
  int seen = 0;
  while (r.begin_step() == StepStatus::Ok) {
    const int i = static_cast<int>(r.step_index());
    auto f = r.get("f");
    ASSERT_EQ(f.dtype, DType::Float32);
    ASSERT_EQ(f.shape, (Dims{2, 2}));
    const auto* v = reinterpret_cast<const float*>(f.data);
    // Rows 0 and 2, columns 0 and 3 of the 4x6 array whose element (r, c) is i + 6r + c.
    EXPECT_EQ(v[0], i + 0.0f);
    EXPECT_EQ(v[1], i + 3.0f);
    EXPECT_EQ(v[2], i + 12.0f);
    EXPECT_EQ(v[3], i + 15.0f);
    EXPECT_EQ(std::get<std::string>(r.step_attributes().at("ops.f.pipeline")),
              "cast(to=float32)|subsample(strides=2x3)");
    EXPECT_EQ(std::get<std::string>(r.step_attributes().at("ops.f.placement")), "writer");
    r.end_step();
    ++seen;
  }
  EXPECT_EQ(seen, 3);
  writer.join();
}

TEST_P(StreamTest, WriterOpsAreComputedOnceAndSharedThroughTheWriterCache) {
  // Two groups ask the writer for the same pipeline; a cache of three pages (each result
  // is one) keeps some steps and evicts or refuses the rest, on the service thread.
  constexpr int kSteps = 12;
  WriterStats stats;
  std::thread writer([&] {
    Writer w("wops", writer_options({{"min_readers", "2"},
                                     {"queue_limit", std::to_string(kSteps)},
                                     {"cache_bytes", "12288"}}));
    for (int i = 0; i < kSteps; ++i) {
      std::vector<double> f(64 * 8);
      for (std::size_t k = 0; k < f.size(); ++k) f[k] = i + 0.25 * static_cast<double>(k);
      w.begin_step();
      w.put("f", DType::Float64, {64, 8}, {0, 0}, {32, 8}, f.data());  // two blocks
      w.put("f", DType::Float64, {64, 8}, {32, 0}, {32, 8}, f.data() + 32 * 8);
      w.end_step();
    }
    w.close();
    stats = w.stats();
  });
  Reader a("wops", reader_options({{"group", "a"}, {"writer_ops", "f=cast(to=float32)"}}));
  Reader b("wops", reader_options({{"group", "b"}, {"writer_ops", "f=cast(to=float32)"}}));
  std::vector<bool> cached[2];
  for (int who = 0; who < 2; ++who) {
    Reader& r = who == 0 ? a : b;
    while (r.begin_step() == StepStatus::Ok) {
      const auto i = static_cast<double>(r.step_index());
      auto v = r.get("f");
      ASSERT_EQ(v.dtype, DType::Float32);
      ASSERT_EQ(v.shape, (Dims{64, 8}));
      const auto* f = reinterpret_cast<const float*>(v.data);
      for (std::size_t k = 0; k < 64 * 8; ++k) {
        ASSERT_EQ(f[k], static_cast<float>(i + 0.25 * static_cast<double>(k)));
      }
      const auto& attrs = r.step_attributes();
      EXPECT_EQ(std::get<std::string>(attrs.at("ops.f.placement")), "writer");
      cached[who].push_back(std::get<bool>(attrs.at("ops.f.cached")));
      r.end_step();
    }
  }
  writer.join();
  ASSERT_EQ(cached[0].size(), std::size_t{kSteps});
  ASSERT_EQ(cached[1].size(), std::size_t{kSteps});
  std::uint64_t hits = 0;
  for (int i = 0; i < kSteps; ++i) hits += cached[0][i] + cached[1][i];
  EXPECT_EQ(stats.cache_hits, hits);
  EXPECT_EQ(stats.cache_hits + stats.cache_misses, 2u * kSteps);
  EXPECT_LE(stats.cache_bytes, 12288u);
  EXPECT_EQ(stats.cache_max_bytes, 12288u);
}

INSTANTIATE_TEST_SUITE_P(Planes, StreamTest, ::testing::ValuesIn(planes_of_this_build()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace twinstream
