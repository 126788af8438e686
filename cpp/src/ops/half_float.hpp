#pragma once
// Scalar float16 and bfloat16 conversions with the same rounding as the SIMD kernels:
// used for the tail elements a vector does not cover, so that a result never depends on
// where an array's length falls relative to the vector width.
#include <cstdint>
#include <cstring>

namespace twinstream::ops {

inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/// IEEE binary16, round to nearest even; NaN quieted with its top payload bits kept.
inline std::uint16_t float_to_half(float f) {
  const std::uint32_t bits = float_bits(f);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  const std::uint32_t abs = bits & 0x7FFFFFFFu;
  std::uint32_t h;
  if (abs > 0x7F800000u) {
    h = 0x7E00u | ((abs & 0x7FFFFFu) >> 13);
  } else if (abs >= 0x477FF000u) {  // 65520 and above round to infinity
    h = 0x7C00u;
  } else if (abs < 0x38800000u) {  // below 2^-14: a float16 subnormal (or zero)
    // Adding 0.5 puts the float16 subnormal ulp (2^-24) at float32's last mantissa bit,
    // so the hardware addition does the round-to-nearest-even for us.
    h = float_bits(bits_float(abs) + 0.5f) - 0x3F000000u;
  } else {
    const std::uint32_t r = abs + 0xFFFu + ((abs >> 13) & 1u);
    h = (r >> 13) - (112u << 10);
  }
  return static_cast<std::uint16_t>(h | sign);
}

inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  const std::uint32_t man = h & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in float32
    const float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return bits_float(sign | 0x7F800000u | (man << 13));
  return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
}

/// bfloat16 (top half of a float32), round to nearest even; NaN stays a quiet NaN.
inline std::uint16_t float_to_bfloat16(float f) {
  const std::uint32_t bits = float_bits(f);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  return static_cast<std::uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace twinstream::ops
