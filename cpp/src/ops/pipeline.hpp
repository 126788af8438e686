#pragma once
/// A per-variable pre-processing pipeline: a list of operators (op_spec.hpp), checked
/// against the variable's dtype and shape when it is defined, run on each block.
///
/// The same Pipeline gives the same bytes wherever it runs (writer or reader side): the
/// kernels are deterministic across SIMD targets (log1p within its ULP bound), and the
/// only state, running statistics, is published by the writer and read by the reader
/// (running_stats.hpp).
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ops/op_spec.hpp"
#include "ops/running_stats.hpp"
#include "ops/tensor.hpp"
#include "twinstream/attribute.hpp"

namespace twinstream::ops {

/// What a pipeline produces for an input, as far as it is known before running: after
/// compress, decompress or a Python operator the shape (and after the last two the
/// dtype) is only known from the data, and later operators are checked when they run.
struct TensorSpec {
  DType dtype = DType::Float32;
  Dims shape;
  bool known = true;
};

/// One operator's share of a run.
struct OpTiming {
  std::string op;  ///< canonical text of the operator
  double seconds = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
};

struct PipelineResult {
  Tensor output;  ///< a view of the input when no operator changed it
  std::vector<OpTiming> timings;
  Attributes attributes;  ///< published by stats and running standardize
};

/// Runs a Python operator (the bindings provide it); returns an owned tensor.
using PythonRunner =
    std::function<Tensor(std::size_t op_index, const PythonOp& op, const TensorView& in)>;

/// State a pipeline keeps across steps on the side that maintains it: one RunningStats
/// per running standardize, by operator index.
struct PipelineState {
  std::map<std::size_t, RunningStats> running;
};

struct RunOptions {
  std::string_view variable;     ///< names errors
  std::string attribute_prefix;  ///< prepended to every published attribute name
  /// Where running standardize finds its parameters: first in `published` (a reader
  /// using the writer's values), else in `state`, which it updates with this block.
  const Attributes* published = nullptr;
  PipelineState* state = nullptr;
  PythonRunner python;  ///< needed when the pipeline has Python operators
  /// Copy the input when no operator produced new bytes, so that the output outlives the
  /// input (for caching, or handing to another thread).
  bool own_output = false;
  /// Only keep the running statistics: stop after the last running standardize has
  /// folded its input in and published its parameters (its kernel and later operators
  /// do not run; the output is that standardize's input). What a writer does for a
  /// reader-placed pipeline, so that readers standardize with the writer's values.
  bool statistics_only = false;
};

class Pipeline {
 public:
  Pipeline() = default;
  /// Throws InvalidArgument when the list breaks a rule that does not depend on the data
  /// (more than kMaxOps operators, an operator after compress).
  explicit Pipeline(std::vector<OpSpec> ops);
  /// Parses the canonical text form (key()).
  static Pipeline parse(std::string_view text);

  const std::vector<OpSpec>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }
  /// The canonical text form: wire representation and cache key.
  const std::string& key() const { return key_; }
  /// True when a running standardize needs state or published parameters.
  bool has_running_stats() const;
  bool has_python() const;

  /// What the pipeline makes of `dtype` and `shape`; throws InvalidArgument naming the
  /// variable, the operator and the fix (unknown dtype for an operator, patch larger
  /// than the array, stride out of range, ...). Call it when the variable is defined.
  TensorSpec validate(DType dtype, const Dims& shape, std::string_view variable) const;

  /// Runs every operator on `in`, checking each against the actual data first. Returns
  /// the output, the time each operator took and the attributes it published (named
  /// `<prefix><index>.<op>.<field>`). The output owns its bytes unless no operator
  /// changed the data and own_output is false (then it views `in`).
  PipelineResult run(const TensorView& in, const RunOptions& options) const;

 private:
  std::vector<OpSpec> ops_;
  std::string key_;
};

}  // namespace twinstream::ops
