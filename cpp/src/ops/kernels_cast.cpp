// Conversions between dtypes (the cast operator). float64 -> float32 and the small
// integer -> float32 paths are vectorised because they are the common simulation ->
// model paths; int64/uint64/uint32 -> float use the scalar conversion, which rounds
// once, exactly as numpy does (going through float64 would round twice).
#include "ops/hwy_config.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/kernels_cast.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/half_float.hpp"
#include "ops/kernels.hpp"

HWY_BEFORE_NAMESPACE();
namespace twinstream::ops::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <typename From, typename To>
void ScalarConvert(const From* in, To* out, std::size_t i, std::size_t n) {
  for (; i < n; ++i) out[i] = static_cast<To>(in[i]);
}

void F64ToF32(const double* HWY_RESTRICT in, float* HWY_RESTRICT out, std::size_t n) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> df;
  const std::size_t N = hn::Lanes(dd);
  std::size_t i = 0;
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
  // The portable targets' DemoteTo clamps to the float32 range; numpy gives +-inf.
  (void)N;
  (void)df;
#else
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto a = hn::LoadU(dd, in + i);
    const auto b = hn::LoadU(dd, in + i + N);
    hn::StoreU(hn::DemoteTo(df, a), df, out + i);
    hn::StoreU(hn::DemoteTo(df, b), df, out + i + N);
  }
#endif
  ScalarConvert(in, out, i, n);
}

void I32ToF32(const std::int32_t* HWY_RESTRICT in, float* HWY_RESTRICT out, std::size_t n) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const std::size_t N = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::ConvertTo(df, hn::LoadU(di, in + i)), df, out + i);
  ScalarConvert(in, out, i, n);
}

// 8- and 16-bit integers widen to int32 lanes first; every value is exact in float32.
template <typename T>
void SmallIntToF32(const T* HWY_RESTRICT in, float* HWY_RESTRICT out, std::size_t n) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::RebindToUnsigned<decltype(df)> du;
  const hn::Rebind<T, decltype(df)> dn;
  const std::size_t N = hn::Lanes(df);
  const auto widen = [&](std::size_t i) {
    const auto narrow = hn::LoadU(dn, in + i);
    if constexpr (hwy::IsSigned<T>()) {
      return hn::ConvertTo(df, hn::PromoteTo(di, narrow));
    } else {
      return hn::ConvertTo(df, hn::BitCast(di, hn::PromoteTo(du, narrow)));
    }
  };
  std::size_t i = 0;
  // A widening cast writes 2-4 bytes per byte read: past kStreamOutputBytes its output is
  // streamed (uint8 -> float32 at 16 MiB: 4.0 GB/s cached, below numpy's 5.7; 6.9 streamed).
  if (n * sizeof(float) >= kStreamOutputBytes) {
    // Streaming stores want aligned addresses: convert up to the first aligned element.
    const std::size_t bytes = N * sizeof(float);
    while (i < n && reinterpret_cast<std::uintptr_t>(out + i) % bytes != 0) {
      out[i] = static_cast<float>(in[i]);
      ++i;
    }
    for (; i + N <= n; i += N) hn::Stream(widen(i), df, out + i);
    hwy::FlushStream();
  } else {
    for (; i + N <= n; i += N) hn::StoreU(widen(i), df, out + i);
  }
  ScalarConvert(in, out, i, n);
}

void F16ToF32(const std::uint16_t* HWY_RESTRICT in, float* HWY_RESTRICT out, std::size_t n) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const std::size_t N = hn::Lanes(df);
  std::size_t i = 0;
#if HWY_TARGET <= HWY_AVX2
  // F16C converts exactly, NaN included.
  const auto* hin = reinterpret_cast<const hwy::float16_t*>(in);
  for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, hin + i)), df, out + i);
#else
  // Highway's emulation turns NaN into infinity; the scalar decoder is exact.
  (void)dh;
  (void)N;
#endif
  for (; i < n; ++i) out[i] = half_to_float(in[i]);
}

void F32ToF64(const float* HWY_RESTRICT in, double* HWY_RESTRICT out, std::size_t n) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> df;
  const std::size_t N = hn::Lanes(dd);
  std::size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(dd, hn::LoadU(df, in + i)), dd, out + i);
  ScalarConvert(in, out, i, n);
}

void I32ToF64(const std::int32_t* HWY_RESTRICT in, double* HWY_RESTRICT out, std::size_t n) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<std::int32_t, decltype(dd)> di;
  const std::size_t N = hn::Lanes(dd);
  std::size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(dd, hn::LoadU(di, in + i)), dd, out + i);
  ScalarConvert(in, out, i, n);
}

template <typename To>
void ToFloat(DType src, const void* in, To* out, std::size_t n) {
  switch (src) {
    case DType::Bool:
    case DType::UInt8:
      if constexpr (std::is_same_v<To, float>) {
        return SmallIntToF32(static_cast<const std::uint8_t*>(in), out, n);
      } else {
        return ScalarConvert(static_cast<const std::uint8_t*>(in), out, 0, n);
      }
    case DType::Int8:
      if constexpr (std::is_same_v<To, float>) {
        return SmallIntToF32(static_cast<const std::int8_t*>(in), out, n);
      } else {
        return ScalarConvert(static_cast<const std::int8_t*>(in), out, 0, n);
      }
    case DType::Int16:
      if constexpr (std::is_same_v<To, float>) {
        return SmallIntToF32(static_cast<const std::int16_t*>(in), out, n);
      } else {
        return ScalarConvert(static_cast<const std::int16_t*>(in), out, 0, n);
      }
    case DType::UInt16:
      if constexpr (std::is_same_v<To, float>) {
        return SmallIntToF32(static_cast<const std::uint16_t*>(in), out, n);
      } else {
        return ScalarConvert(static_cast<const std::uint16_t*>(in), out, 0, n);
      }
    case DType::Int32:
      if constexpr (std::is_same_v<To, float>) {
        return I32ToF32(static_cast<const std::int32_t*>(in), out, n);
      } else {
        return I32ToF64(static_cast<const std::int32_t*>(in), out, n);
      }
    case DType::UInt32:
      return ScalarConvert(static_cast<const std::uint32_t*>(in), out, 0, n);
    case DType::Int64:
      return ScalarConvert(static_cast<const std::int64_t*>(in), out, 0, n);
    case DType::UInt64:
      return ScalarConvert(static_cast<const std::uint64_t*>(in), out, 0, n);
    case DType::Float16:
      if constexpr (std::is_same_v<To, float>) {
        return F16ToF32(static_cast<const std::uint16_t*>(in), out, n);
      } else {
        const auto* h = static_cast<const std::uint16_t*>(in);
        for (std::size_t i = 0; i < n; ++i) out[i] = half_to_float(h[i]);
        return;
      }
    case DType::Float32:
      if constexpr (std::is_same_v<To, float>) {
        if (in != out) std::memmove(out, in, n * sizeof(float));
        return;
      } else {
        return F32ToF64(static_cast<const float*>(in), out, n);
      }
    case DType::Float64:
      if constexpr (std::is_same_v<To, float>) {
        return F64ToF32(static_cast<const double*>(in), out, n);
      } else {
        if (in != out) std::memmove(out, in, n * sizeof(double));
        return;
      }
    default:
      return;  // refused by the caller (is_real_numeric)
  }
}

void ToFloat32(DType src, const void* in, float* out, std::size_t n) { ToFloat(src, in, out, n); }
void ToFloat64(DType src, const void* in, double* out, std::size_t n) { ToFloat(src, in, out, n); }

void F32ToF16(const float* HWY_RESTRICT in, std::uint16_t* HWY_RESTRICT out, std::size_t n) {
  const hn::ScalableTag<float> df;
  const std::size_t N = hn::Lanes(df);
  std::size_t i = 0;
#if HWY_TARGET <= HWY_AVX2
  // F16C (part of every AVX2 CPU) rounds to nearest even and quiets NaN, as we want.
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  auto* hout = reinterpret_cast<hwy::float16_t*>(out);
  for (; i + N <= n; i += N) hn::StoreU(hn::DemoteTo(dh, hn::LoadU(df, in + i)), dh, hout + i);
#else
  // Highway's emulated DemoteTo truncates, so round ourselves (same steps as float_to_half).
  const hn::RebindToUnsigned<decltype(df)> du;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<std::uint16_t, decltype(df)> d16;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(df, in + i);
    const auto bits = hn::BitCast(du, v);
    const auto sign = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 0x8000u));
    const auto abs = hn::And(bits, hn::Set(du, 0x7FFFFFFFu));
    const auto abs_i = hn::BitCast(di, abs);
    const auto round =
        hn::Add(hn::Set(du, 0xFFFu), hn::And(hn::ShiftRight<13>(abs), hn::Set(du, 1u)));
    const auto normal = hn::Sub(hn::ShiftRight<13>(hn::Add(abs, round)), hn::Set(du, 112u << 10));
    const auto sub = hn::Sub(hn::BitCast(du, hn::Add(hn::BitCast(df, abs), hn::Set(df, 0.5f))),
                             hn::Set(du, 0x3F000000u));
    const auto nan =
        hn::Or(hn::Set(du, 0x7E00u), hn::ShiftRight<13>(hn::And(abs, hn::Set(du, 0x7FFFFFu))));
    auto h =
        hn::IfThenElse(hn::RebindMask(du, hn::Lt(abs_i, hn::Set(di, 0x38800000))), sub, normal);
    h = hn::IfThenElse(hn::RebindMask(du, hn::Gt(abs_i, hn::Set(di, 0x477FEFFF))),
                       hn::Set(du, 0x7C00u), h);
    h = hn::IfThenElse(hn::RebindMask(du, hn::Gt(abs_i, hn::Set(di, 0x7F800000))), nan, h);
    h = hn::Or(h, sign);
    hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, h)), d16, out + i);
  }
#endif
  for (; i < n; ++i) out[i] = float_to_half(in[i]);
}

void F32ToBF16(const float* HWY_RESTRICT in, std::uint16_t* HWY_RESTRICT out, std::size_t n) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<std::uint16_t, decltype(df)> d16;
  const std::size_t N = hn::Lanes(df);
  // The bfloat16 bits of each lane in its low 16 bits: rounded to nearest even, NaN quieted.
  const auto bf16_bits = [&](const float* p) {
    const auto v = hn::LoadU(df, p);
    const auto bits = hn::BitCast(du, v);
    const auto top = hn::ShiftRight<16>(bits);
    const auto bias = hn::Add(hn::Set(du, 0x7FFFu), hn::And(top, hn::Set(du, 1u)));
    const auto rounded = hn::ShiftRight<16>(hn::Add(bits, bias));
    const auto quiet_nan = hn::Or(top, hn::Set(du, 0x40u));
    return hn::BitCast(di, hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), quiet_nan, rounded));
  };
  std::size_t i = 0;
#if HWY_TARGET == HWY_AVX2
  // Two vectors per pack: AVX2 narrows within 128-bit halves, so one vpackusdw and one
  // vpermq put 16 results in order, where DemoteTo takes both for each 8.
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto packed = _mm256_packus_epi32(bf16_bits(in + i).raw, bf16_bits(in + i + N).raw);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_permute4x64_epi64(packed, _MM_SHUFFLE(3, 1, 2, 0)));
  }
#endif
  for (; i + N <= n; i += N) hn::StoreU(hn::DemoteTo(d16, bf16_bits(in + i)), d16, out + i);
  for (; i < n; ++i) out[i] = float_to_bfloat16(in[i]);
}

// The definition of the result: numpy's clip(rint(x / scale), -128, 127), NaN -> 0, with a
// true division.
template <class D, class V>
HWY_INLINE V QuantiseByDivision(D df, V x, V scale) {
  const auto q = hn::Round(hn::Div(x, scale));
  // Compare-and-select rather than Min/Max: what x86 min/max do with NaN depends on
  // operand order; NaN lanes are zeroed explicitly below.
  auto c = hn::IfThenElse(hn::Lt(q, hn::Set(df, -128.0f)), hn::Set(df, -128.0f), q);
  c = hn::IfThenElse(hn::Gt(c, hn::Set(df, 127.0f)), hn::Set(df, 127.0f), c);
  return hn::IfThenElseZero(hn::Eq(q, q), c);
}

// Quantisation multiplies by inv = fl(1/scale) instead of dividing, and proves per vector
// that this gives the division's result, else redoes the vector with the division.
//
// Why the bracket below suffices: with u = 2^-24, fl(1/scale) = (1/scale)(1+e1) and
// q = fl(x*inv) = (x/scale)(1+e1)(1+e2), while the reference is fl(x/scale) =
// (x/scale)(1+e3), |ei| <= u (inv normal, products not subnormal; a subnormal q is below
// 2^-126 and both round to 0). So the reference lies between q*(1 - eps) and q*(1 + eps)
// for eps = 2^-20 > 3u + O(u^2). rint is non-decreasing (ties to even included), so if
// rint(q*(1-eps)) == rint(q*(1+eps)) the reference rounds to that same integer; clamping
// q to [-128, 127] first changes nothing (a q beyond a bound has the reference within eps
// of it or beyond, which rounds and clamps to the same bound). Only lanes within about
// 128*2^-20 of a half-integer fail the test, and so does NaN. Without fused multiply-add
// (SSE4, the portable targets) q*(1 +- eps) rounds before 1.5*2^23 is added, which moves
// the bracket by u relative: still wider than 3u.
//
// rint(v) + 1.5*2^23 is computed exactly by one multiply-add with 1.5*2^23: for |v| <=
// 2^22 the sum's ulp is 1, so its rounding (to nearest even) is rint's; its bit pattern
// is that of 1.5*2^23 plus the integer.
void F32ToI8(const float* HWY_RESTRICT in, std::int8_t* HWY_RESTRICT out, std::size_t n,
             float scale) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<std::int8_t, decltype(df)> d8;
  const std::size_t N = hn::Lanes(df);
  const auto vscale = hn::Set(df, scale);
  const float inv = 1.0f / scale;
  auto by_division = [&](std::size_t at) {
    const auto c = QuantiseByDivision(df, hn::LoadU(df, in + at), vscale);
    hn::StoreU(hn::DemoteTo(d8, hn::ConvertTo(di, c)), d8, out + at);
  };
  std::size_t i = 0;
  if (std::isnormal(inv)) {
    const auto vinv = hn::Set(df, inv);
    const auto lo = hn::Set(df, -128.0f);
    const auto hi = hn::Set(df, 127.0f);
    const auto up = hn::Set(df, 1.0f + 0x1p-20f);
    const auto down = hn::Set(df, 1.0f - 0x1p-20f);
    const auto magic = hn::Set(df, 0x1.8p23f);
    const auto magic_bits = hn::BitCast(di, magic);
    // rint(x*inv) + 1.5*2^23 clamped, and whether the bracket proves it equal to the
    // division's result.
    auto quantise = [&](std::size_t at, hn::Vec<decltype(df)>& r) {
      const auto x = hn::LoadU(df, in + at);
#if HWY_ARCH_X86 && HWY_TARGET != HWY_EMU128 && HWY_TARGET != HWY_SCALAR
      // maxps/minps return their second operand when either is NaN, so NaN reaches r
      // and fails the comparison below by itself.
      const auto q = hn::Min(hi, hn::Max(lo, hn::Mul(x, vinv)));
      r = hn::MulAdd(q, up, magic);
      return hn::Eq(r, hn::MulAdd(q, down, magic));
#else
      const auto q = hn::Min(hn::Max(hn::Mul(x, vinv), lo), hi);
      r = hn::MulAdd(q, up, magic);
      return hn::And(hn::Eq(r, hn::MulAdd(q, down, magic)), hn::Eq(x, x));
#endif
    };
    auto one = [&](std::size_t at) {
      hn::Vec<decltype(df)> r;
      if (HWY_UNLIKELY(!hn::AllTrue(df, quantise(at, r)))) return by_division(at);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
      // vpmovdb keeps the low byte, which is the integer's: 1.5*2^23 has a zero low byte.
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + at),
                       _mm512_cvtepi32_epi8(hn::BitCast(di, r).raw));
#else
      hn::StoreU(hn::DemoteTo(d8, hn::Sub(hn::BitCast(di, r), magic_bits)), d8, out + at);
#endif
    };
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_SSE4
    // Blocks of four vectors: one check, and two rounds of saturating packs for all four
    // (plus one vpermd on AVX2, whose packs work within 128-bit halves) where DemoteTo
    // spends two or three shuffles on each vector. At 1 MiB: AVX2 31 -> 40 GB/s, SSE4
    // 14.6 -> 16.6. On AVX-512 blocks were slower than vpmovdb per vector (43 against 46).
    const auto ints = [&](hn::Vec<decltype(df)> r) {
      return hn::Sub(hn::BitCast(di, r), magic_bits).raw;
    };
    for (; i + 4 * N <= n; i += 4 * N) {
      hn::Vec<decltype(df)> r0, r1, r2, r3;
      const auto ok = hn::And(hn::And(quantise(i, r0), quantise(i + N, r1)),
                              hn::And(quantise(i + 2 * N, r2), quantise(i + 3 * N, r3)));
      if (HWY_UNLIKELY(!hn::AllTrue(df, ok))) {
        for (std::size_t j = 0; j < 4; ++j) one(i + j * N);
        continue;
      }
#if HWY_TARGET == HWY_AVX2
      const auto bytes = _mm256_packs_epi16(_mm256_packs_epi32(ints(r0), ints(r1)),
                                            _mm256_packs_epi32(ints(r2), ints(r3)));
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(out + i),
          _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
#else
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                       _mm_packs_epi16(_mm_packs_epi32(ints(r0), ints(r1)),
                                       _mm_packs_epi32(ints(r2), ints(r3))));
#endif
    }
#endif
    for (; i + N <= n; i += N) one(i);
  }
  for (; i + N <= n; i += N) by_division(i);
  for (; i < n; ++i) {
    const float q = std::nearbyint(in[i] / scale);
    out[i] = std::isnan(q)
                 ? 0
                 : static_cast<std::int8_t>(q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q));
  }
}

}  // namespace twinstream::ops::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "ops/simd_target.hpp"

namespace twinstream::ops::kernels {
HWY_EXPORT(ToFloat32);
HWY_EXPORT(ToFloat64);
HWY_EXPORT(F32ToF16);
HWY_EXPORT(F32ToBF16);
HWY_EXPORT(F32ToI8);

bool is_real_numeric(DType t) {
  switch (t) {
    case DType::LongDouble:
    case DType::Complex64:
    case DType::Complex128:
    case DType::ComplexLongDouble:
      return false;
    default:
      return dtype_valid(static_cast<std::uint8_t>(t));
  }
}

void to_float32(DType src, const void* in, float* out, std::size_t n) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(ToFloat32)(src, in, out, n);
}
void to_float64(DType src, const void* in, double* out, std::size_t n) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(ToFloat64)(src, in, out, n);
}
void float32_to_float16(const float* in, std::uint16_t* out, std::size_t n) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(F32ToF16)(in, out, n);
}
void float32_to_bfloat16(const float* in, std::uint16_t* out, std::size_t n) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(F32ToBF16)(in, out, n);
}
void float32_to_int8(const float* in, std::int8_t* out, std::size_t n, float scale) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(F32ToI8)(in, out, n, scale);
}

}  // namespace twinstream::ops::kernels
#endif  // HWY_ONCE
