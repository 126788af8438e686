#pragma once
// Reader-side pre-processing. A variable the writer defined with Placement::Reader
// travels as put, with step attributes `ops.<x>.placement` = "reader", `ops.<x>.pipeline`
// and the running statistics the writer keeps; here, after transfer, the pipeline runs
// with those published statistics, so a reader gets the bytes writer placement would
// have sent. Reader-requested pipelines (Python's step.get(name, ops=[...])) run here too,
// through the same cache and the same operator-time counters.
//
// Lifetimes: a result is shared (ConstView::owner keeps it alive); within a step a
// reader-placed variable's pipeline runs once, and with the `cache` option its result is
// kept across steps, keyed by (step, source/variable, pipeline), bounded in bytes.
//
// Shuffle batches: a batch's rows come from several steps. The writer marks a batch's
// reader-placed variables (batch_ops_attributes in batches.hpp) and the reader applies a
// pipeline to the batch only when it works row by row with fixed parameters (cast, clip,
// log1p, standardize with mean and std, minmax with lo and hi, stats): then the batch's
// bytes are those of the steps' outputs, row for row. Any other pipeline (patches,
// subsample, running statistics, block-dependent minmax, compress) is refused when the
// batch is read, naming the variable, the pipeline and the fix (writer placement).
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ops/cache.hpp"
#include "ops/pipeline.hpp"
#include "twinstream/options.hpp"
#include "twinstream/reader.hpp"

namespace twinstream {

class WriterJob;

/// The reader-placed pipeline of `name` in a step with these attributes (null when the
/// variable is not reader-placed). Throws InvalidArgument for a malformed pipeline.
const std::string* reader_pipeline_key(const Attributes& step_attributes, std::string_view name);

/// Whether `p` gives the same bytes on a batch of rows as on whole steps taken row by
/// row; when not, `why` names the operator that depends on the whole step.
bool runs_row_by_row(const ops::Pipeline& p, std::string* why);

class ReaderOps {
 public:
  ReaderOps(std::string stream, const ReaderOptions& options);

  /// A step began: per-step results and operator time start afresh.
  void begin_step();
  /// The step ended: its results are dropped (the cache keeps its own).
  void end_step();

  /// Reader::get: the variable (or box) as this reader should see it.
  ConstView get(WriterJob& s, std::string_view name, const Box* sel);
  /// Reader::get_into, likewise.
  void get_into(WriterJob& s, std::string_view name, const Box& sel, void* dst,
                std::size_t dst_bytes);
  /// Reader::variables: a reader-placed variable as its pipeline's output where that is
  /// known before running it (one block covering it), the others as sent.
  const std::vector<VariableInfo>& variables(const WriterJob& s) const;

  /// A pipeline the reader asked for (step.get(name, ops=...)), on `in`, for the current
  /// step of `r`. `label` names the input (variable, box, placed pipeline) in the cache
  /// key and in errors. A running standardize without published statistics keeps its own
  /// per (label, pipeline), updated with each step read, and is never cached.
  std::shared_ptr<const ops::PipelineResult> run_requested(const Reader& r,
                                                           const std::string& label,
                                                           const ops::Pipeline& p,
                                                           const ops::TensorView& in,
                                                           const ops::PythonRunner& python);
  /// A kept result (cache on), or null: `key` empty means the pipeline last used for
  /// (source, name); else `key` under `name` or a label of it ("name<placed pipeline>").
  std::shared_ptr<const ops::PipelineResult> cached(std::uint64_t step, const std::string& source,
                                                    const std::string& name,
                                                    const std::string& key);

  /// Operator time of the current (or last) step.
  double step_seconds() const;
  /// Adds the operator and cache counters.
  void add_stats(ReaderStats& out) const;

 private:
  using Result = std::shared_ptr<const ops::PipelineResult>;
  // The output of the reader-placed pipeline of `name` in the current step.
  Result placed_output(WriterJob& s, std::string_view name, const std::string& key);
  const ops::Pipeline& pipeline(const std::string& key);
  Result run_counted(const ops::Pipeline& p, const ops::TensorView& in, const ops::RunOptions& o);
  Box checked_box(std::string_view name, const std::string& key, const ops::Tensor& out,
                  const Box& sel) const;

  const std::string stream_;
  std::unique_ptr<ops::ResultCache> cache_;  // null: cache off
  std::unordered_map<std::string, ops::Pipeline> pipelines_;  // parsed, by key
  std::map<std::string, Result, std::less<>> step_results_;   // this step's, by variable
  std::map<std::pair<std::string, std::string>, ops::PipelineState> own_state_;
  std::map<std::pair<std::string, std::string>, std::string> last_key_;  // (source, label)
  mutable std::vector<VariableInfo> shown_;  // variables(), built once per step
  mutable bool shown_valid_ = false;

  mutable std::mutex mu_;  // the counters: stats() may be asked from another thread
  double step_seconds_ = 0;
  double ops_seconds_ = 0;
  double ops_last_seconds_ = 0;
  std::uint64_t ops_steps_ = 0;
  std::uint64_t ops_runs_ = 0;
  bool ran_in_step_ = false;
};

/// The reader's pre-processing state (for the Python bindings' step.get(ops=...)).
ReaderOps& reader_ops(Reader& r);

}  // namespace twinstream
