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

#include <array>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <type_traits>

#include "ops/kernels.hpp"
#include "ops/reciprocal_divisor.hpp"

HWY_BEFORE_NAMESPACE();
namespace twinstream::ops::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_NATIVE_FMA
// The check of reciprocal_divisor.hpp: a*hi + RN(a*lo) against a / bn for every float a
// in [1, 2), 2^23 of them.
bool ReciprocalMatchesDivision(float bn, float hi, float lo) {
  const hn::ScalableTag<float> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  const std::size_t N = hn::Lanes(d);
  const auto vb = hn::Set(d, bn);
  const auto vhi = hn::Set(d, hi);
  const auto vlo = hn::Set(d, lo);
  auto bits = hn::Add(hn::Iota(du, 0), hn::Set(du, 0x3f800000u));  // 1.0 and up
  auto differ = hn::Zero(du);
  for (std::uint32_t m = 0; m < (1u << 23); m += static_cast<std::uint32_t>(N)) {
    const auto a = hn::BitCast(d, bits);
    const auto q = hn::MulAdd(a, vhi, hn::Mul(a, vlo));
    differ = hn::Or(differ, hn::Xor(hn::BitCast(du, q), hn::BitCast(du, hn::Div(a, vb))));
    bits = hn::Add(bits, hn::Set(du, static_cast<std::uint32_t>(N)));
  }
  return hn::AllTrue(du, hn::Eq(differ, hn::Zero(du)));
}

// (in - sub) / div by the reciprocal where reciprocal_divisor proved it exact; blocks with
// a lane outside its range are divided. Returns how far it got.
std::size_t AffineByReciprocal(const float* in, float* out, std::size_t n, float sub, float div,
                               const ReciprocalDivisor& r) {
  const hn::ScalableTag<float> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  const std::size_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, sub);
  const auto vd = hn::Set(d, div);
  const auto hi = hn::Set(d, r.hi);
  const auto lo = hn::Set(d, r.lo);
  const auto abs_mask = hn::Set(du, 0x7fffffffu);
  const auto min_bits = hn::Set(du, r.min_abs_bits);
  // Unsigned: magnitudes below the range wrap around past its end.
  const auto past_span = hn::Set(du, r.max_abs_bits - r.min_abs_bits + 1);
  const auto in_range = [&](hn::Vec<decltype(d)> v) {
    return hn::Lt(hn::Sub(hn::And(hn::BitCast(du, v), abs_mask), min_bits), past_span);
  };
  std::size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto a = hn::Sub(hn::LoadU(d, in + i), vs);
    const auto b = hn::Sub(hn::LoadU(d, in + i + N), vs);
    if (HWY_LIKELY(hn::AllTrue(du, hn::And(in_range(a), in_range(b))))) {
      hn::StoreU(hn::MulAdd(a, hi, hn::Mul(a, lo)), d, out + i);
      hn::StoreU(hn::MulAdd(b, hi, hn::Mul(b, lo)), d, out + i + N);
    } else {
      hn::StoreU(hn::Div(a, vd), d, out + i);
      hn::StoreU(hn::Div(b, vd), d, out + i + N);
    }
  }
  return i;
}
#endif

template <typename T>
void AffineT(const T* in, T* out, std::size_t n, T sub, T div) {
  const hn::ScalableTag<T> d;
  const std::size_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, sub);
  const auto vd = hn::Set(d, div);
  std::size_t i = 0;
#if HWY_NATIVE_FMA
  if constexpr (std::is_same_v<T, float>) {
    const ReciprocalDivisor r = reciprocal_divisor(div, n, &ReciprocalMatchesDivision);
    if (r.usable) i = AffineByReciprocal(in, out, n, sub, div, r);
  }
#endif
  // A true division, as numpy computes it, where the reciprocal is not proven exact.
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

// The NaN an invalid operation gives on this machine (0/0; negative on x86), which is
// what the C library's and numpy's log1p return for x < -1 and -inf: computed once at run
// time, because a compiler folding 0/0 picks a sign of its own.
template <typename T>
HWY_INLINE T InvalidNaN() {
  static const T nan = [] {
    volatile T zero = 0;
    return zero / zero;
  }();
  return nan;
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
  const auto nan = hn::Set(d, InvalidNaN<T>());
  y = hn::IfThenElse(hn::Lt(x, minus_one), nan, y);
  // IsNaN, not Ne(x, x): Highway's Ne is an ordered compare on x86 and false for NaN.
  return hn::IfThenElse(hn::IsNaN(x), x, y);
}

// float32 log1p, table driven. With u = fl(1 + x) = 2^k * z (z in [0.71, 1.43)), the top
// mantissa bits of u pick a table entry g ~ 1/z, s = g * 2^-k, and
//   r = (1 + x) * s - 1 = x*s - (1 - s),   log1p(x) = k*ln2 - log(g) + log(1 + r),
// log(1 + r) = r + r^2 * P(r) with P a short minimax polynomial. The multiply-add takes
// 1 + x exactly (x itself, not the rounded u, goes in), so no compensation term is
// needed; for k <= 0 (s >= 1) and for k = 1 with g >= 1, 1 - s is exact too and r rounds
// once. Elsewhere 1 - s may round, by at most 2^-25, against a result of at least
// log(1.42) = 0.35 (k = 1) or 1.04 (k >= 2): a quarter to half an ulp. Small x keep full
// precision: the entry holding z = 1 has g = 1 and log(g) = 0, where r comes out as
// exactly x, and -0 stays -0 (x*s - (1 - s) is -0 - +0). The other g are floats within a
// few hundred ulps of 1/(bucket centre) picked so that log(g) rounds to float32 with an
// error below 0.001 ulp (tables and P derived with mpmath; P fitted for relative error
// over the buckets' range of r). Measured over every float32 in (-1, inf) against log1p
// in float64 rounded to float32: at most 2 ulp, on every target.
//
// The table is as large as one permute instruction can index: 32 entries read from two
// registers on AVX-512 (|r| <= 1/64, P of degree 2), 8 entries elsewhere (|r| <= 1/16,
// P of degree 3; the portable targets gather from memory). Entries are indexed from
// t = kSplit - bits(u) = -k * 2^23 + (2^23 - 1 - mantissa offset), which gives -k by an
// arithmetic shift or a mask and the entry (in reverse order) by a shift, without a
// separate subtraction for each.
//
// With fused multiply-add, everything after the lookup runs scaled by 8: s8 = 8g * 2^-k
// is made by adding -k * 2^23 to the bits of 8g (5.7 to 11.2, so s8 stays a normal float
// for every k of a finite u, -24 <= k <= 128, and is exact), r8 = x*s8 - (8 - s8) = 8r,
// and P's coefficients carry the matching powers of 2. Every intermediate is the unscaled
// one times a power of 2 and rounds identically. What the scaling buys: an integer
// addition instead of a multiplication on AVX-512, whose multiply-add ports bound this
// kernel (4-5% faster), and no separate path for x above 6e37 on the other FMA targets.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kLog1pTableBits = 5;
#else
constexpr int kLog1pTableBits = 3;
#endif

template <int kBits>
struct Log1pTable;

template <>
struct Log1pTable<5> {
  // u's bits minus kOffset: the exponent field is k, the next 5 bits the bucket. 1.0 lies
  // in the middle of its bucket, so that bucket's r is as small as the others'.
  static constexpr std::int32_t kOffset = 0x3f360000;
  // Bucket 31 - i (highest z first), as t indexes them.
  alignas(64) static constexpr float kInvC[32] = {
      0x1.6c1380p-1f, 0x1.746c6cp-1f, 0x1.7cf1b6p-1f, 0x1.8624d2p-1f,
      0x1.8f9708p-1f, 0x1.99a968p-1f, 0x1.a42db0p-1f, 0x1.af1f4ap-1f,
      0x1.badefep-1f, 0x1.c711d4p-1f, 0x1.d40f4ep-1f, 0x1.e1f452p-1f,
      0x1.f06b94p-1f, 0x1.000000p+0f, 0x1.0407dcp+0f, 0x1.083b62p+0f,
      0x1.0c9fc6p+0f, 0x1.110a0ep+0f, 0x1.15bc34p+0f, 0x1.1a814ap+0f,
      0x1.1f6944p+0f, 0x1.248eeep+0f, 0x1.29e368p+0f, 0x1.2f63fap+0f,
      0x1.352496p+0f, 0x1.3b20d8p+0f, 0x1.41345cp+0f, 0x1.47bbccp+0f,
      0x1.4e5f7ep+0f, 0x1.5564fap+0f, 0x1.5ca964p+0f, 0x1.641d2cp+0f,
  };
  // log(1/kInvC[i]) rounded to float32 (-0 for g = 1: see Log1pF32Reduced).
  alignas(64) static constexpr float kLogC[32] = {
      0x1.5d2504p-2f, 0x1.45ee94p-2f, 0x1.2ec494p-2f, 0x1.165524p-2f,
      0x1.fbab7ep-3f, 0x1.c8b076p-3f, 0x1.94c6f2p-3f, 0x1.601e68p-3f,
      0x1.290ddap-3f, 0x1.e2d004p-4f, 0x1.6f8740p-4f, 0x1.ef69a0p-5f,
      0x1.fa4ba6p-6f, -0.0f,            -0x1.ffe902p-7f,  -0x1.0346b4p-5f,
      -0x1.8a53b4p-5f,  -0x1.07f05cp-4f,  -0x1.4dc912p-4f,  -0x1.938896p-4f,
      -0x1.da0e7ep-4f,  -0x1.11616ap-3f,  -0x1.365b36p-3f,  -0x1.5bd6dep-3f,
      -0x1.824e78p-3f,  -0x1.a9944ep-3f,  -0x1.d0b148p-3f,  -0x1.f9e780p-3f,
      -0x1.117d5ap-2f,  -0x1.26c50ep-2f,  -0x1.3c56bcp-2f,  -0x1.51febep-2f,
  };
  // P(r), lowest degree first; |log1p(r) - (r + r^2 P(r))| <= 2^-28.8 |log1p(r)| for
  // r in [-0.0153, 0.0157].
  static constexpr float kP[3] = {-0x1p-1f, 0x1.555fb2p-2f, -0x1.ffd51ep-3f};
};

template <>
struct Log1pTable<3> {
  static constexpr std::int32_t kOffset = 0x3f380000;  // 1.0 in the middle of bucket 4
  // Bucket 7 - i, as t indexes them.
  alignas(32) static constexpr float kInvC[8] = {
      0x1.746c6cp-1f, 0x1.99a968p-1f, 0x1.c711d4p-1f, 0x1.000000p+0f,
      0x1.11031cp+0f, 0x1.248eeep+0f, 0x1.3b20d8p+0f, 0x1.5564fap+0f,
  };
  alignas(32) static constexpr float kLogC[8] = {
      0x1.45ee94p-2f, 0x1.c8b076p-3f, 0x1.e2d004p-4f, -0.0f,
      -0x1.07882ap-4f,  -0x1.11616ap-3f,  -0x1.a9944ep-3f,  -0x1.26c50ep-2f,
  };
  // Without fused multiply-add, x*s - (1 - s) would round; those targets divide instead,
  // by floats c near the bucket centres (c = 1 for bucket 4) with log(c) as exact as
  // above.
  alignas(32) static constexpr float kDivisor[8] = {
      0x1.6005acp+0f, 0x1.40132cp+0f, 0x1.1ffbc6p+0f, 0x1.000000p+0f,
      0x1.dfed14p-1f, 0x1.c01198p-1f, 0x1.9ffcc2p-1f, 0x1.7fea98p-1f,
  };
  alignas(32) static constexpr float kLogDivisor[8] = {
      0x1.46293cp-2f, 0x1.c97a2cp-3f, 0x1.e2345ap-4f, -0.0f,
      -0x1.08fb06p-4f,  -0x1.11287cp-3f,  -0x1.a94ecap-3f,  -0x1.26cf38p-2f,
  };
  // Relative error <= 2^-26.8 for r in [-0.0557, 0.0625] (both reductions' range).
  static constexpr float kP[4] = {-0x1.ffffdap-2f, 0x1.55568ep-2f, -0x1.00b622p-2f,
                                  0x1.95f6e2p-3f};
};

using Log1pF32Table = Log1pTable<kLog1pTableBits>;

// t = kLog1pSplit - bits(u): the low 23 bits of kLog1pSplit are all ones, so the
// subtraction never borrows from the exponent field.
constexpr std::int32_t kLog1pSplit = Log1pF32Table::kOffset + (1 << 23) - 1;

#if HWY_NATIVE_FMA
// Every positive finite u reduces (see s8 above).
constexpr std::int32_t kLog1pMaxBits = 0x7f7fffff;
#else
// Without fused multiply-add, 2^-k is made by adding -k to 1.0's exponent field, which
// holds while 2^-k stays a normal float: k <= 126, i.e. u's bits up to this.
constexpr std::int32_t kLog1pMaxBits = Log1pF32Table::kOffset + (126 << 23) - 1;
#endif

// kInvC (times 8 with fused multiply-add) and kLogC entries for `t` (the entry is in bits
// 23 - kLog1pTableBits and up, higher bits are ignored).
template <class D, class VI>
HWY_INLINE void Log1pLookup(D d, VI t, hn::Vec<D>& inv_c, hn::Vec<D>& log_c) {
  constexpr int kShift = 23 - kLog1pTableBits;
  const auto idx = hn::ShiftRight<kShift>(t);
  using T = Log1pF32Table;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  // vpermt2ps: one instruction indexes 32 lanes of two registers by the low 5 bits.
  const hn::Full512<float> d16;
  const auto eight = hn::Set(d16, 8.0f);  // loop invariant: hoisted with the loads
  const auto lo = hn::Mul(hn::Load(d16, T::kInvC), eight);
  const auto hi = hn::Mul(hn::Load(d16, T::kInvC + 16), eight);
  inv_c.raw = _mm512_permutex2var_ps(lo.raw, idx.raw, hi.raw);
  log_c.raw = _mm512_permutex2var_ps(hn::Load(d16, T::kLogC).raw, idx.raw,
                                     hn::Load(d16, T::kLogC + 16).raw);
  (void)d;
#elif HWY_ARCH_X86 && HWY_TARGET == HWY_AVX2
  // vpermps reads only the low 3 bits of each index.
  inv_c.raw = _mm256_permutevar8x32_ps(hn::Mul(hn::Load(d, T::kInvC), hn::Set(d, 8.0f)).raw,
                                       idx.raw);
  log_c.raw = _mm256_permutevar8x32_ps(hn::Load(d, T::kLogC).raw, idx.raw);
#elif HWY_NATIVE_FMA
  const auto i = hn::And(idx, hn::Set(hn::RebindToSigned<D>(), 7));
  inv_c = hn::Mul(hn::GatherIndex(d, T::kInvC, i), hn::Set(d, 8.0f));
  log_c = hn::GatherIndex(d, T::kLogC, i);
#else
  // See Log1pTable<3>::kDivisor: these targets get c and log(c) instead.
  const auto i = hn::And(idx, hn::Set(hn::RebindToSigned<D>(), 7));
  inv_c = hn::GatherIndex(d, T::kDivisor, i);
  log_c = hn::GatherIndex(d, T::kLogDivisor, i);
#endif
}

// P's coefficients for Horner in r8 = 8r giving P(r) / 64: the coefficient of r^i times
// 2^-(6 + 3i), exact.
constexpr auto Log1pScaledP() {
  constexpr auto& p = Log1pF32Table::kP;
  std::array<float, std::size(p)> scaled{};
  float scale = 1.0f / 64;
  for (std::size_t i = 0; i < scaled.size(); ++i, scale /= 8) scaled[i] = p[i] * scale;
  return scaled;
}

// log1p for the lanes whose u = 1 + x has bits in [1, kLog1pMaxBits] (every finite x > -1
// with fused multiply-add); garbage in other lanes. -0 gives -0: the operations are
// ordered so that a zero keeps its sign (P(0) < 0, and the last step subtracts the +0
// that log(g) - k*ln2 is there).
template <class D, class V>
HWY_INLINE V Log1pF32Reduced(D d, V x) {
  using T = Log1pF32Table;
  const hn::RebindToSigned<D> di;
  const auto one = hn::Set(d, 1.0f);
  const auto t = hn::Sub(hn::Set(di, kLog1pSplit), hn::BitCast(di, hn::Add(x, one)));
  V inv_c, log_c;
  Log1pLookup(d, t, inv_c, log_c);
  const auto minus_k_bits = hn::And(t, hn::Set(di, static_cast<std::int32_t>(0xff800000u)));
  // -k * 2^23 converts exactly; k*ln2 - log(g) rounds once.
  const auto k_ln2_plus_log_c = hn::NegMulAdd(hn::ConvertTo(d, minus_k_bits),
                                              hn::Set(d, 0x1.62e430p-1f * 0x1p-23f), log_c);
#if HWY_NATIVE_FMA
  const auto s8 = hn::BitCast(d, hn::Add(hn::BitCast(di, inv_c), minus_k_bits));
  const auto r8 = hn::MulSub(x, s8, hn::Sub(hn::Set(d, 8.0f), s8));
  static constexpr auto kP8 = Log1pScaledP();
  auto p8 = hn::Set(d, kP8.back());
  for (std::size_t i = kP8.size() - 1; i-- > 0;) p8 = hn::MulAdd(p8, r8, hn::Set(d, kP8[i]));
  // 8r * (1 + r*P(r))/8 + (k*ln2 - log(g)): two multiply-adds, without r^2.
  return hn::MulAdd(r8, hn::MulAdd(r8, p8, hn::Set(d, 0.125f)), k_ln2_plus_log_c);
#else
  // r = (z + c*2^-k) / c_table - 1, as (c*2^-k - (c_table - z)) / c_table, with z = u*2^-k
  // and c = x - (u - 1) the rounding error of 1 + x: c*2^-k = x*2^-k - (z - 2^-k), where
  // z - 2^-k = (u - 1)*2^-k is exact and so is the subtraction (c*2^-k is a float), and
  // c_table - z is exact (the two are within a factor of 2).
  const auto z = hn::BitCast(d, hn::Add(hn::BitCast(di, hn::Add(x, one)), minus_k_bits));
  const auto two_to_minus_k = hn::BitCast(d, hn::Add(hn::BitCast(di, one), minus_k_bits));
  const auto c_scaled = hn::MulSub(x, two_to_minus_k, hn::Sub(z, two_to_minus_k));
  const auto r = hn::Div(hn::Sub(c_scaled, hn::Sub(inv_c, z)), inv_c);
  constexpr std::size_t kDegree = std::size(T::kP);
  auto p = hn::Set(d, T::kP[kDegree - 1]);
  for (std::size_t i = kDegree - 1; i-- > 0;) p = hn::MulAdd(p, r, hn::Set(d, T::kP[i]));
  return hn::Add(hn::MulAdd(hn::Mul(r, r), p, r), k_ln2_plus_log_c);
#endif
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// vfixupimmps classifies u = 1 + x and replaces the reduction's result where u is not a
// positive finite number; 4 bits per class, the classes being QNaN, SNaN, 0, +1, -inf,
// +inf, negative, positive. QNaN and SNaN: u's NaN (x's, quieted); 0 (x = -1): -inf; -inf
// and negative (x < -1): the default NaN; +inf: +inf; +1 and positive: the result.
constexpr std::int32_t kLog1pFixup = 0x03530422;

template <class D, class V>
HWY_INLINE V Log1pF32(D d, V x) {
  const V y = Log1pF32Reduced(d, x);
  const V u = hn::Add(x, hn::Set(d, 1.0f));
  return V{_mm512_fixupimm_ps(y.raw, u.raw, _mm512_set1_epi32(kLog1pFixup), 0)};
}
#else
// All-ones where Log1pF32Reduced applies: u's bits in [1, kLog1pMaxBits] as a single
// signed comparison, by rotating that range to start at INT32_MIN. Out: x <= -1 (u <= 0
// or negative), +inf, NaN, and without fused multiply-add x above 6e37.
template <class D, class V>
HWY_INLINE auto Log1pF32Reducible(D d, V x) {
  const hn::RebindToSigned<D> di;
  const auto iu = hn::BitCast(di, hn::Add(x, hn::Set(d, 1.0f)));
  const auto rotated = hn::Add(iu, hn::Set(di, 0x7fffffff));
  return hn::RebindMask(
      d, hn::Lt(rotated, hn::Set(di, static_cast<std::int32_t>(0x80000000u + kLog1pMaxBits))));
}

#if !HWY_NATIVE_FMA
// log1p(x) for finite x above 6e37, where 2^-k would underflow: log(x) (equal to
// log1p(x) in float32) as log(x * 2^-64) + 64*ln2. Out of line: no stream should hold
// such values, but they must not come out wrong.
template <class D, class V>
HWY_NOINLINE V Log1pF32Huge(D d, V x) {
  return hn::MulAdd(hn::Set(d, 64.0f), hn::Set(d, 0x1.62e430p-1f),
                    Log1pF32Reduced(d, hn::Mul(x, hn::Set(d, 0x1p-64f))));
}
#endif

template <class D, class V>
HWY_INLINE V Log1pF32(D d, V x) {
  const V y = Log1pF32Reduced(d, x);
  const auto reducible = Log1pF32Reducible(d, x);
  if (HWY_LIKELY(hn::AllTrue(d, reducible))) return y;
  // Inline rather than out of line: data below -1 (NaN out, as numpy gives) is common
  // enough in practice for a call's spills to show. -1 -> -inf, x < -1 -> NaN, x itself
  // for +inf and NaN.
  const auto minus_one = hn::Set(d, -1.0f);
  V fix = hn::IfThenElse(hn::Eq(x, minus_one), hn::Set(d, -HUGE_VALF), x);
  fix = hn::IfThenElse(hn::Lt(x, minus_one), hn::Set(d, InvalidNaN<float>()), fix);
#if !HWY_NATIVE_FMA
  const auto huge = hn::And(hn::Gt(x, hn::Set(d, 0x1p125f)), hn::Lt(x, hn::Set(d, HUGE_VALF)));
  if (HWY_UNLIKELY(!hn::AllFalse(d, huge))) fix = hn::IfThenElse(huge, Log1pF32Huge(d, x), fix);
#endif
  return hn::IfThenElse(reducible, y, fix);
}
#endif

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
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto a = hn::LoadU(d, in + i);
    const auto b = hn::LoadU(d, in + i + N);
    hn::StoreU(Log1pAny(d, a), d, out + i);
    hn::StoreU(Log1pAny(d, b), d, out + i + N);
  }
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
