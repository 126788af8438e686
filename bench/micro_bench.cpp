// Micro benchmarks of the per-step work twinstream adds on top of moving bytes: wire
// encode/decode of a step announcement, the queue's publish/hand/ack cycle, step-memory
// allocation and selection planning. Run: micro_bench --benchmark_format=json
#include <benchmark/benchmark.h>

#include "core/box_copy.hpp"
#include "core/messages.hpp"
#include "core/segment.hpp"
#include "core/step_queue.hpp"

namespace {
using namespace twinstream;

wire::StepMeta sample_step(int nvars) {
  wire::StepMeta m;
  m.index = 42;
  m.segments.push_back({1, 1u << 26});
  for (int i = 0; i < nvars; ++i) {
    wire::VariableMeta v;
    v.name = "var" + std::to_string(i);
    v.dtype = DType::Float32;
    v.shape = {1024, 1024, 3};
    v.blocks.push_back({{0, 0, 0}, {1024, 1024, 3}, 1, static_cast<std::uint64_t>(i) * 64, 0});
    m.variables.push_back(v);
  }
  m.attributes["time"] = 0.5;
  m.attributes["step"] = std::int64_t{42};
  return m;
}

void BM_EncodeStep(benchmark::State& state) {
  const auto m = sample_step(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto bytes = wire::encode(m);
    benchmark::DoNotOptimize(bytes.data());
  }
}
BENCHMARK(BM_EncodeStep)->Arg(1)->Arg(16);

void BM_DecodeStep(benchmark::State& state) {
  const auto bytes = wire::encode(sample_step(static_cast<int>(state.range(0))));
  const std::span<const std::byte> payload(bytes.data() + wire::kHeaderSize,
                                           bytes.size() - wire::kHeaderSize);
  for (auto _ : state) {
    auto m = wire::decode_step(payload);
    benchmark::DoNotOptimize(m.variables.data());
  }
}
BENCHMARK(BM_DecodeStep)->Arg(1)->Arg(16);

// One step through the queue: publish to N readers, hand to each, ack from each.
void BM_QueueCycle(benchmark::State& state) {
  const auto readers = static_cast<ReaderId>(state.range(0));
  StepQueue q(2, QueuePolicy::Block);
  std::vector<std::unique_ptr<Slot>> free;
  free.push_back(std::make_unique<Slot>());
  std::uint64_t index = 0;
  for (auto _ : state) {
    QueuedStep s;
    s.index = index++;
    s.slot = std::move(free.back());
    free.pop_back();
    for (ReaderId r = 1; r <= readers; ++r) s.pending.insert(r);
    q.publish(std::move(s));
    for (ReaderId r = 1; r <= readers; ++r) {
      auto* next = q.take_next(r, 1, nullptr, nullptr);
      if (auto slot = q.ack(r, next->index)) free.push_back(std::move(slot));
    }
  }
}
BENCHMARK(BM_QueueCycle)->Arg(1)->Arg(4);

// Step memory: reset a slot and allocate a few blocks, as every step does.
void BM_SlotAllocate(benchmark::State& state) {
  std::uint32_t next_id = 1;
  auto make = [&](std::size_t n) { return std::make_shared<Segment>(next_id++, n, ""); };
  Slot slot;
  std::vector<std::uint32_t> retired;
  for (auto _ : state) {
    slot.reset(make, retired);
    for (int i = 0; i < 8; ++i) benchmark::DoNotOptimize(slot.allocate(4096, make).data);
  }
}
BENCHMARK(BM_SlotAllocate);

// Planning a box selection: runs for a 256 x 256 tile of a 4096 x 4096 array.
void BM_SelectionRuns(benchmark::State& state) {
  const Box block{{0, 0}, {4096, 4096}};
  const Box sel{{1000, 1000}, {256, 256}};
  for (auto _ : state) {
    std::uint64_t sum = 0;
    for_each_run(block, sel, sel, 4, [&](std::uint64_t s, std::uint64_t d, std::uint64_t n) {
      sum += s + d + n;
    });
    benchmark::DoNotOptimize(sum);
  }
}
BENCHMARK(BM_SelectionRuns);

}  // namespace

BENCHMARK_MAIN();
