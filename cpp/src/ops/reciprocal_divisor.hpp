#pragma once
// Division of many float32 values by one divisor b as q = d*hi + RN(d*lo) (one multiply
// and one fused multiply-add, with hi + lo ~ 1/b), where that is proven to give the
// correctly rounded d / b bit for bit: a true division keeps up with neither memory nor
// the other kernels (standardize at 0.8x memcpy with it).
//
// The proof is exhaustive. For b scaled to bn in [1, 2) (its exponent removed, sign
// kept), every significand a in [1, 2) is checked: a*hi_n + RN(a*lo_n) == RN(a / bn).
// Scaling d and b by powers of 2 scales every intermediate exactly as long as all of them
// stay normal floats, so the check covers every d whose magnitude lies in [min, max]
// below; other d (0, subnormals, inf, NaN and the extremes) are divided. About 1 in 300
// divisors fails the check (sqrt(3) does) and is always divided.
//
// The check costs about as much as dividing 2^23 values, so a divisor is checked only
// once the calls for it have covered that many elements: parameters fixed for a stream
// (standardize with a given mean and std, minmax) get there after a few steps, running
// statistics whose std moves every step never pay for it.
#include <cstddef>
#include <cstdint>

namespace twinstream::ops {

struct ReciprocalDivisor {
  bool usable = false;
  float hi = 0, lo = 0;                     ///< 1/b ~ hi + lo (lo may be 0)
  std::uint32_t min_abs_bits = 0;           ///< |d|'s bits at least this...
  std::uint32_t max_abs_bits = 0;           ///< ...and at most this for the fast path
};

/// The exhaustive check, run by the calling SIMD target (it must fuse multiply-adds):
/// true iff a*hi + RN(a*lo) == RN(a / bn) for every float a in [1, 2).
using ReciprocalCheck = bool (*)(float bn, float hi, float lo);

/// What dividing n elements by b may use. Thread-safe; remembers the last few divisors.
ReciprocalDivisor reciprocal_divisor(float b, std::size_t n, ReciprocalCheck check);

/// Elements a divisor must have been used for before it is checked (2^23, the check's
/// cost in divisions).
inline constexpr std::uint64_t kReciprocalCheckAfter = std::uint64_t{1} << 23;

}  // namespace twinstream::ops
