// Byte shuffle before compression: grouping byte b of every element together turns the
// slowly varying high bytes of numeric data into long runs a compressor can use. Element
// sizes 2 and 4 use Highway's interleaved loads and stores; size 8 runs them in two stages
// through a buffer in L1 (de-interleave by 4, then each stream by 2); other sizes are rare
// and use the scalar loop.
#include "ops/hwy_config.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/kernels_shuffle.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <cstdint>
#include <cstring>

#include "ops/kernels.hpp"

HWY_BEFORE_NAMESPACE();
namespace twinstream::ops::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using Bytes = std::uint8_t;

void ShuffleScalar(const Bytes* in, Bytes* out, std::size_t begin, std::size_t end, std::size_t n,
                   std::size_t item) {
  for (std::size_t i = begin; i < end; ++i) {
    for (std::size_t b = 0; b < item; ++b) out[b * n + i] = in[i * item + b];
  }
}

void UnshuffleScalar(const Bytes* in, Bytes* out, std::size_t begin, std::size_t end, std::size_t n,
                     std::size_t item) {
  for (std::size_t i = begin; i < end; ++i) {
    for (std::size_t b = 0; b < item; ++b) out[i * item + b] = in[b * n + i];
  }
}

template <bool kStream, class D, class V>
HWY_INLINE void StoreOut(V v, D d, Bytes* p) {
  if constexpr (kStream) {
    hn::Stream(v, d, p);
  } else {
    hn::StoreU(v, d, p);
  }
}

template <bool kStream>
std::size_t Shuffle24Loop(const Bytes* in, Bytes* out, std::size_t count, std::size_t stride,
                          std::size_t item) {
  const hn::ScalableTag<Bytes> d;
  const std::size_t N = hn::Lanes(d);
  std::size_t i = 0;
  if (item == 2) {
    for (; i + N <= count; i += N) {
      hn::Vec<decltype(d)> v0, v1;
      hn::LoadInterleaved2(d, in + 2 * i, v0, v1);
      StoreOut<kStream>(v0, d, out + i);
      StoreOut<kStream>(v1, d, out + stride + i);
    }
  } else {
    for (; i + N <= count; i += N) {
      hn::Vec<decltype(d)> v0, v1, v2, v3;
      hn::LoadInterleaved4(d, in + 4 * i, v0, v1, v2, v3);
      StoreOut<kStream>(v0, d, out + i);
      StoreOut<kStream>(v1, d, out + stride + i);
      StoreOut<kStream>(v2, d, out + 2 * stride + i);
      StoreOut<kStream>(v3, d, out + 3 * stride + i);
    }
  }
  return i;
}

// Shuffles elements [0, count) of `in` (item 2 or 4) into streams out + b * stride.
// Returns how many elements it did (a multiple of the vector length). Past
// kStreamOutputBytes the output is streamed where every stream is vector-aligned, but not
// with 16-byte vectors: four streams of 16-byte pieces fill the write-combining buffers a
// quarter line at a time (measured on sse4 at 16 MiB: 12 GB/s cached, 7 streamed).
std::size_t Shuffle24(const Bytes* in, Bytes* out, std::size_t count, std::size_t stride,
                      std::size_t item) {
  const std::size_t N = hn::Lanes(hn::ScalableTag<Bytes>());
  const bool aligned = reinterpret_cast<std::uintptr_t>(out) % N == 0 && stride % N == 0;
  if (N >= 32 && aligned && count * item >= kStreamOutputBytes) {
    const std::size_t done = Shuffle24Loop<true>(in, out, count, stride, item);
    hwy::FlushStream();
    return done;
  }
  return Shuffle24Loop<false>(in, out, count, stride, item);
}

std::size_t Unshuffle24(const Bytes* in, Bytes* out, std::size_t count, std::size_t stride,
                        std::size_t item) {
  const hn::ScalableTag<Bytes> d;
  const std::size_t N = hn::Lanes(d);
  std::size_t i = 0;
  if (item == 2) {
    for (; i + N <= count; i += N) {
      hn::StoreInterleaved2(hn::LoadU(d, in + i), hn::LoadU(d, in + stride + i), d, out + 2 * i);
    }
  } else {
    for (; i + N <= count; i += N) {
      hn::StoreInterleaved4(hn::LoadU(d, in + i), hn::LoadU(d, in + stride + i),
                            hn::LoadU(d, in + 2 * stride + i), hn::LoadU(d, in + 3 * stride + i), d,
                            out + 4 * i);
    }
  }
  return i;
}

constexpr std::size_t kBlock = 1024;  // elements of 8 bytes per two-stage block (8 KiB)

void ShuffleBytes(const void* vin, void* vout, std::size_t n, std::size_t item) {
  const auto* in = static_cast<const Bytes*>(vin);
  auto* out = static_cast<Bytes*>(vout);
  std::size_t done = 0;
  if (item == 2 || item == 4) {
    done = Shuffle24(in, out, n, n, item);
  } else if (item == 8) {
    // Stage 1 splits each element into 4 two-byte streams (bytes j and j+4 alternating);
    // stage 2 splits each of those by 2.
    HWY_ALIGN Bytes tmp[4 * 2 * kBlock];
    for (; done + kBlock <= n; done += kBlock) {
      Shuffle24(in + 8 * done, tmp, 2 * kBlock, 2 * kBlock, 4);
      for (std::size_t j = 0; j < 4; ++j) {
        // Stream j pairs are (byte j, byte j + 4) of one element.
        Bytes* two[2] = {out + j * n + done, out + (j + 4) * n + done};
        const hn::ScalableTag<Bytes> d;
        const std::size_t N = hn::Lanes(d);
        const Bytes* s = tmp + j * 2 * kBlock;
        std::size_t i = 0;
        for (; i + N <= kBlock; i += N) {
          hn::Vec<decltype(d)> lo, hi;
          hn::LoadInterleaved2(d, s + 2 * i, lo, hi);
          hn::StoreU(lo, d, two[0] + i);
          hn::StoreU(hi, d, two[1] + i);
        }
        for (; i < kBlock; ++i) {
          two[0][i] = s[2 * i];
          two[1][i] = s[2 * i + 1];
        }
      }
    }
  } else if (item == 1) {
    std::memcpy(out, in, n);
    return;
  }
  ShuffleScalar(in, out, done, n, n, item);
}

void UnshuffleBytes(const void* vin, void* vout, std::size_t n, std::size_t item) {
  const auto* in = static_cast<const Bytes*>(vin);
  auto* out = static_cast<Bytes*>(vout);
  std::size_t done = 0;
  if (item == 2 || item == 4) {
    done = Unshuffle24(in, out, n, n, item);
  } else if (item == 8) {
    HWY_ALIGN Bytes tmp[4 * 2 * kBlock];
    const hn::ScalableTag<Bytes> d;
    const std::size_t N = hn::Lanes(d);
    for (; done + kBlock <= n; done += kBlock) {
      for (std::size_t j = 0; j < 4; ++j) {
        const Bytes* lo = in + j * n + done;
        const Bytes* hi = in + (j + 4) * n + done;
        Bytes* s = tmp + j * 2 * kBlock;
        std::size_t i = 0;
        for (; i + N <= kBlock; i += N) {
          hn::StoreInterleaved2(hn::LoadU(d, lo + i), hn::LoadU(d, hi + i), d, s + 2 * i);
        }
        for (; i < kBlock; ++i) {
          s[2 * i] = lo[i];
          s[2 * i + 1] = hi[i];
        }
      }
      Unshuffle24(tmp, out + 8 * done, 2 * kBlock, 2 * kBlock, 4);
    }
  } else if (item == 1) {
    std::memcpy(out, in, n);
    return;
  }
  UnshuffleScalar(in, out, done, n, n, item);
}

}  // namespace twinstream::ops::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "ops/simd_target.hpp"

namespace twinstream::ops::kernels {
HWY_EXPORT(ShuffleBytes);
HWY_EXPORT(UnshuffleBytes);

void shuffle_bytes(const void* in, void* out, std::size_t n, std::size_t itemsize) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(ShuffleBytes)(in, out, n, itemsize);
}
void unshuffle_bytes(const void* in, void* out, std::size_t n, std::size_t itemsize) {
  apply_target_from_environment();
  HWY_DYNAMIC_DISPATCH(UnshuffleBytes)(in, out, n, itemsize);
}

}  // namespace twinstream::ops::kernels
#endif  // HWY_ONCE
