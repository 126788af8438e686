// Block statistics (min, max, mean, std, NaN count): cheap enough to run on every block.
// The array is walked in chunks that stay in L1/L2; each chunk takes two passes, the
// second reading from cache, and the chunk results are merged with Chan et al.'s pairwise
// formula. float32 chunks without NaN or inf: a float32 sum with min and max, then the
// float64 sums of the deviations from that approximate mean and of their squares (the
// mean and m2 corrected by the first). Other chunks: a float64 sum, then the squared
// deviations from the chunk's own mean. Either way memory is read once and the variance
// stays exact to float64 rounding even for data with a large offset, where a one-pass sum
// of squares cancels catastrophically.
#include "ops/hwy_config.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/kernels_stats.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/kernels.hpp"

HWY_BEFORE_NAMESPACE();
namespace twinstream::ops::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr std::size_t kChunk = 8192;  // elements: 32-64 KiB, read from L1/L2 in pass two

// Loads N float64 lanes from float or double input.
template <class DD, typename T>
HWY_INLINE hn::Vec<DD> LoadAsF64(DD dd, const T* p) {
  if constexpr (std::is_same_v<T, double>) {
    return hn::LoadU(dd, p);
  } else {
    const hn::Rebind<float, DD> df;
    return hn::PromoteTo(dd, hn::LoadU(df, p));
  }
}

// Minimum and maximum in the data's own lanes (twice the lanes of float64 for float32);
// comparisons are false for NaN, so NaN never wins.
template <typename T>
void MinMax(const T* p, std::size_t n, double& mn, double& mx) {
  const hn::ScalableTag<T> d;
  const std::size_t N = hn::Lanes(d);
  const T inf = std::numeric_limits<T>::infinity();
  auto mn0 = hn::Set(d, inf), mn1 = hn::Set(d, inf);
  auto mx0 = hn::Set(d, -inf), mx1 = hn::Set(d, -inf);
  std::size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto a = hn::LoadU(d, p + i);
    const auto b = hn::LoadU(d, p + i + N);
    mn0 = hn::IfThenElse(hn::Lt(a, mn0), a, mn0);
    mn1 = hn::IfThenElse(hn::Lt(b, mn1), b, mn1);
    mx0 = hn::IfThenElse(hn::Gt(a, mx0), a, mx0);
    mx1 = hn::IfThenElse(hn::Gt(b, mx1), b, mx1);
  }
  T lo = hn::GetLane(hn::MinOfLanes(d, hn::IfThenElse(hn::Lt(mn1, mn0), mn1, mn0)));
  T hi = hn::GetLane(hn::MaxOfLanes(d, hn::IfThenElse(hn::Gt(mx1, mx0), mx1, mx0)));
  for (; i < n; ++i) {
    lo = p[i] < lo ? p[i] : lo;
    hi = p[i] > hi ? p[i] : hi;
  }
  mn = lo;
  mx = hi;
}

// Sum (and, when kSkipNaN, count) of the elements, in float64 with independent
// accumulators to hide the adds' latency. Without kSkipNaN a NaN makes the sum NaN, which
// is how the caller learns that the chunk needs the masked pass.
template <bool kSkipNaN, typename T>
double Sum(const T* p, std::size_t n, std::size_t& count) {
  const hn::ScalableTag<double> dd;
  const std::size_t N = hn::Lanes(dd);
  const auto one = hn::Set(dd, 1.0);
  auto s0 = hn::Zero(dd), s1 = hn::Zero(dd), c0 = hn::Zero(dd);
  std::size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    auto a = LoadAsF64(dd, p + i);
    auto b = LoadAsF64(dd, p + i + N);
    if constexpr (kSkipNaN) {
      const auto oa = hn::Eq(a, a), ob = hn::Eq(b, b);
      a = hn::IfThenElseZero(oa, a);
      b = hn::IfThenElseZero(ob, b);
      c0 = hn::Add(c0, hn::Add(hn::IfThenElseZero(oa, one), hn::IfThenElseZero(ob, one)));
    }
    s0 = hn::Add(s0, a);
    s1 = hn::Add(s1, b);
  }
  double sum = hn::GetLane(hn::SumOfLanes(dd, hn::Add(s0, s1)));
  // Exact: each lane holds a whole number far below 2^53.
  count = kSkipNaN ? static_cast<std::size_t>(hn::GetLane(hn::SumOfLanes(dd, c0))) : i;
  for (; i < n; ++i) {
    const double v = static_cast<double>(p[i]);
    if (kSkipNaN && v != v) continue;
    sum += v;
    ++count;
  }
  return sum;
}

#if HWY_TARGET != HWY_SCALAR  // one-lane vectors have no halves
// Pass one for float32: a float32 sum, only to pick the shift for pass two (its rounding
// does not reach the results), with min/max in the same read. NaN or inf in the chunk, or
// a sum that overflows, make it non-finite.
float ApproxSumMinMaxF32(const float* p, std::size_t n, float& mn, float& mx) {
  const hn::ScalableTag<float> df;
  const std::size_t N = hn::Lanes(df);
  auto s0 = hn::Zero(df), s1 = hn::Zero(df);
  auto lo0 = hn::Set(df, HUGE_VALF), lo1 = lo0;
  auto hi0 = hn::Set(df, -HUGE_VALF), hi1 = hi0;
  std::size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto a = hn::LoadU(df, p + i);
    const auto b = hn::LoadU(df, p + i + N);
    lo0 = hn::Min(lo0, a);
    lo1 = hn::Min(lo1, b);
    hi0 = hn::Max(hi0, a);
    hi1 = hn::Max(hi1, b);
    s0 = hn::Add(s0, a);
    s1 = hn::Add(s1, b);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
  float l = hn::GetLane(hn::MinOfLanes(df, hn::Min(lo0, lo1)));
  float h = hn::GetLane(hn::MaxOfLanes(df, hn::Max(hi0, hi1)));
  for (; i < n; ++i) {
    sum += p[i];
    l = p[i] < l ? p[i] : l;
    h = p[i] > h ? p[i] : h;
  }
  mn = l;
  mx = h;
  return sum;
}

// Pass two for float32: the sums of d = x - shift and of d^2 in float64. x - shift is
// exact (both are floats), so sum(d) is as exact as a float64 sum of x would be.
void ShiftedSumsF32(const float* p, std::size_t n, double shift, double& sum_d,
                    double& sum_d2) {
  const hn::ScalableTag<double> dd;
  const std::size_t N = hn::Lanes(dd);
  const auto vshift = hn::Set(dd, shift);
  auto s0 = hn::Zero(dd), s1 = hn::Zero(dd);
  auto q0 = hn::Zero(dd), q1 = hn::Zero(dd), q2 = hn::Zero(dd), q3 = hn::Zero(dd);
  std::size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const auto da = hn::Sub(LoadAsF64(dd, p + i), vshift);
    const auto db = hn::Sub(LoadAsF64(dd, p + i + N), vshift);
    const auto dc = hn::Sub(LoadAsF64(dd, p + i + 2 * N), vshift);
    const auto de = hn::Sub(LoadAsF64(dd, p + i + 3 * N), vshift);
    s0 = hn::Add(s0, hn::Add(da, db));
    s1 = hn::Add(s1, hn::Add(dc, de));
    q0 = hn::MulAdd(da, da, q0);
    q1 = hn::MulAdd(db, db, q1);
    q2 = hn::MulAdd(dc, dc, q2);
    q3 = hn::MulAdd(de, de, q3);
  }
  double s = hn::GetLane(hn::SumOfLanes(dd, hn::Add(s0, s1)));
  double q = hn::GetLane(hn::SumOfLanes(dd, hn::Add(hn::Add(q0, q1), hn::Add(q2, q3))));
  for (; i < n; ++i) {
    const double d = static_cast<double>(p[i]) - shift;
    s += d;
    q += d * d;
  }
  sum_d = s;
  sum_d2 = q;
}
#endif

// Sum of squared deviations from `mean` (pass two, reading the chunk from L1).
template <bool kSkipNaN, typename T>
double SquaredDeviations(const T* p, std::size_t n, double mean) {
  const hn::ScalableTag<double> dd;
  const std::size_t N = hn::Lanes(dd);
  const auto vmean = hn::Set(dd, mean);
  // Four accumulators: the multiply-adds' latency, not the loads from L1, bounds this loop.
  auto m0 = hn::Zero(dd), m1 = hn::Zero(dd), m2v = hn::Zero(dd), m3 = hn::Zero(dd);
  std::size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const auto a = LoadAsF64(dd, p + i);
    const auto b = LoadAsF64(dd, p + i + N);
    const auto c = LoadAsF64(dd, p + i + 2 * N);
    const auto e = LoadAsF64(dd, p + i + 3 * N);
    auto da = hn::Sub(a, vmean);
    auto db = hn::Sub(b, vmean);
    auto dc = hn::Sub(c, vmean);
    auto de = hn::Sub(e, vmean);
    if constexpr (kSkipNaN) {
      da = hn::IfThenElseZero(hn::Eq(a, a), da);
      db = hn::IfThenElseZero(hn::Eq(b, b), db);
      dc = hn::IfThenElseZero(hn::Eq(c, c), dc);
      de = hn::IfThenElseZero(hn::Eq(e, e), de);
    }
    m0 = hn::MulAdd(da, da, m0);
    m1 = hn::MulAdd(db, db, m1);
    m2v = hn::MulAdd(dc, dc, m2v);
    m3 = hn::MulAdd(de, de, m3);
  }
  double m2 = hn::GetLane(hn::SumOfLanes(dd, hn::Add(hn::Add(m0, m1), hn::Add(m2v, m3))));
  for (; i < n; ++i) {
    const double v = static_cast<double>(p[i]);
    if (!kSkipNaN || v == v) m2 += (v - mean) * (v - mean);
  }
  return m2;
}

template <typename T>
BlockStats ChunkStats(const T* p, std::size_t n) {
  BlockStats s;
#if HWY_TARGET != HWY_SCALAR  // one-lane vectors have no float32 sum worth its pass
  if constexpr (std::is_same_v<T, float>) {
    // Chunks without NaN, inf or float32 overflow: pass one reads the chunk once for an
    // approximate mean (float32) and min/max; pass two sums the deviations from that
    // shift and their squares in float64. mean = shift + sum(d)/n, and
    // m2 = sum(d^2) - sum(d)^2/n, where sum(d) is small (the shift is close to the mean),
    // so the correction cancels nothing that matters even for data with a large offset.
    float mn, mx;
    const float approx = ApproxSumMinMaxF32(p, n, mn, mx);
    if (std::isfinite(approx)) {
      const double shift = static_cast<float>(approx / static_cast<float>(n));
      double sum_d, sum_d2;
      ShiftedSumsF32(p, n, shift, sum_d, sum_d2);
      const double count = static_cast<double>(n);
      s.count = n;
      s.min = mn;
      s.max = mx;
      s.mean = shift + sum_d / count;
      s.m2 = std::max(0.0, sum_d2 - sum_d * (sum_d / count));
      return s;
    }
  }
#endif
  std::size_t count = n;
  double sum = Sum<false>(p, n, count);
  const bool masked = sum != sum;  // a NaN (or +inf and -inf) in the chunk: take the slow pass
  if (masked) sum = Sum<true>(p, n, count);
  s.count = count;
  s.nan_count = n - count;
  if (count == 0) return s;
  MinMax(p, n, s.min, s.max);
  s.mean = sum / static_cast<double>(count);
  s.m2 = masked ? SquaredDeviations<true>(p, n, s.mean) : SquaredDeviations<false>(p, n, s.mean);
  return s;
}

BlockStats Stats(DType t, const void* in, std::size_t n) {
  BlockStats total;
  HWY_ALIGN double buf[kChunk];
  const std::size_t item = dtype_size(t);
  for (std::size_t off = 0; off < n; off += kChunk) {
    const std::size_t len = n - off < kChunk ? n - off : kChunk;
    const auto* p = static_cast<const std::byte*>(in) + off * item;
    BlockStats c;
    if (t == DType::Float32) {
      c = ChunkStats(reinterpret_cast<const float*>(p), len);
    } else if (t == DType::Float64) {
      c = ChunkStats(reinterpret_cast<const double*>(p), len);
    } else {
      // Other dtypes are widened chunk by chunk into a buffer that stays in cache.
      to_float64(t, p, buf, len);
      c = ChunkStats(buf, len);
    }
    total.merge(c);
  }
  return total;
}

}  // namespace twinstream::ops::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "ops/simd_target.hpp"

namespace twinstream::ops::kernels {
HWY_EXPORT(Stats);

void BlockStats::merge(const BlockStats& b) {
  nan_count += b.nan_count;
  if (b.count == 0) return;
  if (count == 0) {
    const auto nans = nan_count;
    *this = b;
    nan_count = nans;
    return;
  }
  const double na = static_cast<double>(count);
  const double nb = static_cast<double>(b.count);
  const double n = na + nb;
  const double delta = b.mean - mean;
  mean += delta * (nb / n);
  m2 += b.m2 + delta * delta * (na * nb / n);
  min = b.min < min ? b.min : min;
  max = b.max > max ? b.max : max;
  count += b.count;
}

double BlockStats::stddev() const {
  if (count == 0) return std::numeric_limits<double>::quiet_NaN();
  return std::sqrt(m2 / static_cast<double>(count));
}

BlockStats stats(DType t, const void* in, std::size_t n) {
  apply_target_from_environment();
  BlockStats s = HWY_DYNAMIC_DISPATCH(Stats)(t, in, n);
  if (s.count == 0) {
    s.min = s.max = s.mean = std::numeric_limits<double>::quiet_NaN();
  }
  return s;
}

}  // namespace twinstream::ops::kernels
#endif  // HWY_ONCE
