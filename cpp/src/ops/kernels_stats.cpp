// Block statistics (min, max, mean, std, NaN count): cheap enough to run on every block.
// The array is walked in chunks that fit in L1; each chunk takes two passes (sum, then the
// squared deviations from the chunk's own mean, the second pass reading from cache) in
// float64, and the chunk results are merged with Chan et al.'s pairwise formula. This
// reads memory once and keeps the variance exact to float64 rounding even for data with a
// large offset, where a one-pass sum of squares cancels catastrophically.
#include "ops/hwy_config.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/kernels_stats.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <limits>

#include "ops/kernels.hpp"

HWY_BEFORE_NAMESPACE();
namespace twinstream::ops::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr std::size_t kChunk = 2048;  // elements: 8-16 KiB, resident in L1 for pass two

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

template <typename T>
BlockStats ChunkStats(const T* p, std::size_t n) {
  const hn::ScalableTag<double> dd;
  const std::size_t N = hn::Lanes(dd);
  const double inf = std::numeric_limits<double>::infinity();
  auto vsum = hn::Zero(dd);
  auto vmin = hn::Set(dd, inf);
  auto vmax = hn::Set(dd, -inf);
  std::size_t count = 0;
  std::size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = LoadAsF64(dd, p + i);
    const auto ok = hn::Eq(v, v);
    count += hn::CountTrue(dd, ok);
    vsum = hn::Add(vsum, hn::IfThenElseZero(ok, v));
    vmin = hn::IfThenElse(hn::Lt(v, vmin), v, vmin);  // false for NaN: NaN skipped
    vmax = hn::IfThenElse(hn::Gt(v, vmax), v, vmax);
  }
  double sum = hn::GetLane(hn::SumOfLanes(dd, vsum));
  double mn = hn::GetLane(hn::MinOfLanes(dd, vmin));
  double mx = hn::GetLane(hn::MaxOfLanes(dd, vmax));
  for (std::size_t j = i; j < n; ++j) {
    const double v = static_cast<double>(p[j]);
    if (v != v) continue;
    ++count;
    sum += v;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  BlockStats s;
  s.count = count;
  s.nan_count = n - count;
  if (count == 0) return s;
  s.min = mn;
  s.max = mx;
  s.mean = sum / static_cast<double>(count);
  const auto vmean = hn::Set(dd, s.mean);
  auto vm2 = hn::Zero(dd);
  for (i = 0; i + N <= n; i += N) {
    const auto v = LoadAsF64(dd, p + i);
    const auto dev = hn::Sub(v, vmean);
    vm2 = hn::Add(vm2, hn::IfThenElseZero(hn::Eq(v, v), hn::Mul(dev, dev)));
  }
  double m2 = hn::GetLane(hn::SumOfLanes(dd, vm2));
  for (std::size_t j = i; j < n; ++j) {
    const double v = static_cast<double>(p[j]);
    if (v == v) m2 += (v - s.mean) * (v - s.mean);
  }
  s.m2 = m2;
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
