// Unit tests of the ops layer. Kernel tests run once per SIMD target this CPU supports
// (forced through force_target, as TWINSTREAM_SIMD would) against independent scalar
// references, over odd lengths, unaligned pointers and special values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "ops/cache.hpp"
#include "ops/codec.hpp"
#include "ops/kernels.hpp"
#include "ops/layout.hpp"
#include "ops/pipeline.hpp"
#include "ops/reciprocal_divisor.hpp"
#include "ops/simd_target.hpp"
#include "twinstream/errors.hpp"

using namespace twinstream;
using namespace twinstream::ops;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Random floats spanning magnitudes, with the special values sprinkled in.
std::vector<float> special_floats(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mant(-2.0f, 2.0f);
  std::uniform_int_distribution<int> expo(-40, 40);
  std::vector<float> v(n);
  const float specials[] = {0.0f,
                            -0.0f,
                            kInf,
                            -kInf,
                            kNaN,
                            -kNaN,
                            1e-45f,
                            -1e-45f,
                            1e-40f,
                            65504.0f,
                            65519.0f,
                            65520.0f,
                            6.1e-5f,
                            5.96e-8f,
                            2.98e-8f,
                            std::numeric_limits<float>::max(),
                            -1.0f,
                            -0.5f,
                            std::numeric_limits<float>::signaling_NaN()};
  for (std::size_t i = 0; i < n; ++i) {
    v[i] =
        (i % 7 == 3) ? specials[(i / 7) % std::size(specials)] : std::ldexp(mant(rng), expo(rng));
  }
  return v;
}

// Independent float16 reference: the compiler's _Float16 conversion (round to nearest even).
std::uint16_t ref_half(float f) {
  if (std::isnan(f))
    return static_cast<std::uint16_t>(((bits(f) >> 16) & 0x8000u) | 0x7E00u |
                                      ((bits(f) & 0x7FFFFFu) >> 13));
  const _Float16 h = static_cast<_Float16>(f);
  std::uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}

// Independent bfloat16 reference: pick the nearer of the two truncations, ties to even.
std::uint16_t ref_bf16(float f) {
  const std::uint32_t b = bits(f);
  if (std::isnan(f)) return static_cast<std::uint16_t>((b >> 16) | 0x40);
  if (std::isinf(f)) return static_cast<std::uint16_t>(b >> 16);
  const std::uint32_t lo = b & 0xFFFF0000u;
  const std::uint32_t hi = lo + 0x10000u;
  float flo, fhi;
  std::memcpy(&flo, &lo, 4);
  std::memcpy(&fhi, &hi, 4);
  const long double dlo = std::fabs(static_cast<long double>(f) - flo);
  const long double dhi =
      std::isinf(fhi)
          ? std::fabs(static_cast<long double>(f) - std::ldexp(1.0L, 128) * (f < 0 ? -1 : 1))
          : std::fabs(static_cast<long double>(f) - fhi);
  if (dlo < dhi || (dlo == dhi && ((lo >> 16) & 1) == 0))
    return static_cast<std::uint16_t>(lo >> 16);
  return static_cast<std::uint16_t>(hi >> 16);
}

std::int64_t ulp_distance(double a, double b, bool single) {
  if (std::isnan(a) && std::isnan(b)) return 0;
  if (a == b) return 0;
  if (single) {
    auto key = [](float f) {
      std::int32_t i;
      std::memcpy(&i, &f, 4);
      return i < 0 ? static_cast<std::int64_t>(std::numeric_limits<std::int32_t>::min()) - i : i;
    };
    return std::llabs(key(static_cast<float>(a)) - key(static_cast<float>(b)));
  }
  auto key = [](double d) {
    std::int64_t i;
    std::memcpy(&i, &d, 8);
    return i < 0 ? std::numeric_limits<std::int64_t>::min() - i : i;
  };
  return std::llabs(key(a) - key(b));
}

class KernelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { force_target(GetParam()); }
  void TearDown() override { force_target(""); }
};

std::string target_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

INSTANTIATE_TEST_SUITE_P(Targets, KernelTest, ::testing::ValuesIn(supported_targets()),
                         target_name);

// Lengths around every vector width, and offsets that break alignment.
const std::size_t kLengths[] = {0, 1, 3, 7, 15, 16, 17, 31, 33, 63, 65, 127, 1000, 4099};
const std::size_t kOffsets[] = {0, 1, 3};

TEST_P(KernelTest, ActiveTargetIsTheForcedOne) {
  std::string want = GetParam();
  EXPECT_EQ(active_target(), want);
}

TEST_P(KernelTest, Float64ToFloat32RoundsLikeAStaticCast) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(-1e3, 1e3);
  for (std::size_t n : kLengths) {
    for (std::size_t off : kOffsets) {
      std::vector<double> in(n + off);
      for (std::size_t i = 0; i < in.size(); ++i) {
        in[i] = (i % 5 == 0) ? std::ldexp(u(rng), 120 + static_cast<int>(i % 20)) : u(rng);
        if (i % 11 == 1) in[i] = std::numeric_limits<double>::quiet_NaN();
        if (i % 13 == 2) in[i] = 1e-310;  // denormal double
      }
      std::vector<float> out(n + 1);
      kernels::to_float32(DType::Float64, in.data() + off, out.data() + (off & 1), n);
      for (std::size_t i = 0; i < n; ++i) {
        const float want = static_cast<float>(in[off + i]);
        ASSERT_TRUE(bits(out[(off & 1) + i]) == bits(want) ||
                    (std::isnan(want) && std::isnan(out[(off & 1) + i])))
            << "n=" << n << " i=" << i << " in=" << in[off + i];
      }
    }
  }
}

TEST_P(KernelTest, IntegersToFloat32AreExactOrRoundedOnce) {
  for (std::size_t n : kLengths) {
    std::vector<std::int64_t> i64(n);
    std::vector<std::int32_t> i32(n);
    std::vector<std::int16_t> i16(n);
    std::vector<std::uint16_t> u16(n);
    std::vector<std::uint8_t> u8(n);
    std::vector<std::int8_t> i8(n);
    std::mt19937_64 rng(n);
    for (std::size_t i = 0; i < n; ++i) {
      i64[i] = static_cast<std::int64_t>(rng());
      i32[i] = static_cast<std::int32_t>(rng());
      i16[i] = static_cast<std::int16_t>(rng());
      u16[i] = static_cast<std::uint16_t>(rng());
      u8[i] = static_cast<std::uint8_t>(rng());
      i8[i] = static_cast<std::int8_t>(rng());
    }
    std::vector<float> out(n);
    auto check = [&](DType t, const void* p, auto ref) {
      kernels::to_float32(t, p, out.data(), n);
      for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], ref(i)) << dtype_name(t) << " i=" << i;
    };
    check(DType::Int64, i64.data(), [&](std::size_t i) { return static_cast<float>(i64[i]); });
    check(DType::Int32, i32.data(), [&](std::size_t i) { return static_cast<float>(i32[i]); });
    check(DType::Int16, i16.data(), [&](std::size_t i) { return static_cast<float>(i16[i]); });
    check(DType::UInt16, u16.data(), [&](std::size_t i) { return static_cast<float>(u16[i]); });
    check(DType::UInt8, u8.data(), [&](std::size_t i) { return static_cast<float>(u8[i]); });
    check(DType::Int8, i8.data(), [&](std::size_t i) { return static_cast<float>(i8[i]); });
  }
}

TEST_P(KernelTest, SmallIntegersToFloat32PastTheCacheAreStreamedExactly) {
  // Outputs of 16 MiB and more take the streaming-store path, which first converts up to an
  // aligned output element: start the output at every offset within a vector, and check
  // every element (head, streamed body, tail) and that nothing past the end is written.
  const std::size_t n = (std::size_t{16} << 20) / sizeof(float) + 13;
  std::vector<std::uint8_t> u8(n);
  std::vector<std::int16_t> i16(n);
  std::mt19937 rng(5);
  for (std::size_t i = 0; i < n; ++i) {
    u8[i] = static_cast<std::uint8_t>(rng());
    i16[i] = static_cast<std::int16_t>(rng());
  }
  std::vector<float> buf(n + 32);
  for (std::size_t shift : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{15}}) {
    std::fill(buf.begin(), buf.end(), -7.0f);
    kernels::to_float32(DType::UInt8, u8.data(), buf.data() + shift, n);
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(buf[shift + i], static_cast<float>(u8[i])) << "shift " << shift << " i=" << i;
    }
    ASSERT_EQ(buf[shift + n], -7.0f);
    kernels::to_float32(DType::Int16, i16.data(), buf.data() + shift, n);
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(buf[shift + i], static_cast<float>(i16[i])) << "shift " << shift << " i=" << i;
    }
  }
}

TEST_P(KernelTest, Float16RoundTripIsExactForEveryHalf) {
  // Every one of the 65536 float16 values widens exactly and narrows back to itself.
  std::vector<std::uint16_t> all(65536), back(65536);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
  std::vector<float> wide(65536);
  kernels::to_float32(DType::Float16, all.data(), wide.data(), all.size());
  kernels::float32_to_float16(wide.data(), back.data(), wide.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    const bool nan = (i & 0x7C00) == 0x7C00 && (i & 0x3FF) != 0;
    if (nan) {
      ASSERT_TRUE(std::isnan(wide[i]));
      ASSERT_EQ(back[i], all[i] | 0x200) << i;  // quieted
    } else {
      ASSERT_EQ(back[i], all[i]) << i;
    }
  }
}

TEST_P(KernelTest, Float32ToFloat16RoundsToNearestEven) {
  for (std::size_t n : kLengths) {
    for (std::size_t off : kOffsets) {
      auto in = special_floats(n + off, static_cast<std::uint32_t>(n));
      // Exact ties between two halves, in the normal and the subnormal range.
      for (std::size_t i = off; i < in.size(); i += 9)
        in[i] = 1.0f + (2 * (i % 5) + 1) * std::ldexp(1.0f, -11);
      for (std::size_t i = off + 4; i < in.size(); i += 9)
        in[i] = (2 * (i % 5) + 1) * std::ldexp(1.0f, -25);
      std::vector<std::uint16_t> out(n);
      kernels::float32_to_float16(in.data() + off, out.data(), n);
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[i], ref_half(in[off + i])) << "x=" << in[off + i] << " n=" << n;
      }
    }
  }
}

TEST_P(KernelTest, Float32ToBfloat16RoundsToNearestEvenAndKeepsNaN) {
  for (std::size_t n : kLengths) {
    auto in = special_floats(n, static_cast<std::uint32_t>(n) + 7);
    for (std::size_t i = 0; i < n; i += 5) in[i] = 1.0f + std::ldexp(1.0f, -8);  // a tie
    std::vector<std::uint16_t> out(n);
    kernels::float32_to_bfloat16(in.data(), out.data(), n);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], ref_bf16(in[i])) << "x=" << in[i];
  }
  const float max = std::numeric_limits<float>::max();
  std::uint16_t h;
  kernels::float32_to_bfloat16(&max, &h, 1);
  EXPECT_EQ(h, 0x7F80);  // rounds to +inf, as round-to-nearest-even says
}

TEST_P(KernelTest, Float32ToInt8QuantisesWithTiesToEvenAndSaturates) {
  for (std::size_t n : kLengths) {
    auto in = special_floats(n, 3);
    for (std::size_t i = 0; i < n; i += 4)
      in[i] = static_cast<float>(static_cast<int>(i % 300) - 150) * 0.25f;
    std::vector<std::int8_t> out(n);
    kernels::float32_to_int8(in.data(), out.data(), n, 0.5f);
    for (std::size_t i = 0; i < n; ++i) {
      const float q = std::nearbyint(in[i] / 0.5f);
      const int want = std::isnan(q) ? 0 : static_cast<int>(std::clamp(q, -128.0f, 127.0f));
      ASSERT_EQ(out[i], want) << "x=" << in[i];
    }
  }
}

TEST_P(KernelTest, Float32ToInt8EqualsTheDivisionAtTiesAndForEveryScale) {
  // The kernel multiplies by 1/scale and redoes only lanes it cannot prove equal to the
  // division; values at (k + 1/2) * scale and their float neighbours are the ones where a
  // wrong proof shows, for scales whose reciprocal rounds in either direction.
  const float scales[] = {0.5f,    0.01f,   0.1f,     1.0f / 3,  3.0f,   1e-3f,  7.3e-5f,
                          -0.37f,  1e30f,   1e-38f,   1e-40f,    0.0f,   -0.0f,  kInf,
                          kNaN,    0x1p-126f, 3e38f,  0.0999999f, 1.1754942e-38f};
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> jitter(-1.0f, 1.0f);
  for (const float scale : scales) {
    std::vector<float> in;
    for (int k = -131; k <= 131; ++k) {
      for (const float base : {(static_cast<float>(k) + 0.5f) * scale, static_cast<float>(k) * scale,
                               (static_cast<float>(k) + 0.5f) / (1.0f / scale)}) {
        float lo = base, hi = base;
        in.push_back(base);
        for (int step = 0; step < 3; ++step) {
          lo = std::nextafter(lo, -kInf);
          hi = std::nextafter(hi, kInf);
          in.push_back(lo);
          in.push_back(hi);
        }
      }
      in.push_back(jitter(rng) * 200.0f * scale);
    }
    for (const float s : {kNaN, -kNaN, kInf, -kInf, 0.0f, -0.0f, 1e-45f, 3e38f, -3e38f}) in.push_back(s);
    std::vector<std::int8_t> out(in.size());
    kernels::float32_to_int8(in.data(), out.data(), in.size(), scale);
    for (std::size_t i = 0; i < in.size(); ++i) {
      const float q = std::nearbyint(in[i] / scale);
      const int want = std::isnan(q) ? 0 : static_cast<int>(std::clamp(q, -128.0f, 127.0f));
      ASSERT_EQ(out[i], want) << std::hexfloat << "x=" << in[i] << " scale=" << scale;
    }
  }
}

TEST_P(KernelTest, AffineClipLog1pMatchScalarFormulas) {
  for (std::size_t n : kLengths) {
    auto in = special_floats(n, 5);
    std::vector<float> out(n);
    kernels::affine(DType::Float32, in.data(), out.data(), n, 0.25, 3.0);
    for (std::size_t i = 0; i < n; ++i) {
      const float want = (in[i] - 0.25f) / 3.0f;
      ASSERT_TRUE(bits(out[i]) == bits(want) || (std::isnan(want) && std::isnan(out[i])));
    }
    kernels::clip(DType::Float32, in.data(), out.data(), n, -1.0, 2.0);
    for (std::size_t i = 0; i < n; ++i) {
      if (std::isnan(in[i])) {
        ASSERT_TRUE(std::isnan(out[i]));
      } else {
        ASSERT_EQ(out[i], std::clamp(in[i], -1.0f, 2.0f));
      }
    }
    kernels::log1p(DType::Float32, in.data(), out.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      const float want = std::log1p(in[i]);
      ASSERT_LE(ulp_distance(out[i], want, true), 4) << "x=" << in[i] << " got " << out[i];
      ASSERT_EQ(std::isnan(out[i]), std::isnan(want)) << "x=" << in[i];
    }
    std::vector<double> d(n), dout(n);
    for (std::size_t i = 0; i < n; ++i) d[i] = in[i];
    kernels::log1p(DType::Float64, d.data(), dout.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_LE(ulp_distance(dout[i], std::log1p(d[i]), false), 4) << "x=" << d[i];
    }
  }
}

// float32 log1p's reduction splits 1 + x at its exponent and at table buckets (the top
// 3 or 5 mantissa bits); values on either side of each split, tiny x (where the result
// must be x itself), x near -1 and x too large for the reduction (its own path) are where
// a wrong table entry, offset or compensation term shows.
std::vector<float> log1p_hard_values() {
  std::vector<float> v;
  auto from_bits = [](std::uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  };
  for (int e = -26; e <= 127; ++e) {
    for (std::uint32_t m = 0; m < (1u << 23); m += 1u << 18) {
      // u = 2^e * (1 + m/2^23) - 1 and its neighbours, as x = u - 1 in float.
      const float u = std::ldexp(1.0f + static_cast<float>(m) / (1 << 23), e);
      for (float x : {u - 1.0f, std::nextafter(u - 1.0f, -kInf), std::nextafter(u - 1.0f, kInf),
                      std::nextafter(u, kInf) - 1.0f}) {
        if (x > -1.0f && x < kInf) v.push_back(x);
      }
    }
  }
  for (int e = -149; e <= -10; ++e) {
    v.push_back(std::ldexp(1.0f, e));
    v.push_back(-std::ldexp(1.0f, e));
    v.push_back(std::ldexp(1.3f, e));
    v.push_back(-std::ldexp(1.7f, e));
  }
  for (std::uint32_t b = 0x3f7fff00; b < 0x3f800000; ++b) v.push_back(-from_bits(b));  // -> -1
  for (std::uint32_t b = 0x7e000000; b < 0x7f800000; b += 0x1234) v.push_back(from_bits(b));
  v.push_back(std::numeric_limits<float>::max());
  return v;
}

// log1p of every element of `in` in float32, each checked to be within 2 ulp of the
// correctly rounded result (from float64).
std::vector<float> log1p_within_two_ulp(const std::vector<float>& in) {
  std::vector<float> out(in.size());
  kernels::log1p(DType::Float32, in.data(), out.data(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const float want = static_cast<float>(std::log1p(static_cast<double>(in[i])));
    EXPECT_LE(ulp_distance(out[i], want, true), 2) << std::hexfloat << "x=" << in[i] << " got "
                                                   << out[i] << " want " << want;
    if (::testing::Test::HasFailure()) break;
  }
  return out;
}

TEST_P(KernelTest, AffineByAProvenReciprocalEqualsTheDivisionBitForBit) {
  // Enough elements per divisor for reciprocal_divisor to check it (2^23) and for the
  // calls after that to multiply: the results must not change when they do. The values
  // span every binade, so the range bounds of the reciprocal path are crossed; special
  // values are sparse so that most vectors take that path.
  constexpr std::size_t n = std::size_t{1} << 21;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> expo(-149, 127);
  std::vector<float> in(n), out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float m = (i & 1) ? mant(rng) : -mant(rng);
    in[i] = std::ldexp(m, (i % 3 == 0) ? expo(rng) : expo(rng) / 4);
  }
  const float specials[] = {0.0f, -0.0f, kInf, -kInf, kNaN, 1e-45f, 1e-40f,
                            std::numeric_limits<float>::max()};
  for (std::size_t i = 0; i < n; i += 4001) in[i] = specials[(i / 4001) % std::size(specials)];
  // 0.37 and 3 pass the check, sqrt(3) fails it, 2^-100 is exact (lo = 0), and 7e-36
  // caps the range at |d| <= 7e-36 * 2^125 (about 298), so most of the values cross its
  // upper bound. With sub = 0, x itself is divided: subnormals, -0 and the smallest
  // normals reach the division unchanged and cross the lower bound.
  for (const float sub : {0.0f, 0.25f}) {
    for (const float div : {0.37f, 3.0f, std::sqrt(3.0f), 0x1p-100f, 7e-36f}) {
      for (int call = 0; call < 5; ++call) {
        kernels::affine(DType::Float32, in.data(), out.data(), n, sub, div);
        for (std::size_t i = 0; i < n; ++i) {
          const float want = (in[i] - sub) / div;
          ASSERT_TRUE(bits(out[i]) == bits(want) || (std::isnan(want) && std::isnan(out[i])))
              << "sub " << sub << " div " << div << " call " << call << " x " << in[i]
              << " got " << out[i] << " want " << want;
        }
      }
    }
  }
}

TEST_P(KernelTest, Log1pFloat32IsWithinTwoUlpOfExactAtTheReductionsEdges) {
  const auto in = log1p_hard_values();
  const auto out = log1p_within_two_ulp(in);
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (std::fabs(in[i]) < 0x1p-24f) {
      ASSERT_EQ(bits(out[i]), bits(in[i])) << in[i];
    }
  }
}

TEST_P(KernelTest, Log1pFloat32IsWithinTwoUlpOfExactAcrossTheFirstBinades) {
  // Every 7th float32 in (-1, -0.25] and [0.25, 16): 1 + x in the table's first binades
  // on either side of 1, where the rounding of 1 - g*2^-k (exact only for k <= 0) or a
  // wrong sign in the exponent shows first; and every float32 whose 1 + x is one of the
  // largest two binades (k = 127 and 128, where g*2^-k is subnormal).
  std::vector<float> in;
  auto from_bits = [](std::uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  };
  for (std::uint32_t b = bits(0.25f); b < bits(16.0f); b += 7) in.push_back(from_bits(b));
  for (std::uint32_t b = bits(-0.25f); b < bits(-1.0f); b += 7) in.push_back(from_bits(b));
  for (std::uint32_t b = bits(0x1p126f); b < bits(kInf); b += 97) in.push_back(from_bits(b));
  log1p_within_two_ulp(in);
}

TEST_P(KernelTest, Log1pBelowMinusOneGivesTheCLibrarysNaNBits) {
  // x < -1 and -inf: the NaN of an invalid operation, bit for bit as the C library's (and
  // numpy's) log1p give it, on every target and in vector bodies and scalar tails alike;
  // a NaN input comes back as it went in.
  auto check = [](auto zero) {
    using T = decltype(zero);
    const T specials[] = {T(-2), -std::numeric_limits<T>::infinity(), T(-1.5), T(-1e30),
                          std::numeric_limits<T>::quiet_NaN(), T(0.5)};
    std::vector<T> in(37);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = specials[i % std::size(specials)];
    std::vector<T> out(in.size());
    kernels::log1p(sizeof(T) == 4 ? DType::Float32 : DType::Float64, in.data(), out.data(),
                   in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
      volatile T x = in[i];
      const T want = std::log1p(static_cast<T>(x));
      if (!std::isnan(want)) continue;  // the 0.5s: accuracy is tested elsewhere
      ASSERT_EQ(std::memcmp(&out[i], &want, sizeof(T)), 0)
          << sizeof(T) * 8 << "-bit x=" << in[i] << " i=" << i;
    }
  };
  check(0.0f);
  check(0.0);
}

TEST_P(KernelTest, Log1pFloat32LanesDoNotDependOnTheirNeighbours) {
  // Special values (-1, below -1, NaN, inf, -0, huge) sprinkled among ordinary ones: each
  // element must come out as it does alone (the special lanes are patched per lane).
  const float specials[] = {-1.0f, -2.5f, kNaN, kInf, -kInf, -0.0f, 0.0f, 3e38f, 1e-40f};
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-0.99f, 4.0f);
  std::vector<float> in(1000);
  for (std::size_t i = 0; i < in.size(); ++i) {
    in[i] = (i % 5 == 2) ? specials[(i / 5) % std::size(specials)] : u(rng);
  }
  std::vector<float> out(in.size());
  kernels::log1p(DType::Float32, in.data(), out.data(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    float alone;
    kernels::log1p(DType::Float32, &in[i], &alone, 1);
    ASSERT_TRUE(bits(out[i]) == bits(alone) || (std::isnan(out[i]) && std::isnan(alone)))
        << "x=" << in[i];
    const float want = std::log1p(in[i]);
    ASSERT_EQ(std::isnan(out[i]), std::isnan(want)) << "x=" << in[i];
    if (!std::isnan(want)) {
      ASSERT_LE(ulp_distance(out[i], want, true), 3) << "x=" << in[i];
    }
  }
  EXPECT_EQ(bits(out[5 * 5 + 2]), bits(-0.0f));
  EXPECT_EQ(out[2], -kInf);
}

TEST_P(KernelTest, ClipIntegersKeepTheirType) {
  std::vector<std::int16_t> v(101);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::int16_t>(i * 700 - 35000);
  std::vector<std::int16_t> out(v.size());
  kernels::clip(DType::Int16, v.data(), out.data(), v.size(), -1000, 2000);
  for (std::size_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(out[i], std::clamp<std::int16_t>(v[i], -1000, 2000));
  }
}

TEST_P(KernelTest, StatsSkipNaNAndSurviveALargeOffset) {
  for (std::size_t n : kLengths) {
    std::vector<float> v(n);
    std::mt19937 rng(9);
    std::normal_distribution<float> g(1e6f, 1.0f);
    std::size_t nans = 0;
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = (i % 17 == 5) ? kNaN : g(rng);
      nans += std::isnan(v[i]);
    }
    const auto s = kernels::stats(DType::Float32, v.data(), n);
    long double sum = 0, mn = INFINITY, mx = -INFINITY;
    std::size_t cnt = 0;
    for (float x : v) {
      if (std::isnan(x)) continue;
      sum += x;
      mn = std::min<long double>(mn, x);
      mx = std::max<long double>(mx, x);
      ++cnt;
    }
    ASSERT_EQ(s.count, cnt);
    ASSERT_EQ(s.nan_count, nans);
    if (cnt == 0) {
      EXPECT_TRUE(std::isnan(s.mean) && std::isnan(s.min) && std::isnan(s.stddev()));
      continue;
    }
    const long double mean = sum / cnt;
    long double m2 = 0;
    for (float x : v) {
      if (!std::isnan(x)) m2 += (x - mean) * (x - mean);
    }
    EXPECT_EQ(s.min, static_cast<double>(mn));
    EXPECT_EQ(s.max, static_cast<double>(mx));
    EXPECT_NEAR(s.mean, static_cast<double>(mean), 1e-12 * 1e6);
    EXPECT_NEAR(s.stddev(), std::sqrt(static_cast<double>(m2 / cnt)), 1e-6);
  }
}

TEST_P(KernelTest, StatsWithoutNaNFindMinAndMaxAnywhere) {
  // Chunks without NaN take the fused sum-min-max pass; put the extremes at the start,
  // in the middle, in the scalar tail and across chunk boundaries.
  for (std::size_t n : {std::size_t{1}, std::size_t{17}, std::size_t{100}, std::size_t{2048},
                        std::size_t{2049}, std::size_t{5000}}) {
    for (std::size_t at : {std::size_t{0}, n / 2, n - 1}) {
      std::vector<float> v(n);
      std::mt19937 rng(static_cast<std::uint32_t>(n + at));
      std::normal_distribution<float> g(-3e5f, 2.0f);
      for (auto& x : v) x = g(rng);
      v[at] = -4e5f;
      v[(at + n / 3) % n] = n > 1 ? -1e5f : v[at];
      const auto s = kernels::stats(DType::Float32, v.data(), n);
      long double sum = 0;
      for (float x : v) sum += x;
      const long double mean = sum / n;
      long double m2 = 0;
      for (float x : v) m2 += (x - mean) * (x - mean);
      ASSERT_EQ(s.count, n);
      ASSERT_EQ(s.min, *std::min_element(v.begin(), v.end())) << n << " " << at;
      ASSERT_EQ(s.max, *std::max_element(v.begin(), v.end())) << n << " " << at;
      EXPECT_NEAR(s.mean, static_cast<double>(mean), 1e-9 * 3e5);
      EXPECT_NEAR(s.stddev(), std::sqrt(static_cast<double>(m2 / n)),
                  1e-9 * std::sqrt(static_cast<double>(m2 / n)) + 1e-9);
    }
  }
}

TEST_P(KernelTest, StatsFloat32AreExactWhereTheFloat32SumIsNot) {
  // float32 chunks take their shift from a float32 sum: results must not depend on how
  // rough that sum is (mean near zero against a wide spread), nor break where it
  // overflows (large finite values, of one sign or both).
  auto check = [](const std::vector<float>& v, const char* what) {
    const auto s = kernels::stats(DType::Float32, v.data(), v.size());
    long double sum = 0;
    for (float x : v) sum += x;
    const long double mean = sum / v.size();
    long double m2 = 0;
    for (float x : v) m2 += (x - mean) * (x - mean);
    const double sd = std::sqrt(static_cast<double>(m2 / v.size()));
    ASSERT_EQ(s.count, v.size()) << what;
    ASSERT_EQ(s.nan_count, 0u) << what;
    const double scale = sd + std::fabs(static_cast<double>(mean));
    EXPECT_NEAR(s.mean, static_cast<double>(mean), 1e-15 * scale) << what;
    EXPECT_NEAR(s.stddev(), sd, 1e-10 * sd) << what;
  };
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (std::size_t n : {std::size_t{100}, std::size_t{8192}, std::size_t{20000}}) {
    std::vector<float> v(n);
    for (auto& x : v) x = g(rng) * 1e4f + 1e-3f;
    check(v, "wide spread around zero");
    for (std::size_t i = 0; i < n; ++i) v[i] = (i % 2 ? -3e38f : 3e38f) + g(rng) * 1e31f;
    check(v, "float32 sum overflows both ways");
    for (auto& x : v) x = 2e38f + g(rng) * 1e31f;
    check(v, "float32 sum overflows");
  }
}

TEST_P(KernelTest, ByteShuffleMatchesTheDefinitionAndInverts) {
  for (std::size_t item : {1, 2, 3, 4, 8, 16}) {
    for (std::size_t n : {0, 1, 33, 1023, 1024, 2049, 5000}) {
      std::vector<std::uint8_t> in(n * item), sh(n * item), back(n * item);
      for (std::size_t i = 0; i < in.size(); ++i)
        in[i] = static_cast<std::uint8_t>(i * 131 + (i >> 8));
      kernels::shuffle_bytes(in.data(), sh.data(), n, item);
      for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t b = 0; b < item; ++b) ASSERT_EQ(sh[b * n + i], in[i * item + b]);
      }
      kernels::unshuffle_bytes(sh.data(), back.data(), n, item);
      ASSERT_EQ(back, in) << "item=" << item << " n=" << n;
    }
  }
}

TEST_P(KernelTest, ByteShuffleOfLargeArraysMatchesTheDefinitionStreamedOrNot) {
  // 16 MiB and more of output takes streaming stores when the output and its stream
  // stride are vector-aligned: an aligned output (streamed), one shifted by a byte, and an
  // element count that is not a multiple of the vector length (neither is), each checked
  // element by element, with nothing written past the end.
  for (std::size_t item : {2, 4}) {
    for (std::size_t n : {(std::size_t{16} << 20) / item, (std::size_t{16} << 20) / item + 5}) {
      std::vector<std::uint8_t> in(n * item);
      for (std::size_t i = 0; i < in.size(); ++i) {
        in[i] = static_cast<std::uint8_t>(i * 131 + (i >> 9));
      }
      std::vector<std::uint8_t> buf(n * item + 128 + 1, 0xA5);
      for (std::size_t shift : {std::size_t{0}, std::size_t{1}}) {
        // buf.data() is 16-byte aligned at least; 64 reaches every target's vector size.
        const std::size_t lead = (64 - reinterpret_cast<std::uintptr_t>(buf.data()) % 64) % 64;
        std::uint8_t* out = buf.data() + lead + shift;
        kernels::shuffle_bytes(in.data(), out, n, item);
        for (std::size_t i = 0; i < n; ++i) {
          for (std::size_t b = 0; b < item; ++b) {
            ASSERT_EQ(out[b * n + i], in[i * item + b])
                << "item=" << item << " n=" << n << " shift=" << shift << " i=" << i;
          }
        }
        ASSERT_EQ(out[n * item], 0xA5);
      }
    }
  }
}

int g_reciprocal_checks = 0;
bool count_and_pass(float, float, float) { return ++g_reciprocal_checks, true; }
bool count_and_fail(float, float, float) { return ++g_reciprocal_checks, false; }

TEST(ReciprocalDivisor, ChecksADivisorOnceItHasDividedEnoughElements) {
  // Divisors no other test uses: the choice is remembered for the whole process.
  const float b = 0.4321f;
  const std::size_t step = kReciprocalCheckAfter / 4;
  g_reciprocal_checks = 0;
  EXPECT_FALSE(reciprocal_divisor(b, 100, &count_and_pass).usable);  // small calls divide
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(reciprocal_divisor(b, step, &count_and_pass).usable);
  EXPECT_EQ(g_reciprocal_checks, 0);
  const ReciprocalDivisor r = reciprocal_divisor(b, step, &count_and_pass);
  EXPECT_EQ(g_reciprocal_checks, 1);
  ASSERT_TRUE(r.usable);
  EXPECT_EQ(r.hi, 1.0f / b);
  EXPECT_NEAR(double{r.hi} + r.lo, 1.0 / b, 0x1p-46 / b);
  // |d| from where d*lo stops being a normal float (with a factor 2 to spare) up to
  // b * 2^125.
  float min_abs;
  std::memcpy(&min_abs, &r.min_abs_bits, 4);
  const double lowest = 0x1p-125 / std::fabs(double{r.lo});
  EXPECT_GE(min_abs, lowest);
  EXPECT_LT(std::nextafter(min_abs, 0.0f), lowest);
  EXPECT_EQ(r.max_abs_bits, bits(std::ldexp(b, 125)));
  EXPECT_TRUE(reciprocal_divisor(b, step, &count_and_pass).usable);
  EXPECT_EQ(g_reciprocal_checks, 1);  // checked once

  const float c = 0.8765f;
  for (int i = 0; i < 6; ++i) EXPECT_FALSE(reciprocal_divisor(c, step, &count_and_fail).usable);
  EXPECT_EQ(g_reciprocal_checks, 2);  // failed once, never asked again

  // No fast path at all, and nothing to check, where 1/b or its low part is not normal.
  for (const float bad : {0.0f, -0.0f, kInf, kNaN, 1e-40f, 0x1p-121f, 0x1p121f})
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(reciprocal_divisor(bad, step, &count_and_pass).usable);
  EXPECT_EQ(g_reciprocal_checks, 2);
}

TEST(SimdTarget, UnknownTargetIsRefusedWithTheValidNames) {
  try {
    force_target("neon");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("avx2"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(compiled_targets().empty());
  EXPECT_EQ(supported_targets().back(), compiled_targets().back());  // the fallback
}

// ---------------------------------------------------------------------------- specs

TEST(OpSpec, CanonicalTextRoundTrips) {
  const std::string text =
      "cast(to=int8,scale=0.1)|standardize(axis=-1,mean=0.5:1e-07,std=2:3)|minmax(lo=-1)|"
      "clip(lo=-inf,hi=3.25)|log1p()|subsample(strides=2x1x3)|patches(size=4x4,stride=2x2)|"
      "stats()|python(name=my.fn)|compress(codec=lz4,level=0)";
  const auto ops = parse_ops(text);
  EXPECT_EQ(ops.size(), 10u);
  EXPECT_EQ(to_string(ops), text);
  EXPECT_EQ(to_string(parse_ops("patches(size=8x8)")), "patches(size=8x8,stride=8x8)");
  EXPECT_EQ(to_string(parse_ops("compress()")), "compress(codec=zstd,level=1)");
}

TEST(OpSpec, BadTextIsRefusedWithAReason) {
  const char* bad[] = {"frobnicate()",
                       "cast(to=float64)",
                       "cast()",
                       "cast(to=float32",
                       "clip(lo=2,hi=1)",
                       "clip(lo=nan,hi=1)",
                       "patches(size=0x4)",
                       "patches(size=4x4,stride=1)",
                       "standardize(mean=1)",
                       "standardize(mean=1,std=0)",
                       "standardize(mean=1:2,std=1)",
                       "log1p(x=1)",
                       "cast(to=float32,to=int8)",
                       "compress(codec=gzip)",
                       "compress(level=40)",
                       "python(name=a b)",
                       "subsample(strides=2xx2)",
                       "minmax(lo=1,hi=1)",
                       "cast(to=float16,scale=2)",
                       ""};
  for (const char* b : bad) {
    if (std::string(b).empty()) {
      EXPECT_TRUE(parse_ops(b).empty());
      continue;
    }
    EXPECT_THROW(parse_ops(b), InvalidArgument) << b;
  }
}

TEST(OpSpec, TruncationsAndByteFlipsNeverCrashTheParser) {
  const std::string text =
      "cast(to=float32)|standardize(axis=1,mean=1:2,std=3:4)|patches(size=4x4,stride=2x2)";
  std::mt19937 rng(4);
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    try {
      parse_ops(text.substr(0, cut));
    } catch (const InvalidArgument&) {
    }
  }
  for (int k = 0; k < 2000; ++k) {
    std::string t = text;
    t[rng() % t.size()] = static_cast<char>(rng());
    try {
      const auto ops = parse_ops(t);
      EXPECT_EQ(parse_ops(to_string(ops)).size(), ops.size());
    } catch (const InvalidArgument&) {
    }
  }
}

// ---------------------------------------------------------------------------- pipeline

TEST(Pipeline, ValidateRefusesBadPipelinesNamingVariableAndFix) {
  auto msg = [](const std::string& text, DType t, Dims shape) {
    try {
      Pipeline::parse(text).validate(t, shape, "field");
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  auto m = msg("patches(size=64x64)", DType::Float32, {32, 100});
  EXPECT_NE(m.find("variable 'field'"), std::string::npos) << m;
  EXPECT_NE(m.find("larger than the array"), std::string::npos) << m;
  m = msg("log1p()", DType::Int32, {10});
  EXPECT_NE(m.find("cast('float32')"), std::string::npos) << m;
  m = msg("subsample(strides=2x2x2)", DType::Float32, {10, 10});
  EXPECT_NE(m.find("3 strides for a 2-d array"), std::string::npos) << m;
  m = msg("standardize(axis=3)", DType::Float32, {10, 10});
  EXPECT_NE(m.find("out of range"), std::string::npos) << m;
  m = msg("standardize(axis=1,mean=1:2,std=1:1)", DType::Float32, {10, 3});
  EXPECT_NE(m.find("one value per channel"), std::string::npos) << m;
  m = msg("clip(lo=300,hi=400)", DType::UInt8, {10});
  EXPECT_NE(m.find("no uint8 value"), std::string::npos) << m;
  m = msg("cast(to=float16)", DType::Complex64, {10});
  EXPECT_NE(m.find("not complex64"), std::string::npos) << m;
  EXPECT_THROW(Pipeline::parse("compress()|log1p()"), InvalidArgument);
  const auto spec = Pipeline::parse("cast(to=float32)|patches(size=4x4,stride=2x2)")
                        .validate(DType::UInt8, {10, 9, 3}, "img");
  EXPECT_EQ(spec.dtype, DType::Float32);
  EXPECT_EQ(spec.shape, (Dims{4 * 3, 4, 4, 3}));
}

TEST(Pipeline, PatchesAndSubsampleCopyTheRightElements) {
  std::vector<std::int32_t> x(7 * 9 * 2);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<std::int32_t>(i);
  const TensorView in{DType::Int32, {7, 9, 2}, x.data()};
  auto r = Pipeline::parse("patches(size=3x4,stride=2x3)").run(in, {});
  ASSERT_EQ(r.output.shape, (Dims{3 * 2, 3, 4, 2}));
  const auto* p = reinterpret_cast<const std::int32_t*>(r.output.data);
  std::size_t k = 0;
  for (int gy = 0; gy < 3; ++gy)
    for (int gx = 0; gx < 2; ++gx)
      for (int y = 0; y < 3; ++y)
        for (int xx = 0; xx < 4; ++xx)
          for (int c = 0; c < 2; ++c)
            ASSERT_EQ(p[k++], x[((gy * 2 + y) * 9 + gx * 3 + xx) * 2 + c]);
  r = Pipeline::parse("subsample(strides=3x2x2)").run(in, {});
  ASSERT_EQ(r.output.shape, (Dims{3, 5, 1}));
  p = reinterpret_cast<const std::int32_t*>(r.output.data);
  k = 0;
  for (int a = 0; a < 7; a += 3)
    for (int b = 0; b < 9; b += 2) ASSERT_EQ(p[k++], x[(a * 9 + b) * 2]);
}

TEST(Pipeline, LargePatchesStreamedPastTheCacheAreStillRight) {
  // 8 MiB of output takes the streaming-store path of patches_copy.
  const std::uint64_t h = 1024, w = 2048;
  std::vector<float> x(h * w);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  const TensorView in{DType::Float32, {h, w}, x.data()};
  const auto r = Pipeline::parse("patches(size=64x64)").run(in, {});
  ASSERT_EQ(r.output.shape, (Dims{16 * 32, 64, 64}));
  const auto* p = reinterpret_cast<const float*>(r.output.data);
  for (std::uint64_t t = 0; t < 16 * 32; ++t) {
    for (std::uint64_t y = 0; y < 64; ++y) {
      for (std::uint64_t xx = 0; xx < 64; xx += 7) {
        const std::uint64_t gy = t / 32, gx = t % 32;
        ASSERT_EQ(p[(t * 64 + y) * 64 + xx], x[(gy * 64 + y) * w + gx * 64 + xx]);
      }
    }
  }
}

TEST(Pipeline, RunningStandardizeGivesTheSameBytesOnBothSides) {
  const Pipeline p = Pipeline::parse("cast(to=float32)|standardize(axis=1)|stats()");
  PipelineState writer_state;
  std::mt19937 rng(2);
  std::normal_distribution<double> g(5.0, 3.0);
  for (int step = 0; step < 4; ++step) {
    std::vector<double> x(50 * 3);
    for (auto& v : x) v = g(rng);
    const TensorView in{DType::Float64, {50, 3}, x.data()};
    RunOptions w;
    w.state = &writer_state;
    const auto wr = p.run(in, w);
    // The reader runs the pipeline on the raw block with the writer's published values.
    RunOptions r;
    r.published = &wr.attributes;
    const auto rr = p.run(in, r);
    ASSERT_EQ(wr.output.bytes, rr.output.bytes);
    ASSERT_EQ(std::memcmp(wr.output.data, rr.output.data, wr.output.bytes), 0) << step;
    const auto& counts = std::get<ArrayAttribute>(wr.attributes.at("1.standardize.count"));
    std::int64_t c0;
    std::memcpy(&c0, counts.bytes.data(), 8);
    ASSERT_EQ(counts.shape, Dims{3});
    ASSERT_EQ(c0, 50 * (step + 1));
    ASSERT_EQ(wr.timings.size(), 3u);
  }
  const TensorView in{DType::Float32, {4, 3}, std::vector<float>(12, 1.0f).data()};
  EXPECT_THROW(p.run(in, {}), InvalidArgument);  // no statistics anywhere
}

TEST(Pipeline, CompressRoundTripsAndRefusesCorruptInput) {
  for (const char* codec : {"zstd", "lz4"}) {
    std::vector<double> x(300000);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(i * 0.001);
    const TensorView in{DType::Float64, {600, 500}, x.data()};
    const auto packed = Pipeline::parse(std::string("compress(codec=") + codec + ")").run(in, {});
    EXPECT_LT(packed.output.bytes, x.size() * 8);
    const auto back = decompress(packed.output.data, packed.output.bytes);
    ASSERT_EQ(back.shape, in.shape);
    ASSERT_EQ(back.dtype, DType::Float64);
    ASSERT_EQ(std::memcmp(back.data, x.data(), back.bytes), 0);
    std::vector<std::byte> bytes(packed.output.data, packed.output.data + packed.output.bytes);
    for (std::size_t cut :
         {std::size_t{0}, std::size_t{10}, std::size_t{30}, bytes.size() / 2, bytes.size() - 1}) {
      EXPECT_THROW(decompress(bytes.data(), cut), InvalidArgument) << cut;
    }
    std::mt19937 rng(1);
    for (int k = 0; k < 200; ++k) {
      auto b = bytes;
      b[rng() % 64] = static_cast<std::byte>(rng());
      try {
        const auto t = decompress(b.data(), b.size());
        EXPECT_EQ(t.bytes, x.size() * 8);
      } catch (const InvalidArgument&) {
      }
    }
  }
  // Incompressible data is stored, and still round-trips.
  std::vector<std::uint8_t> noise(3 << 20);
  std::mt19937 rng(3);
  for (auto& b : noise) b = static_cast<std::uint8_t>(rng());
  const auto packed = compress({DType::UInt8, {noise.size()}, noise.data()}, Codec::Zstd, 1);
  const auto back = decompress(packed.data, packed.bytes);
  EXPECT_EQ(std::memcmp(back.data, noise.data(), noise.size()), 0);
}

// ---------------------------------------------------------------------------- cache

std::shared_ptr<const PipelineResult> result_of(std::size_t bytes) {
  auto r = std::make_shared<PipelineResult>();
  r->output = Tensor::allocate_bytes(bytes);
  return r;
}

TEST(ResultCache, EvictsLeastRecentlyUsedAndNeverExceedsItsBound) {
  ResultCache c(1000);
  const auto key = [](int step) {
    return CacheKey{static_cast<std::uint64_t>(step), "x", "log1p()"};
  };
  EXPECT_TRUE(c.put(key(1), result_of(400)));
  EXPECT_TRUE(c.put(key(2), result_of(400)));
  EXPECT_NE(c.get(key(1)), nullptr);  // 1 is now more recent than 2
  EXPECT_TRUE(c.put(key(3), result_of(400)));
  EXPECT_EQ(c.get(key(2)), nullptr);  // 2 was evicted, not 1
  EXPECT_NE(c.get(key(1)), nullptr);
  auto k = c.keys();
  ASSERT_EQ(k.size(), 2u);
  EXPECT_EQ(k[0].step, 1u);
  EXPECT_EQ(k[1].step, 3u);
  EXPECT_FALSE(c.put(key(4), result_of(1001)));  // larger than the bound
  auto n = c.counters();
  EXPECT_EQ(n.hits, 2u);
  EXPECT_EQ(n.misses, 1u);
  EXPECT_EQ(n.evictions, 1u);
  EXPECT_EQ(n.rejected, 1u);
  EXPECT_EQ(n.bytes, 800u);
  std::mt19937 rng(5);
  for (int i = 0; i < 500; ++i) {
    c.put(key(static_cast<int>(rng() % 20)), result_of(rng() % 700));
    ASSERT_LE(c.counters().bytes, 1000u);
  }
  c.set_max_bytes(100);
  EXPECT_LE(c.counters().bytes, 100u);
  // A result that views its input is refused rather than left dangling.
  auto view = std::make_shared<PipelineResult>();
  EXPECT_FALSE(c.put(key(9), view));
}

TEST(ResultCache, CachedResultEqualsARecomputedOne) {
  ResultCache c(1 << 20);
  const Pipeline p = Pipeline::parse("log1p()|clip(lo=0,hi=2)");
  std::vector<float> x(1000);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.01f;
  const TensorView in{DType::Float32, {x.size()}, x.data()};
  RunOptions o;
  o.own_output = true;
  const CacheKey key{7, "x", p.key()};
  auto first = c.get_or_compute(key, [&] { return p.run(in, o); });
  auto second = c.get_or_compute(key, [&] { return p.run(in, o); });
  EXPECT_EQ(first, second);  // the same shared result, no recompute
  const auto fresh = p.run(in, o);
  EXPECT_EQ(std::memcmp(fresh.output.data, second->output.data, fresh.output.bytes), 0);
  EXPECT_EQ(c.counters().hits, 1u);
}

}  // namespace
