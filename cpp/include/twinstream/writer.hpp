#pragma once
/// The publishing side of a stream: begin_step / put / end_step.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "twinstream/attribute.hpp"
#include "twinstream/dtype.hpp"
#include "twinstream/options.hpp"
#include "twinstream/selection.hpp"

namespace twinstream {

/// Counters a writer keeps; cheap to read at any time.
struct WriterStats {
  std::uint64_t steps = 0;          // steps ended (published or dropped)
  std::uint64_t dropped = 0;        // steps dropped by drop_oldest / drop_newest
  std::uint64_t blocked_ns = 0;     // time end_step/begin_step waited on a full queue
  std::uint64_t bytes = 0;          // payload bytes published
  std::uint32_t readers = 0;        // readers connected now
  std::uint32_t queued = 0;         // unacknowledged steps now
  double ops_seconds = 0;           // time the writer's operators took, all steps
  double ops_last_seconds = 0;      // ... in the last step that ran any
  std::uint64_t ops_steps = 0;      // steps in which operators ran
  // Writer-side cache of the pipelines readers ask it to run (reader option writer_ops).
  std::uint64_t cache_hits = 0;       // results served from the cache
  std::uint64_t cache_misses = 0;     // results computed
  std::uint64_t cache_evictions = 0;  // entries removed to make room (least recently used)
  std::uint64_t cache_rejected = 0;   // computed results not kept (no room beside pinned ones)
  std::uint64_t cache_bytes = 0;      // held now, never above cache_max_bytes
  std::uint64_t cache_entries = 0;
  std::uint64_t cache_max_bytes = 0;  // writer option cache_bytes
};

/// Where a variable's pre-processing pipeline runs (Writer::define).
enum class Placement : std::uint8_t {
  Writer,  ///< once per step, in end_step; the output is what travels to every reader
  Reader,  ///< in each reader after transfer; the pipeline travels as a step attribute
};

/// A writer job (N x M): every rank opens a Writer with options rank/ranks/job (the
/// collective form in twinstream/mpi.hpp sets them from an MPI_Comm) and puts its own
/// blocks; every rank calls begin_step/end_step the same number of times. Readers see one
/// stream whose steps hold all ranks' blocks, and pull each box only from the ranks whose
/// blocks overlap it. Without those options a writer is one rank, as before.
class Writer {
 public:
  /// Opens `name` for writing: binds the control port, writes the contact file
  /// `<dir>/<name>.twin` (mode 0600) and starts serving readers. Does not block.
  /// Throws InvalidArgument for bad options, Error if a live writer owns the name.
  Writer(std::string name, const WriterOptions& options = {});
  Writer(std::string name, const Options& options);
  ~Writer();  ///< close(), swallowing errors
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  /// Starts a step. Blocks while the queue is full under `block` (and, before the first
  /// step, until `min_readers` readers have joined, up to open_timeout).
  void begin_step();

  /// Copies `data` (C order, `count` elements of `dtype`) into the step as a block of
  /// the global array `name`; the caller may reuse `data` when put returns.
  void put(std::string_view name, DType dtype, const Dims& global_shape, const Dims& start,
           const Dims& count, const void* data);
  /// Whole-array form: start = 0, count = shape.
  void put(std::string_view name, DType dtype, const Dims& shape, const void* data);

  /// Joined array: a block `count` long on axis 0 (the other axes the same for every
  /// block). Readers see one array whose blocks are stacked along axis 0, rank by rank and
  /// in put order, its length the sum of theirs: atoms or particles per rank. A block may
  /// have length 0 (a rank with no atoms this step).
  void put_joined(std::string_view name, DType dtype, const Dims& count, const void* data);
  /// Local array: an independent block of any shape (rank fixed per variable); a rank may
  /// put several per step. Readers list them (Reader::blocks) and read any one by index.
  void put_local(std::string_view name, DType dtype, const Dims& count, const void* data);

  /// Returns writable memory inside transport memory for a block; fill it before
  /// end_step. Nothing is copied. The span stays valid until end_step.
  std::span<std::byte> reserve(std::string_view name, DType dtype, const Dims& global_shape,
                               const Dims& start, const Dims& count);
  std::span<std::byte> reserve(std::string_view name, DType dtype, const Dims& shape);
  /// reserve() with shared ownership: the memory stays mapped while the pointer lives
  /// (for bindings that hand it to a garbage-collected language). Writes after end_step
  /// are not published and may land in a later step.
  std::shared_ptr<std::byte> reserve_shared(std::string_view name, DType dtype,
                                            const Dims& global_shape, const Dims& start,
                                            const Dims& count);

  /// Attaches a pre-processing pipeline (its canonical text, ops::Pipeline::key(), e.g.
  /// "cast(to=float32)|log1p()") to variable `name`, from the next end_step on. With
  /// `dtype` and `shape` the pipeline is checked now, else at the variable's first put;
  /// either way a bad pipeline throws InvalidArgument naming the variable, the operator
  /// and the fix, never in the middle of a stream. An empty pipeline removes the
  /// definition; defining again replaces it (and restarts running statistics).
  /// Under Placement::Writer end_step runs the pipeline on the whole global array (its
  /// blocks assembled) and publishes the output under the same name, with step
  /// attributes `ops.<name>.pipeline`, `.placement`, `.seconds` and what the operators
  /// publish (`ops.<name>.<i>.<op>.<field>`). Under Placement::Reader the data travels
  /// as put, with the same attributes, and readers run the pipeline; running statistics
  /// are still kept here and published, so both placements give the same bytes.
  void define(std::string_view name, std::string_view pipeline,
              Placement placement = Placement::Writer, std::optional<DType> dtype = {},
              const Dims& shape = {});

  /// Step-level attribute (only between begin_step and end_step).
  void set_step_attribute(std::string_view name, AttributeValue value);
  /// Stream-level attribute; readers see it from the next step on.
  void set_attribute(std::string_view name, AttributeValue value);

  /// Discards the step being built (nothing is published, the index is not used).
  void abort_step();

  /// Publishes the step. Under drop_newest/drop_oldest never waits; under block it
  /// returns once the step is queued (the wait happens in the next begin_step).
  void end_step();

  /// Ends the stream: readers drain what is queued, then see end of stream. Waits up to
  /// close_timeout for them. Idempotent.
  void close();

  /// Stream name.
  const std::string& name() const;
  /// Where the contact file is.
  std::string contact_path() const;
  /// Control address as "host:port".
  std::string address() const;
  WriterStats stats() const;

  /// Implementation object (defined in cpp/src/core/writer_impl.hpp).
  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace twinstream
