#pragma once
/// Operator specifications: what each operator is, with typed parameters, and the one
/// canonical text form that travels on the wire and keys the cache. Two specs are the
/// same operator exactly when their text forms are equal.
///
/// Text form: `name(key=value,...)` per operator, operators joined by `|`, e.g.
///   cast(to=float32)|standardize(axis=1,mean=0.5:2,std=1:4)|patches(size=64x64,stride=64x64)
/// Numbers are written in their shortest round-trip form, lists of numbers with `:`,
/// shapes with `x`. Keys appear in a fixed order; defaults are written out.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "twinstream/dtype.hpp"
#include "twinstream/selection.hpp"

namespace twinstream::ops {

/// cast: to float32, float16, bfloat16 (stored as uint16 bits) or int8 (q = rint(x/scale)).
enum class CastTarget : std::uint8_t { Float32, Float16, BFloat16, Int8 };
struct CastOp {
  CastTarget to = CastTarget::Float32;
  double scale = 1.0;  ///< int8 only: the quantisation step
};

/// standardize: y = (x - mean) / std per channel along `axis` (one channel when unset).
/// Empty mean/std: running statistics maintained by the writer (running_stats.hpp).
struct StandardizeOp {
  std::vector<double> mean;
  std::vector<double> std;
  std::optional<std::int64_t> axis;
  bool running() const { return mean.empty(); }
};

/// minmax: y = (x - lo) / (hi - lo); unset bounds are the block's own NaN-skipping min/max.
struct MinMaxOp {
  std::optional<double> lo;
  std::optional<double> hi;
};

/// clip: y = min(max(x, lo), hi); NaN stays NaN.
struct ClipOp {
  double lo = 0;
  double hi = 0;
};

/// log1p: y = log(1 + x).
struct Log1pOp {};

/// subsample: x[::s0, ::s1, ...]; fewer strides than axes leave the last axes whole.
struct SubsampleOp {
  Dims strides;
};

/// patches: tiles of `size` over the first len(size) axes, every `stride` (default: size),
/// returned as a batch (n_patches, *size, *remaining axes). Partial tiles are dropped.
struct PatchesOp {
  Dims size;
  Dims stride;
};

/// stats: passes data through and publishes min, max, mean, std, count, nan_count.
struct StatsOp {};

/// compress: byte shuffle + zstd or lz4 (codec.hpp); must be the last operator.
enum class Codec : std::uint8_t { Zstd = 1, Lz4 = 2 };
struct CompressOp {
  Codec codec = Codec::Zstd;
  int level = 1;
};

/// decompress: the inverse of compress (the reader's side of a compressed variable).
struct DecompressOp {};

/// python: a Python callable, run by whoever runs the pipeline through a callback; only
/// its name travels.
struct PythonOp {
  std::string name;
};

using OpSpec = std::variant<CastOp, StandardizeOp, MinMaxOp, ClipOp, Log1pOp, SubsampleOp,
                            PatchesOp, StatsOp, CompressOp, DecompressOp, PythonOp>;

/// The operator's name as users write it ("cast", "standardize", ...).
std::string_view op_name(const OpSpec& op);
/// The canonical text form of one operator.
std::string to_string(const OpSpec& op);
/// The canonical text form of a pipeline (empty string for no operators).
std::string to_string(const std::vector<OpSpec>& ops);
/// Parses one operator; throws InvalidArgument naming the operator, the key and the fix.
OpSpec parse_op(std::string_view text);
/// Parses a pipeline's text form (from the wire or a user); every field is checked.
std::vector<OpSpec> parse_ops(std::string_view text);
/// Names of the operators, for error messages ("cast, standardize, ...").
std::string_view op_names();

/// Largest text form accepted; a pipeline longer than this is refused.
inline constexpr std::size_t kMaxSpecBytes = 1u << 20;
/// Most operators in one pipeline.
inline constexpr std::size_t kMaxOps = 64;

}  // namespace twinstream::ops
