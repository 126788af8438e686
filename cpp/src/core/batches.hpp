#pragma once
// Shuffle batches as steps: a batch of samples becomes a step whose variables have one row
// per sample, each row pointing into the writer memory of the step it came from (no copy
// on the writer; readers pull the rows like any block).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/messages.hpp"
#include "core/shuffle.hpp"

namespace twinstream {

/// The sampled variables of a shuffle group, fixed by the first step it takes: a batch
/// mixes rows of several steps, so they must agree in dtype and row shape.
struct SampleSignature {
  struct Var {
    std::string name;
    DType dtype = DType::Float64;
    Dims row_shape;  // shape without the first axis
  };
  std::vector<Var> vars;
};

/// Samples (rows along the first axis) step `variables` offers the group, or 0 with `why`
/// when the step cannot be sampled. The first sampled step sets `sig`.
std::uint64_t sample_rows(const ShuffleOptions& opt,
                          const std::vector<wire::VariableMeta>& variables,
                          SampleSignature& sig, std::string* why);

using StepVariables = std::function<const std::vector<wire::VariableMeta>&(std::uint64_t step)>;

/// The batch's variables: sample i is row i, taken from every block of its step that holds
/// that row.
std::vector<wire::VariableMeta> batch_variables(const SampleSignature& sig,
                                                const std::vector<Sample>& samples,
                                                const StepVariables& step_variables);

using StepAttributes = std::function<const Attributes&(std::uint64_t step)>;

/// Marks the batch's reader-placed variables for the reader (reader_ops.hpp): for each
/// sampled variable whose steps carried `ops.<x>.placement` = "reader", copies
/// `ops.<x>.placement` and `ops.<x>.pipeline` into `out` when every sample's step agrees,
/// else sets the placement to "mixed" (the reader refuses to guess). Writer-placed
/// variables need nothing: their rows are already the output's.
void batch_ops_attributes(const SampleSignature& sig, const std::vector<Sample>& samples,
                          const StepAttributes& step_attributes, Attributes& out);

/// (step index, row) of each sample as an int64 (n, 2) array: the batch's `sample_id`.
ArrayAttribute sample_ids(const std::vector<Sample>& samples);

}  // namespace twinstream
