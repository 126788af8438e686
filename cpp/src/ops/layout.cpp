#include "ops/layout.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cstdint>
#include <cstring>
#include <vector>

namespace twinstream::ops {
namespace {

// Byte strides of a C-ordered array.
std::vector<std::size_t> byte_strides(const Dims& shape, std::size_t item) {
  std::vector<std::size_t> s(shape.size());
  std::size_t acc = item;
  for (std::size_t i = shape.size(); i-- > 0;) {
    s[i] = acc;
    acc *= static_cast<std::size_t>(shape[i]);
  }
  return s;
}

// Short rows (a 64-wide tile row is 256 bytes) cost more in the memcpy call than in the
// copy; fixed-size 32-byte copies are inlined as vector moves instead.
void copy_row(std::byte* dst, const std::byte* src, std::size_t n) {
  if (n <= 2048 && n % 32 == 0) {
    for (std::size_t i = 0; i < n; i += 32) std::memcpy(dst + i, src + i, 32);
    return;
  }
  std::memcpy(dst, src, n);
}

// Outputs this large go past the cache: stream them (no read-for-ownership of lines that
// are about to be overwritten whole).
constexpr std::size_t kStreamBytes = 8u << 20;

// Copies n bytes (a multiple of 16, dst 16-byte aligned) with non-temporal stores.
void stream_row(std::byte* dst, const std::byte* src, std::size_t n) {
#if defined(__SSE2__)
  for (std::size_t i = 0; i < n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), v);
  }
#else
  std::memcpy(dst, src, n);
#endif
}

void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

template <typename T>
void gather(const std::byte* in, std::size_t step, std::size_t n, std::byte* out) {
  const auto* p = reinterpret_cast<const T*>(in);
  auto* q = reinterpret_cast<T*>(out);
  const std::size_t s = step / sizeof(T);
  if (s == 2) {  // the common case, with a stride the compiler can vectorise
    for (std::size_t i = 0; i < n; ++i) q[i] = p[2 * i];
    return;
  }
  for (std::size_t i = 0; i < n; ++i) q[i] = p[i * s];
}

// Copies n elements `step` bytes apart into a contiguous run.
void strided_row(const std::byte* in, std::size_t step, std::size_t n, std::size_t item,
                 std::byte* out) {
  if (step == item) {
    copy_row(out, in, n * item);
    return;
  }
  switch (item) {
    case 1:
      return gather<std::uint8_t>(in, step, n, out);
    case 2:
      return gather<std::uint16_t>(in, step, n, out);
    case 4:
      return gather<std::uint32_t>(in, step, n, out);
    case 8:
      return gather<std::uint64_t>(in, step, n, out);
    default:
      for (std::size_t i = 0; i < n; ++i) std::memcpy(out + i * item, in + i * step, item);
  }
}

// Calls f(offset_in_bytes) for each index of `counts` (an odometer over all but none of
// the axes), where axis i advances by steps[i] bytes.
template <typename F>
void for_each_index(const Dims& counts, const std::vector<std::size_t>& steps, F&& f) {
  for (auto c : counts) {
    if (c == 0) return;
  }
  std::vector<std::uint64_t> idx(counts.size(), 0);
  std::size_t off = 0;
  while (true) {
    f(off);
    std::size_t a = counts.size();
    while (a > 0) {
      --a;
      if (++idx[a] < counts[a]) {
        off += steps[a];
        break;
      }
      off -= steps[a] * (idx[a] - 1);
      idx[a] = 0;
      if (a == 0) return;
    }
    if (counts.empty()) return;
  }
}

}  // namespace

Dims subsample_shape(const Dims& shape, const Dims& strides) {
  Dims out = shape;
  for (std::size_t i = 0; i < strides.size() && i < shape.size(); ++i) {
    out[i] = (shape[i] + strides[i] - 1) / strides[i];
  }
  return out;
}

void subsample_copy(const TensorView& in, const Dims& strides, std::byte* out) {
  const std::size_t item = dtype_size(in.dtype);
  const Dims out_shape = subsample_shape(in.shape, strides);
  if (in.shape.empty()) {
    std::memcpy(out, in.data, item);
    return;
  }
  const auto in_strides = byte_strides(in.shape, item);
  const std::size_t last = in.shape.size() - 1;
  std::vector<std::size_t> steps(last);
  Dims outer(out_shape.begin(), out_shape.begin() + static_cast<std::ptrdiff_t>(last));
  for (std::size_t i = 0; i < last; ++i) {
    steps[i] = in_strides[i] * (i < strides.size() ? strides[i] : 1);
  }
  const std::size_t row_step = item * (last < strides.size() ? strides[last] : 1);
  const std::size_t row_n = out_shape[last];
  const auto* base = static_cast<const std::byte*>(in.data);
  std::byte* dst = out;
  for_each_index(outer, steps, [&](std::size_t off) {
    strided_row(base + off, row_step, row_n, item, dst);
    dst += row_n * item;
  });
}

Dims patch_grid(const Dims& shape, const Dims& size, const Dims& stride) {
  Dims g(size.size());
  for (std::size_t i = 0; i < size.size(); ++i) g[i] = (shape[i] - size[i]) / stride[i] + 1;
  return g;
}

Dims patches_shape(const Dims& shape, const Dims& size, const Dims& stride) {
  std::uint64_t n = 1;
  for (auto g : patch_grid(shape, size, stride)) n *= g;
  Dims out{n};
  out.insert(out.end(), size.begin(), size.end());
  out.insert(out.end(), shape.begin() + static_cast<std::ptrdiff_t>(size.size()), shape.end());
  return out;
}

void patches_copy(const TensorView& in, const Dims& size, const Dims& stride, std::byte* out) {
  const std::size_t item = dtype_size(in.dtype);
  const std::size_t k = size.size();
  const auto in_strides = byte_strides(in.shape, item);
  // One tile row: the last patched axis and every axis after it are contiguous.
  const std::size_t row_bytes = static_cast<std::size_t>(size[k - 1]) * in_strides[k - 1];
  const Dims grid = patch_grid(in.shape, size, stride);
  std::vector<std::size_t> grid_steps(k);
  for (std::size_t i = 0; i < k; ++i) grid_steps[i] = in_strides[i] * stride[i];
  const Dims rows(size.begin(), size.end() - 1);
  const std::vector<std::size_t> row_steps(in_strides.begin(),
                                           in_strides.begin() + static_cast<std::ptrdiff_t>(k - 1));
  const auto* base = static_cast<const std::byte*>(in.data);
  if (k == 2) {
    // 2-D tiles (images): walk the input in its own order, row by row, scattering each
    // row's pieces to their tiles; reading tile by tile would jump a whole image row for
    // every 256 bytes, which defeats the prefetchers on arrays larger than the cache. The
    // scattered writes go to as many streams as there are tiles across; past the cache
    // they are streamed (measured: 2.5x faster at 16 MiB, as fast as memcpy).
    const std::size_t tile_bytes = static_cast<std::size_t>(size[0]) * row_bytes;
    const bool stream = grid[0] * grid[1] * tile_bytes >= kStreamBytes && row_bytes % 16 == 0 &&
                        reinterpret_cast<std::uintptr_t>(out) % 16 == 0;
    for (std::uint64_t g0 = 0; g0 < grid[0]; ++g0) {
      for (std::uint64_t r = 0; r < size[0]; ++r) {
        const std::byte* src = base + g0 * grid_steps[0] + r * in_strides[0];
        std::byte* dst = out + (g0 * grid[1] * size[0] + r) * row_bytes;
        for (std::uint64_t g1 = 0; g1 < grid[1]; ++g1) {
          if (stream) {
            stream_row(dst + g1 * tile_bytes, src + g1 * grid_steps[1], row_bytes);
          } else {
            copy_row(dst + g1 * tile_bytes, src + g1 * grid_steps[1], row_bytes);
          }
        }
      }
    }
    stream_fence();  // streamed stores are visible before the caller reads the tiles
    return;
  }
  std::byte* dst = out;
  for_each_index(grid, grid_steps, [&](std::size_t tile) {
    for_each_index(rows, row_steps, [&](std::size_t row) {
      copy_row(dst, base + tile + row, row_bytes);
      dst += row_bytes;
    });
  });
}

}  // namespace twinstream::ops
