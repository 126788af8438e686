#pragma once
/// The ops' per-element kernels. Each is written once with Highway, compiled for every
/// SIMD target (simd_target.hpp) and dispatched to the target in use on each call. No
/// pointer needs any alignment. `in` and `out` may be the same array where it says so;
/// otherwise they must not overlap. Results are identical on every target except log1p
/// (within its stated ULP bound).
#include <cstddef>
#include <cstdint>

#include "twinstream/dtype.hpp"

namespace twinstream::ops::kernels {

/// Kernels whose output is at least this large (past half the last-level cache) write it
/// with streaming stores: a cached store first reads every output line it then overwrites
/// whole. Each kernel says where its output streams allow it.
inline constexpr std::size_t kStreamOutputBytes = std::size_t{16} << 20;

/// True for the dtypes to_float32/to_float64 accept: bool, every integer, float16/32/64.
bool is_real_numeric(DType t);

/// n elements of dtype `src` to float32, as numpy's astype(float32) (round to nearest
/// even; float64 beyond float32's range becomes +-inf; NaN stays NaN).
void to_float32(DType src, const void* in, float* out, std::size_t n);
/// n elements of dtype `src` to float64, as numpy's astype(float64).
void to_float64(DType src, const void* in, double* out, std::size_t n);

/// float32 to IEEE binary16 bits: round to nearest even, overflow to +-inf, subnormals
/// kept, NaN kept as a quiet NaN with the top payload bits (what F16C hardware does).
void float32_to_float16(const float* in, std::uint16_t* out, std::size_t n);
/// float32 to bfloat16 bits (the top half of a float32): round to nearest even, NaN kept
/// as a quiet NaN (0x0040 ORed into the top half) instead of rounding into infinity.
void float32_to_bfloat16(const float* in, std::uint16_t* out, std::size_t n);
/// Quantises float32 to int8: q = clamp(rint(x / scale), -128, 127) with ties to even;
/// NaN becomes 0, +-inf the bound.
void float32_to_int8(const float* in, std::int8_t* out, std::size_t n, float scale);

/// out = (in - sub) / div, elementwise in float32 or float64 (t), the parameters rounded
/// to t first. In place allowed. Standardize and minmax are this kernel.
void affine(DType t, const void* in, void* out, std::size_t n, double sub, double div);
/// out[i] = (in[i] - sub[i]) / div[i]; sub and div are arrays of t (per-channel
/// parameters laid out to match `in`). In place allowed.
void affine_arrays(DType t, const void* in, void* out, std::size_t n, const void* sub,
                   const void* div);
/// out = min(max(in, lo), hi) for float32/64 and every integer dtype; NaN stays NaN (as
/// numpy.clip). lo and hi must already be representable in t (the caller rounds them).
/// In place allowed.
void clip(DType t, const void* in, void* out, std::size_t n, double lo, double hi);
/// out = log1p(in) for float32/float64, within 4 ULP of numpy (C log1p); exact for
/// subnormals, +-0, +inf, -1 (gives -inf), x < -1 and NaN (give NaN). In place allowed.
void log1p(DType t, const void* in, void* out, std::size_t n);

/// Statistics of one block, NaNs skipped (as numpy's nanmin/nanmax/nanmean/nanstd) and
/// counted. Accumulated in float64, two passes per cache-sized chunk, chunks merged with
/// Chan et al.'s pairwise update, so a large offset does not swamp the variance.
struct BlockStats {
  std::uint64_t count = 0;      ///< elements that are not NaN
  std::uint64_t nan_count = 0;  ///< NaN elements (always 0 for integer dtypes)
  double min = 0, max = 0;      ///< NaN when count == 0
  double mean = 0;              ///< NaN when count == 0
  double m2 = 0;                ///< sum of squared deviations from the mean
  /// Adds another block's statistics (Chan et al.).
  void merge(const BlockStats& b);
  /// Population standard deviation (ddof = 0); NaN when count == 0.
  double stddev() const;
};
/// Statistics of n elements of any real numeric dtype.
BlockStats stats(DType t, const void* in, std::size_t n);

/// Byte shuffle for compression: out[b * n + i] = byte b of element i (itemsize bytes
/// each), so that bytes of equal significance are adjacent.
void shuffle_bytes(const void* in, void* out, std::size_t n, std::size_t itemsize);
/// Inverse of shuffle_bytes.
void unshuffle_bytes(const void* in, void* out, std::size_t n, std::size_t itemsize);

}  // namespace twinstream::ops::kernels
