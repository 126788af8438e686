// Reader placement through the public C++ API, on every data plane: a C++ reader gets
// the same bytes whether the writer or the reader runs a pipeline (running statistics
// included), a box is a box of the output, the reader cache is bounded and counted, and
// shuffle batches get row-wise pipelines applied and the others refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "ops/pipeline.hpp"
#include "plane_test.hpp"
#include "twinstream/twinstream.hpp"

namespace twinstream {
namespace {

constexpr int kSteps = 4;
// Running per-channel statistics, then tiles: the output depends on the whole array and on
// every earlier step.
const std::string kField = "cast(to=float32)|standardize(axis=-1)|patches(size=2x2,stride=2x2)";
const std::string kImage = "cast(to=float32)|log1p()|clip(lo=0.5,hi=5)|subsample(strides=2x2)|stats()";
const Dims kFieldShape{4, 6, 3};
const Dims kImageShape{8, 8};

std::vector<double> field_of(int step) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(step));
  std::normal_distribution<double> normal(step, 2.0);
  std::vector<double> v(element_count(kFieldShape));
  for (auto& x : v) x = normal(rng);
  return v;
}

std::vector<double> image_of(int step) {
  std::vector<double> v(element_count(kImageShape));
  for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<double>((k * 7 + step) % 23);
  return v;
}

std::vector<std::byte> bytes_of(const ConstView& v) {
  return {v.data, v.data + v.size};
}
std::vector<std::byte> bytes_of(const ops::Tensor& t) { return {t.data, t.data + t.bytes}; }

class ReaderOpsTest : public testing_support::PlaneTest {
 protected:
  // A writer publishing kSteps of `field` (two blocks) and `img`, both defined with
  // `placement`.
  std::thread write_fields(const std::string& name, Placement placement) {
    return std::thread([this, name, placement] {
      Writer w(name, writer_options({{"queue_limit", "2"}}));
      w.define("field", kField, placement, DType::Float64, kFieldShape);
      w.define("img", kImage, placement, DType::Float64, kImageShape);
      for (int i = 0; i < kSteps; ++i) {
        const auto f = field_of(i);
        const auto img = image_of(i);
        const std::size_t half = f.size() / 2;
        w.begin_step();
        w.put("field", DType::Float64, kFieldShape, {0, 0, 0}, {2, 6, 3}, f.data());
        w.put("field", DType::Float64, kFieldShape, {2, 0, 0}, {2, 6, 3}, f.data() + half);
        w.put("img", DType::Float64, kImageShape, img.data());
        w.end_step();
      }
      w.close();
    });
  }
};

struct Seen {
  std::vector<std::byte> field, img, box, box_into;
  VariableInfo field_info;
};

TEST_P(ReaderOpsTest, WriterAndReaderPlacementGiveTheSameBytes) {
  // What both placements must give: the pipelines run here, running statistics folded
  // in step by step as the writer does.
  const auto field_p = ops::Pipeline::parse(kField);
  const auto image_p = ops::Pipeline::parse(kImage);
  ops::PipelineState state;
  std::vector<std::pair<ops::Tensor, ops::Tensor>> expected;
  for (int i = 0; i < kSteps; ++i) {
    const auto f = field_of(i);
    const auto img = image_of(i);
    ops::RunOptions o;
    o.state = &state;
    o.own_output = true;
    auto fo = field_p.run({DType::Float64, kFieldShape, f.data()}, o).output;
    auto io = image_p.run({DType::Float64, kImageShape, img.data()}, o).output;
    expected.emplace_back(std::move(fo), std::move(io));
  }
  const Dims out_shape{6, 2, 2, 3};  // 2x3 tiles of 2x2, 3 channels
  const Box box{{1, 0, 1, 0}, {3, 2, 1, 3}};

  std::map<Placement, std::vector<Seen>> seen;
  std::map<Placement, ReaderStats> stats;
  for (const auto placement : {Placement::Writer, Placement::Reader}) {
    const bool on_reader = placement == Placement::Reader;
    SCOPED_TRACE(on_reader ? "reader placement" : "writer placement");
    const std::string name = on_reader ? "placed-reader" : "placed-writer";
    auto writer = write_fields(name, placement);
    Reader r(name, reader_options());
    while (r.begin_step() == StepStatus::Ok) {
      Seen s;
      s.field = bytes_of(r.get("field"));
      s.img = bytes_of(r.get("img"));
      s.box = bytes_of(r.get("field", box));
      s.box_into.resize(element_count(box.count) * sizeof(float));
      r.get_into("field", box, s.box_into.data(), s.box_into.size());
      s.field_info = *r.find("field");
      EXPECT_EQ(std::get<std::string>(r.step_attributes().at("ops.field.placement")),
                on_reader ? "reader" : "writer");
      seen[placement].push_back(std::move(s));
      r.end_step();
    }
    stats[placement] = r.stats();
    writer.join();
  }

  for (const auto& [placement, steps] : seen) {
    SCOPED_TRACE(placement == Placement::Reader ? "reader placement" : "writer placement");
    ASSERT_EQ(steps.size(), static_cast<std::size_t>(kSteps));
    for (int i = 0; i < kSteps; ++i) {
      const auto& s = steps[i];
      const auto& [field, img] = expected[i];
      ASSERT_EQ(field.shape, out_shape);
      // Bit for bit, running statistics included (the reader uses the writer's).
      EXPECT_EQ(s.field, bytes_of(field)) << "step " << i;
      EXPECT_EQ(s.img, bytes_of(img)) << "step " << i;
      // variables() shows the output, whichever side runs the pipeline.
      EXPECT_EQ(s.field_info.dtype, DType::Float32);
      EXPECT_EQ(s.field_info.shape, out_shape);
      // The box is a box of the output: tiles 1..3, all rows, column 1, every channel.
      std::vector<float> want;
      const auto* v = reinterpret_cast<const float*>(field.data);
      for (std::uint64_t t = 1; t < 4; ++t) {
        for (std::uint64_t row = 0; row < 2; ++row) {
          for (std::uint64_t c = 0; c < 3; ++c) want.push_back(v[((t * 2 + row) * 2 + 1) * 3 + c]);
        }
      }
      std::vector<std::byte> want_bytes(want.size() * sizeof(float));
      std::memcpy(want_bytes.data(), want.data(), want_bytes.size());
      EXPECT_EQ(s.box, want_bytes) << "step " << i;
      EXPECT_EQ(s.box_into, want_bytes) << "step " << i;
    }
  }
  // Each side's operator time: the reader ran both pipelines once per step (the box and
  // get_into reuse the step's result), and nothing under writer placement.
  const auto& rs = stats[Placement::Reader];
  EXPECT_EQ(rs.ops_runs, 2u * kSteps);
  EXPECT_EQ(rs.ops_steps, static_cast<std::uint64_t>(kSteps));
  EXPECT_GT(rs.ops_seconds, 0.0);
  EXPECT_FALSE(rs.cache);
  EXPECT_EQ(stats[Placement::Writer].ops_runs, 0u);
  EXPECT_EQ(stats[Placement::Writer].ops_steps, 0u);
  // Writer placement sends the (smaller) output.
  EXPECT_LT(stats[Placement::Writer].bytes, rs.bytes);
}

TEST_P(ReaderOpsTest, BoxOutsideTheOutputIsRefusedNamingVariableAndPipeline) {
  auto writer = write_fields("box", Placement::Reader);
  Reader r("box", reader_options());
  ASSERT_EQ(r.begin_step(), StepStatus::Ok);
  // Inside the input (4x6x3) but not the output (6x2x2x3): refused, naming the fix.
  try {
    r.get("field", Box{{0, 0, 0}, {4, 6, 3}});
    ADD_FAILURE() << "a box of the input's rank was accepted";
  } catch (const InvalidArgument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'field'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(kField), std::string::npos) << msg;
    EXPECT_NE(msg.find("float32(6, 2, 2, 3)"), std::string::npos) << msg;
  }
  EXPECT_THROW(r.get("field", Box{{5, 0, 0, 0}, {2, 2, 2, 3}}), InvalidArgument);
  std::vector<float> small(2);
  EXPECT_THROW(r.get_into("field", Box{{0, 0, 0, 0}, {1, 2, 2, 3}}, small.data(), 8),
               InvalidArgument);
  r.end_step();
  while (r.begin_step() == StepStatus::Ok) r.end_step();
  writer.join();
}

TEST_P(ReaderOpsTest, ReaderCacheIsBoundedCountedAndEqualsARecompute) {
  const std::uint64_t result_bytes = 4 * 4 * sizeof(float);  // img's output
  const std::uint64_t bound = result_bytes * 3 / 2;          // room for one result
  auto writer = write_fields("cache", Placement::Reader);
  Reader r("cache", reader_options({{"cache", "on"}, {"cache_bytes", std::to_string(bound)}}));
  const auto image_p = ops::Pipeline::parse(kImage);
  int steps = 0;
  while (r.begin_step() == StepStatus::Ok) {
    const auto a = r.get("img");
    const auto b = r.get("img");  // a hit: the same memory
    EXPECT_EQ(a.data, b.data);
    const auto img = image_of(static_cast<int>(r.step_index()));
    ops::RunOptions o;
    const auto want = image_p.run({DType::Float64, kImageShape, img.data()}, o).output;
    EXPECT_EQ(bytes_of(a), bytes_of(want));
    EXPECT_LE(r.stats().cache_bytes, bound);
    r.end_step();
    ++steps;
  }
  writer.join();
  ASSERT_EQ(steps, kSteps);
  const auto s = r.stats();
  EXPECT_TRUE(s.cache);
  EXPECT_EQ(s.cache_hits, static_cast<std::uint64_t>(kSteps));
  EXPECT_EQ(s.cache_misses, static_cast<std::uint64_t>(kSteps));
  EXPECT_EQ(s.cache_evictions, static_cast<std::uint64_t>(kSteps - 1));
  EXPECT_EQ(s.cache_bytes, result_bytes);
  EXPECT_EQ(s.cache_max_bytes, bound);
  EXPECT_EQ(s.ops_runs, static_cast<std::uint64_t>(kSteps));
}

TEST_P(ReaderOpsTest, ShuffleBatchesGetRowWisePipelinesAndRefuseTheOthers) {
  std::thread writer([&] {
    Writer w("batches", writer_options({{"queue_limit", "4"}}));
    w.define("x", "cast(to=float32)|clip(lo=0,hi=250)", Placement::Reader);
    w.define("y", "cast(to=float32)|standardize()", Placement::Reader);  // per-step state
    for (int i = 0; i < 4; ++i) {
      std::vector<std::int64_t> x(8 * 2), y(8);
      for (int k = 0; k < 16; ++k) x[k] = k * 20 + i;
      for (int k = 0; k < 8; ++k) y[k] = k + i;
      w.begin_step();
      w.put("x", DType::Int64, {8, 2}, x.data());
      w.put("y", DType::Int64, {8}, y.data());
      w.end_step();
    }
    w.close();
  });
  Reader r("batches", reader_options({{"group", "g"},
                                      {"policy", "shuffle"},
                                      {"window", "2"},
                                      {"batch_size", "4"},
                                      {"variables", "x,y"}}));
  std::map<std::pair<std::int64_t, std::int64_t>, std::pair<float, float>> rows;
  while (r.begin_step() == StepStatus::Ok) {
    ASSERT_TRUE(r.step_is_batch());
    const auto x = r.get("x");
    ASSERT_EQ(x.dtype, DType::Float32);
    EXPECT_EQ(r.find("x")->dtype, DType::Float32);
    const auto& ids = std::get<ArrayAttribute>(r.step_attributes().at("sample_id"));
    const auto* id = reinterpret_cast<const std::int64_t*>(ids.bytes.data());
    const auto* v = reinterpret_cast<const float*>(x.data);
    for (std::uint64_t k = 0; k < x.shape[0]; ++k) {
      rows[{id[2 * k], id[2 * k + 1]}] = {v[2 * k], v[2 * k + 1]};
    }
    try {
      r.get("y");
      ADD_FAILURE() << "a running standardize ran on a shuffle batch";
    } catch (const InvalidArgument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("'y'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("standardize"), std::string::npos) << msg;
      EXPECT_NE(msg.find("placement='writer'"), std::string::npos) << msg;
    }
    r.end_step();
  }
  writer.join();
  ASSERT_EQ(rows.size(), 32u);
  for (const auto& [at, values] : rows) {
    const auto [step, row] = at;
    EXPECT_EQ(values.first, std::min<float>(250, row * 40 + step));
    EXPECT_EQ(values.second, std::min<float>(250, row * 40 + 20 + step));
  }
}

using testing_support::planes_of_this_build;

INSTANTIATE_TEST_SUITE_P(Planes, ReaderOpsTest, ::testing::ValuesIn(planes_of_this_build()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace twinstream
