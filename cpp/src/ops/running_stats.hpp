#pragma once
/// Running per-channel statistics for standardize() without fixed mean/std.
///
/// Semantics, so that writer and reader placement give the same bytes:
///  - The writer keeps one RunningStats per (variable, standardize operator). At each
///    step it first folds the step's block in (update), then standardizes that block
///    with params(): step k is standardized with the statistics of steps 0..k.
///  - It publishes params() with the step (publish): mean and std per channel as float64
///    arrays, and the element count per channel.
///  - A reader-placed pipeline standardizes with the published float64 values
///    (read_published), so both sides run the same kernel on the same parameters and the
///    results are bit-identical.
///  - A reader that keeps its own statistics instead (no published ones) sees only the
///    steps it reads, so its values differ from the writer's; when it reads every step,
///    they agree to float64 rounding.
/// NaN elements are skipped (and do not count). A channel with no data yet has mean 0; a
/// std of 0 or a non-finite std is applied as 1, so constant channels map to 0 rather
/// than NaN.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ops/kernels.hpp"
#include "ops/tensor.hpp"
#include "twinstream/attribute.hpp"

namespace twinstream::ops {

/// A C-ordered array seen as (outer, channels, inner) around a channel axis.
struct ChannelLayout {
  std::uint64_t outer = 1, channels = 1, inner = 1;
};
/// The layout for `axis` (negative counts from the end; unset: one channel). Throws
/// InvalidArgument when the axis is out of range.
ChannelLayout channel_layout(const Dims& shape, std::optional<std::int64_t> axis);

/// The mean and std standardize applies, one per channel.
struct StandardizeParams {
  std::vector<double> mean;
  std::vector<double> std;
};

class RunningStats {
 public:
  /// Folds one block in. Throws InvalidArgument when the channel count differs from
  /// earlier blocks.
  void update(const TensorView& block, std::optional<std::int64_t> axis);
  /// Per-channel statistics so far (empty before the first update).
  const std::vector<kernels::BlockStats>& channels() const { return channels_; }
  /// What standardize applies now (see the semantics above).
  StandardizeParams params() const;
  /// Adds `<prefix>mean`, `<prefix>std` (float64) and `<prefix>count` (int64: elements
  /// seen, NaN excluded), one entry per channel.
  void publish(Attributes& out, const std::string& prefix) const;
  /// The parameters a writer published; nullopt when they are absent, InvalidArgument
  /// when they are malformed.
  static std::optional<StandardizeParams> read_published(const Attributes& attrs,
                                                         const std::string& prefix);

 private:
  std::vector<kernels::BlockStats> channels_;
};

/// Applies y = (x - mean[c]) / std[c] over the channels of `in` (float32 or float64),
/// writing `out` (may be in.data).
void standardize_channels(const TensorView& in, void* out, std::optional<std::int64_t> axis,
                          const StandardizeParams& p);

}  // namespace twinstream::ops
