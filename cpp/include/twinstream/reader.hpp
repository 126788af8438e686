#pragma once
/// The consuming side of a stream: begin_step(timeout) / get / end_step.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twinstream/attribute.hpp"
#include "twinstream/dtype.hpp"
#include "twinstream/options.hpp"
#include "twinstream/selection.hpp"

namespace twinstream {

enum class StepStatus { Ok, NotReady, EndOfStream };

/// One block of a variable as a writer rank put it.
struct BlockInfo {
  Dims start;  ///< where it lies in the array readers see (zeros for a local block)
  Dims count;  ///< its shape
  std::uint32_t owner = 0;  ///< the writer rank that put it
};

/// A variable of the current step.
struct VariableInfo {
  std::string name;
  DType dtype = DType::Float64;
  Dims shape;  ///< global shape (joined: summed over every rank; local: the blocks' maximum)
  std::vector<BlockInfo> blocks;
  ArrayKind kind = ArrayKind::Global;
};

/// Read-only bytes of a variable (or box of it). `owner` keeps the memory mapped; the
/// contents are only meaningful until the reader's end_step.
struct ConstView {
  const std::byte* data = nullptr;
  std::size_t size = 0;
  DType dtype = DType::Float64;
  Dims shape;
  std::shared_ptr<const void> owner;
};

struct ReaderStats {
  std::uint64_t steps = 0;         ///< steps received
  std::uint64_t dropped = 0;       ///< steps the writer dropped before this reader got them
  std::uint64_t redelivered = 0;   ///< steps received that another group member had left
  std::uint64_t bytes = 0;         ///< payload bytes read through the data plane
  std::string data_plane;          ///< plane in use: inproc, shm, tcp, fabric or mpi
  std::string data_plane_detail;   ///< what the plane chose (fabric: "provider tcp")
  std::string data_plane_fallback; ///< why an `auto` choice fell back; empty if it did not
  std::string control;             ///< control path: ring (shared memory) or socket
  std::uint64_t preload_bytes = 0;         ///< bytes served from steps read ahead (preload)
  std::uint64_t preload_unused_bytes = 0;  ///< bytes read ahead that no read asked for
  // Reader-side pre-processing (pipelines the writer placed on readers, and those a
  // reader asks for): time its operators took, and the reader cache (cache=on).
  double ops_seconds = 0;          ///< all steps
  double ops_last_seconds = 0;     ///< the last step in which operators ran
  std::uint64_t ops_steps = 0;     ///< steps in which operators ran
  std::uint64_t ops_runs = 0;      ///< pipeline runs (a cache hit is not one)
  bool cache = false;              ///< the cache is on; the counters below are its
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;
  std::uint64_t cache_evictions = 0;  ///< results removed to make room
  std::uint64_t cache_rejected = 0;   ///< results larger than the whole bound, not kept
  std::uint64_t cache_bytes = 0;      ///< held now, never above cache_max_bytes
  std::uint64_t cache_entries = 0;
  std::uint64_t cache_max_bytes = 0;
};

/// One ensemble member of a fan-in stream, as this reader sees it.
struct SourceInfo {
  std::string member;
  std::string state;  ///< live, ended (its writer closed) or failed (crashed, hung, refused)
  std::string error;  ///< why it failed
  std::uint64_t steps = 0;  ///< steps received from it
};

class ReaderOps;

class Reader {
 public:
  /// Connects to stream `name`: waits up to open_timeout for its contact file and
  /// writer, presents the token, joins its group. Throws TimeoutError, ConnectionError.
  Reader(std::string name, const ReaderOptions& options = {});
  Reader(std::string name, const Options& options);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  /// Waits up to `timeout` for the next step (negative: forever). Ok: the step is held
  /// until end_step. NotReady: nothing arrived in time. EndOfStream: the writer closed
  /// and every step was delivered. Throws ConnectionError if the writer died.
  StepStatus begin_step(std::chrono::duration<double> timeout);
  StepStatus begin_step();  ///< uses the `timeout` option

  /// Index of the current step (skips show steps dropped by the writer). For a shuffle
  /// group's batch: the batch's number in the group.
  std::uint64_t step_index() const;
  /// The current step was handed before to a group member that left without end_step
  /// (delivery is at-least-once; this marks the possible duplicate).
  bool step_redelivered() const;
  /// The current step is a shuffle batch: each variable has one row per sample, and the
  /// step attribute `sample_id` holds (step index, row) of each sample.
  bool step_is_batch() const;
  /// The ensemble member that wrote the current step (empty for a single writer).
  const std::string& step_source() const;
  const std::vector<VariableInfo>& variables() const;
  /// The variable, or nullptr.
  const VariableInfo* find(std::string_view name) const;
  const Attributes& step_attributes() const;
  const Attributes& stream_attributes() const;

  /// Zero-copy where the data plane allows it (inproc, shm, one block); otherwise the
  /// bytes are pulled into a reader-owned buffer. Valid until end_step.
  /// A variable the writer defined with Placement::Reader comes out of its pipeline, run
  /// here after transfer (once per step; kept across steps with the `cache` option),
  /// with the running statistics the writer published: the same bytes as writer
  /// placement. variables() shows it as the output's dtype and shape.
  ConstView get(std::string_view name);
  /// Exactly the box `sel` of the global array, pulled only from overlapping blocks. For
  /// a reader-placed variable, a box of the pipeline's output (the pipeline runs on the
  /// whole array); a box outside the output throws InvalidArgument.
  ConstView get(std::string_view name, const Box& sel);
  /// Copies the box into `dst` (`dst_bytes` must equal the box size; reader-placed
  /// variables as in get(name, sel)).
  void get_into(std::string_view name, const Box& sel, void* dst, std::size_t dst_bytes);
  /// Block `index` of the variable's blocks (as variables() lists them), whole: how local
  /// arrays are read, and any block of the others.
  ConstView get_block(std::string_view name, std::size_t index);

  /// Releases the step's buffers and acknowledges it to the writer.
  void end_step();
  /// Leaves the stream (the writer releases this reader's steps). Idempotent.
  void close();

  const std::string& name() const;
  ReaderStats stats() const;
  /// Fan-in streams: every ensemble member seen so far (one unnamed entry otherwise).
  std::vector<SourceInfo> sources() const;

  /// Collective open of a reader job (twinstream/mpi.hpp does this): each rank reports the
  /// oldest step the writer will offer it, the job agrees on the latest of them, and each
  /// rank starts there, so no rank sees a step another misses. Not for fan-in streams.
  std::uint64_t first_step() const;
  /// Steps with a lower index are acknowledged unread.
  void start_at(std::uint64_t index);

  class Impl;

 private:
  friend ReaderOps& reader_ops(Reader& r);  // the Python bindings' step.get(ops=...)
  std::unique_ptr<Impl> impl_;
};

}  // namespace twinstream
