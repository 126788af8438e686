// Elementwise arithmetic kernels: affine (standardize, minmax), clip and log1p. Each is
// memory-bound, so the loops only need to keep the vector units ahead of memory; tails
// use the same formula in scalar code so that results do not depend on length.
#include "ops/hwy_config.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/kernels_elementwise.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// After highway.h, in its own block so that include sorting keeps it there.
#include <hwy/contrib/math/math-inl.h>

#include <cmath>
#include <limits>
#include <type_traits>

#include "ops/kernels.hpp"

HWY_BEFORE_NAMESPACE();
namespace twinstream::ops::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <typename T>
void AffineT(const T* in, T* out, std::size_t n, T sub, T div) {
  const hn::ScalableTag<T> d;
  const std::size_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, sub);
  const auto vd = hn::Set(d, div);
  std::size_t i = 0;
  // A true division, not a multiplication by 1/div: it is what numpy computes, and the
  // divider keeps up with memory.
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto a = hn::LoadU(d, in + i);
    const auto b = hn::LoadU(d, in + i + N);
    hn::StoreU(hn::Div(hn::Sub(a, vs), vd), d, out + i);
    hn::StoreU(hn::Div(hn::Sub(b, vs), vd), d, out + i + N);
  }
  for (; i < n; ++i) out[i] = (in[i] - sub) / div;
}

void Affine(DType t, const void* in, void* out, std::size_t n, double sub, double div) {
  if (t == DType::Float32) {
    AffineT(static_cast<const float*>(in), static_cast<float*>(out), n, static_cast<float>(sub),
            static_cast<float>(div));
  } else {
    AffineT(static_cast<const double*>(in), static_cast<double*>(out), n, sub, div);
  }
}

template <typename T>
void AffineArraysT(const T* in, T* out, std::size_t n, const T* sub, const T* div) {
  const hn::ScalableTag<T> d;
  const std::size_t N = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::Sub(hn::LoadU(d, in + i), hn::LoadU(d, sub + i));
    hn::StoreU(hn::Div(v, hn::LoadU(d, div + i)), d, out + i);
  }
  for (; i < n; ++i) out[i] = (in[i] - sub[i]) / div[i];
}

void AffineArrays(DType t, const void* in, void* out, std::size_t n, const void* sub,
                  const void* div) {
  if (t == DType::Float32) {
    AffineArraysT(static_cast<const float*>(in), static_cast<float*>(out), n,
                  static_cast<const float*>(sub), static_cast<const float*>(div));
  } else {
    AffineArraysT(static_cast<const double*>(in), static_cast<double*>(out), n,
                  static_cast<const double*>(sub), static_cast<const double*>(div));
  }
}

// Floats: compare-and-select, so that NaN (for which both comparisons are false) passes
// through on every target, as numpy.clip gives.
template <typename T>
void ClipFloat(const T* in, T* out, std::size_t n, T lo, T hi) {
  const hn::ScalableTag<T> d;
  const std::size_t N = hn::Lanes(d);
  const auto vlo = hn::Set(d, lo);
  const auto vhi = hn::Set(d, hi);
  std::size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(d, in + i);
    const auto c = hn::IfThenElse(hn::Lt(v, vlo), vlo, v);
    hn::StoreU(hn::IfThenElse(hn::Gt(c, vhi), vhi, c), d, out + i);
  }
  for (; i < n; ++i) {
    const T v = in[i] < lo ? lo : in[i];
    out[i] = v > hi ? hi : v;
  }
}

template <typename T>
void ClipInt(const T* in, T* out, std::size_t n, T lo, T hi) {
  const hn::ScalableTag<T> d;
  const std::size_t N = hn::Lanes(d);
  const auto vlo = hn::Set(d, lo);
  const auto vhi = hn::Set(d, hi);
  std::size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::Min(hn::Max(hn::LoadU(d, in + i), vlo), vhi), d, out + i);
  }
  for (; i < n; ++i) out[i] = in[i] < lo ? lo : (in[i] > hi ? hi : in[i]);
}

template <typename T>
void ClipIntAs(const void* in, void* out, std::size_t n, double lo, double hi) {
  ClipInt(static_cast<const T*>(in), static_cast<T*>(out), n, static_cast<T>(lo),
          static_cast<T>(hi));
}

void Clip(DType t, const void* in, void* out, std::size_t n, double lo, double hi) {
  switch (t) {
    case DType::Float32:
      return ClipFloat(static_cast<const float*>(in), static_cast<float*>(out), n,
                       static_cast<float>(lo), static_cast<float>(hi));
    case DType::Float64:
      return ClipFloat(static_cast<const double*>(in), static_cast<double*>(out), n, lo, hi);
    case DType::Int8:
      return ClipIntAs<std::int8_t>(in, out, n, lo, hi);
    case DType::UInt8:
      return ClipIntAs<std::uint8_t>(in, out, n, lo, hi);
    case DType::Int16:
      return ClipIntAs<std::int16_t>(in, out, n, lo, hi);
    case DType::UInt16:
      return ClipIntAs<std::uint16_t>(in, out, n, lo, hi);
    case DType::Int32:
      return ClipIntAs<std::int32_t>(in, out, n, lo, hi);
    case DType::UInt32:
      return ClipIntAs<std::uint32_t>(in, out, n, lo, hi);
    case DType::Int64:
      return ClipIntAs<std::int64_t>(in, out, n, lo, hi);
    case DType::UInt64:
      return ClipIntAs<std::uint64_t>(in, out, n, lo, hi);
    default:
      return;  // refused by the pipeline's validation
  }
}

// float64: Highway's Log1p covers [0, max]; x in (-1, 0) is accurate too (log(1+x) *
// x/((1+x)-1) only needs log to be accurate), and the special values are patched in
// afterwards.
template <class D, class V>
V Log1pFull(D d, V x) {
  using T = hn::TFromD<D>;
  const auto minus_one = hn::Set(d, T(-1));
  auto y = hn::CallLog1p(d, hn::Max(x, hn::Set(d, T(-1) + std::numeric_limits<T>::epsilon() / 2)));
  y = hn::IfThenElse(hn::Eq(x, minus_one), hn::Set(d, -std::numeric_limits<T>::infinity()), y);
  y = hn::IfThenElse(hn::Eq(x, hn::Set(d, std::numeric_limits<T>::infinity())), x, y);
  // NaN in, or below -1: NaN out (x < -1 compares true only for non-NaN).
  const auto nan = hn::Set(d, std::numeric_limits<T>::quiet_NaN());
  y = hn::IfThenElse(hn::Lt(x, minus_one), nan, y);
  // IsNaN, not Ne(x, x): Highway's Ne is an ordered compare on x86 and false for NaN.
  return hn::IfThenElse(hn::IsNaN(x), x, y);
}

// Lanes Log1pF32's formula covers: -1 < x < inf and x != 0 (it would turn -0 into +0).
// NaN fails the first comparison.
template <class D, class V>
HWY_INLINE auto Log1pF32Regular(D d, V x) {
  return hn::And(hn::Gt(x, hn::Set(d, -1.0f)),
                 hn::And(hn::Lt(x, hn::Set(d, HUGE_VALF)), hn::Ne(x, hn::Zero(d))));
}

// The other lanes: -1 -> -inf, x < -1 -> NaN, and x itself for +-0, +inf and NaN. Out of
// line: streams rarely hold them, and the main loop only tests for them.
template <class D, class V>
HWY_NOINLINE V Log1pF32Special(D d, V x, V y) {
  const auto minus_one = hn::Set(d, -1.0f);
  V fix = hn::IfThenElse(hn::Eq(x, minus_one), hn::Set(d, -HUGE_VALF), x);
  const auto nan = hn::Set(d, std::numeric_limits<float>::quiet_NaN());
  fix = hn::IfThenElse(hn::Lt(x, minus_one), nan, fix);
  return hn::IfThenElse(Log1pF32Regular(d, x), y, fix);
}

// float32, with fewer operations than the generic log: u = fl(1 + x) = 2^k * m with m in
// [sqrt(2)/2, sqrt(2)), c = x - (u - 1) the rounding error of 1 + x (exact), and
// log1p(x) = k*ln2 + log(m + c/2^k), where log(1 + f) = f + f^2 * Q(f) with Q a minimax
// polynomial (relative error 2^-25 over f's range). For k = 0, f = (m - 1) + c is exactly
// x, so small x keep their full precision without a division; otherwise rounding c/2^k
// into f costs at most half an ulp. Measured over every 97th float32 in [-1, inf) against
// log1p in float64 rounded to float32: at most 2 ulp, on every target.
template <class D, class V>
HWY_INLINE V Log1pF32(D d, V x) {
  const hn::RebindToSigned<D> di;
  const auto one = hn::Set(d, 1.0f);
  const auto u = hn::Add(x, one);
  // Adding 1 - sqrt(2)/2 to the mantissa carries into the exponent field at m = sqrt(2).
  const auto iu = hn::Add(hn::BitCast(di, u), hn::Set(di, 0x3f800000 - 0x3f3504f3));
  const auto biased_k = hn::ShiftRight<23>(iu);
  const auto m = hn::BitCast(d, hn::Add(hn::And(iu, hn::Set(di, 0x007fffff)),
                                        hn::Set(di, 0x3f3504f3)));
  const auto c = hn::Sub(x, hn::Sub(u, one));
  // 2^-k from its exponent bits; 0 for k >= 127, where c no longer matters.
  const auto two_to_minus_k = hn::BitCast(
      d, hn::ShiftLeft<23>(hn::Max(hn::Sub(hn::Set(di, 254), biased_k), hn::Zero(di))));
  const auto f = hn::MulAdd(c, two_to_minus_k, hn::Sub(m, one));
  const auto k = hn::ConvertTo(d, hn::Sub(biased_k, hn::Set(di, 127)));
  auto q = hn::Set(d, 0.08735427260398865f);
  q = hn::MulAdd(q, f, hn::Set(d, -0.1430848091840744f));
  q = hn::MulAdd(q, f, hn::Set(d, 0.14918199181556702f));
  q = hn::MulAdd(q, f, hn::Set(d, -0.16570404171943665f));
  q = hn::MulAdd(q, f, hn::Set(d, 0.19962044060230255f));
  q = hn::MulAdd(q, f, hn::Set(d, -0.25001758337020874f));
  q = hn::MulAdd(q, f, hn::Set(d, 0.33333951234817505f));
  q = hn::MulAdd(q, f, hn::Set(d, -0.49999991059303284f));
  const auto log_m = hn::MulAdd(hn::Mul(f, f), q, f);
  // ln2 split so that k * ln2_hi is exact for every k (-24..128).
  const auto y = hn::MulAdd(k, hn::Set(d, 6.9313812256e-01f),
                            hn::MulAdd(k, hn::Set(d, 9.0580006145e-06f), log_m));
  if (HWY_LIKELY(hn::AllTrue(d, Log1pF32Regular(d, x)))) return y;
  return Log1pF32Special(d, x, y);
}

template <class D, class V>
HWY_INLINE V Log1pAny(D d, V x) {
  if constexpr (std::is_same_v<hn::TFromD<D>, float>) {
    return Log1pF32(d, x);
  } else {
    return Log1pFull(d, x);
  }
}

template <typename T>
void Log1pT(const T* in, T* out, std::size_t n) {
  const hn::ScalableTag<T> d;
  const std::size_t N = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(Log1pAny(d, hn::LoadU(d, in + i)), d, out + i);
  if (i < n) {
    // The tail goes through the same vector code (via a padded copy) so that every element
    // gets the same approximation.
    HWY_ALIGN T buf[hn::MaxLanes(d)] = {};
    for (std::size_t j = i; j < n; ++j) buf[j - i] = in[j];
    hn::Store(Log1pAny(d, hn::Load(d, buf)), d, buf);
    for (std::size_t j = i; j < n; ++j) out[j] = buf[j - i];
  }
}

void Log1p(DType t, const void* in, void* out, std::size_t n) {
  if (t == DType::Float32) {
    Log1pT(static_cast<const float*>(in), static_cast<float*>(out), n);
  } else {
    Log1pT(static_cast<const double*>(in), static_cast<double*>(out), n);
  }
}

}  // namespace twinstream::ops::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "ops/simd_target.hpp"

namespace twinstream::ops::kernels {
HWY_EXPORT(Affine);
HWY_EXPORT(AffineArrays);
HWY_EXPORT(Clip);
HWY_EXPORT(Log1p);

void affine(DType t, const void* in, void* out, std::size_t n, double sub, double div) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(Affine)(t, in, out, n, sub, div);
}
void affine_arrays(DType t, const void* in, void* out, std::size_t n, const void* sub,
                   const void* div) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(AffineArrays)(t, in, out, n, sub, div);
}
void clip(DType t, const void* in, void* out, std::size_t n, double lo, double hi) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(Clip)(t, in, out, n, lo, hi);
}
void log1p(DType t, const void* in, void* out, std::size_t n) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(Log1p)(t, in, out, n);
}

}  // namespace twinstream::ops::kernels
#endif  // HWY_ONCE
