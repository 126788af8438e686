#include "ops/codec.hpp"

#include <lz4.h>
#include <lz4hc.h>
#include <zstd.h>

#include <bit>
#include <cstring>
#include <memory>
#include <vector>

#include "ops/kernels.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::ops {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the compressed layout is written in host order, which must be little-endian");

constexpr char kMagic[4] = {'T', 'S', 'C', '1'};
constexpr std::size_t kFixedHeader = 24;
constexpr std::uint32_t kStoredRaw = 0x80000000u;

template <typename T>
void put(std::vector<std::byte>& out, T v) {
  const auto at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

template <typename T>
T get(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

struct ZstdContexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
// One context per thread: creating one per call costs more than compressing a small block.
ZstdContexts& zstd() {
  thread_local ZstdContexts ctx;
  return ctx;
}

std::size_t bound(Codec codec, std::size_t n) {
  return codec == Codec::Zstd ? ZSTD_compressBound(n)
                              : static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(n)));
}

// Returns the compressed size, or 0 when the codec failed or did not shrink the chunk.
std::size_t compress_chunk(Codec codec, int level, const std::byte* src, std::size_t n,
                           std::byte* dst, std::size_t cap) {
  if (codec == Codec::Zstd) {
    const auto r = ZSTD_compressCCtx(zstd().c, dst, cap, src, n, level);
    return ZSTD_isError(r) || r >= n ? 0 : r;
  }
  const auto* s = reinterpret_cast<const char*>(src);
  auto* d = reinterpret_cast<char*>(dst);
  const int r = level == 0
                    ? LZ4_compress_default(s, d, static_cast<int>(n), static_cast<int>(cap))
                    : LZ4_compress_HC(s, d, static_cast<int>(n), static_cast<int>(cap), level);
  return r <= 0 || static_cast<std::size_t>(r) >= n ? 0 : static_cast<std::size_t>(r);
}

[[noreturn]] void corrupt(const std::string& what) {
  throw InvalidArgument("compressed block is corrupt: " + what +
                        " (it was not written by twinstream's compress, or was truncated)");
}

// Room for one byte-shuffled chunk, kept by each thread between calls. A fresh 1 MiB
// buffer per call costs page faults whenever malloc has handed the memory back to the
// system in between, which it does for blocks of about this size (measured: lz4 of 1 MiB
// at 1.2 GB/s instead of 7.7, zstd-1 at 0.8 instead of 2.4). Larger chunks (only a
// foreign writer's header asks for them) get a buffer of their own.
class ShuffleScratch {
 public:
  explicit ShuffleScratch(std::size_t n) {
    thread_local std::vector<std::byte> kept;
    if (n > kCompressChunk) {
      own_.resize(n);
      data_ = own_.data();
      return;
    }
    if (kept.size() < n) kept.resize(n);
    data_ = kept.data();
  }
  std::byte* data() const { return data_; }

 private:
  std::vector<std::byte> own_;
  std::byte* data_ = nullptr;
};

}  // namespace

Tensor compress(const TensorView& in, Codec codec, int level) {
  const std::size_t item = dtype_size(in.dtype);
  const std::size_t raw = static_cast<std::size_t>(element_count(in.shape)) * item;
  const std::size_t chunks = (raw + kCompressChunk - 1) / kCompressChunk;
  std::vector<std::byte> head;
  head.insert(head.end(), reinterpret_cast<const std::byte*>(kMagic),
              reinterpret_cast<const std::byte*>(kMagic) + 4);
  put<std::uint8_t>(head, static_cast<std::uint8_t>(codec));
  put<std::uint8_t>(head, static_cast<std::uint8_t>(in.dtype));
  put<std::uint8_t>(head, static_cast<std::uint8_t>(in.shape.size()));
  put<std::uint8_t>(head, 0);
  put<std::uint64_t>(head, raw);
  put<std::uint32_t>(head, static_cast<std::uint32_t>(kCompressChunk));
  put<std::uint32_t>(head, static_cast<std::uint32_t>(chunks));
  for (auto d : in.shape) put<std::uint64_t>(head, d);

  // Written in place into a buffer sized for the worst case, then trimmed: no copy after.
  std::size_t cap_total = head.size();
  for (std::size_t off = 0; off < raw; off += kCompressChunk) {
    const std::size_t n = std::min(kCompressChunk, raw - off);
    cap_total += 4 + std::max(n, bound(codec, n));
  }
  Tensor t = Tensor::allocate_bytes(cap_total);
  std::byte* out = t.mutable_data();
  std::memcpy(out, head.data(), head.size());
  std::size_t at = head.size();

  const ShuffleScratch shuffled(std::min(raw, kCompressChunk));
  const auto* src = static_cast<const std::byte*>(in.data);
  for (std::size_t off = 0; off < raw; off += kCompressChunk) {
    const std::size_t n = std::min(kCompressChunk, raw - off);
    kernels::shuffle_bytes(src + off, shuffled.data(), n / item, item);
    const std::size_t c =
        compress_chunk(codec, level, shuffled.data(), n, out + at + 4, bound(codec, n));
    std::uint32_t tag;
    if (c == 0) {
      // Incompressible (or already compressed) data: store it, unshuffled, as it came.
      std::memcpy(out + at + 4, src + off, n);
      tag = static_cast<std::uint32_t>(n) | kStoredRaw;
    } else {
      tag = static_cast<std::uint32_t>(c);
    }
    std::memcpy(out + at, &tag, 4);
    at += 4 + (tag & ~kStoredRaw);
  }
  t.bytes = at;
  t.shape = Dims{at};
  return t;
}

Tensor decompress(const void* data, std::size_t size) {
  const auto* p = static_cast<const std::byte*>(data);
  if (size < kFixedHeader) corrupt(std::to_string(size) + " bytes is shorter than the header");
  if (std::memcmp(p, kMagic, 4) != 0) corrupt("wrong magic bytes");
  const auto codec_raw = get<std::uint8_t>(p + 4);
  if (codec_raw != static_cast<std::uint8_t>(Codec::Zstd) &&
      codec_raw != static_cast<std::uint8_t>(Codec::Lz4)) {
    corrupt("unknown codec " + std::to_string(codec_raw));
  }
  const auto codec = static_cast<Codec>(codec_raw);
  const auto dtype_raw = get<std::uint8_t>(p + 5);
  if (!dtype_valid(dtype_raw)) corrupt("unknown dtype code " + std::to_string(dtype_raw));
  const auto dtype = static_cast<DType>(dtype_raw);
  const std::size_t ndim = get<std::uint8_t>(p + 6);
  const auto raw = get<std::uint64_t>(p + 8);
  const auto chunk = get<std::uint32_t>(p + 16);
  const auto chunks = get<std::uint32_t>(p + 20);
  if (ndim > 32) corrupt("rank " + std::to_string(ndim) + " is above 32");
  if (chunk != kCompressChunk) corrupt("chunk size " + std::to_string(chunk));
  std::size_t pos = kFixedHeader + 8 * ndim;
  if (size < pos) corrupt("the shape is truncated");
  Dims shape(ndim);
  const std::size_t item = dtype_size(dtype);
  constexpr std::uint64_t kLimit = std::uint64_t{1} << 62;
  std::uint64_t expect = item;
  for (std::size_t i = 0; i < ndim; ++i) {
    shape[i] = get<std::uint64_t>(p + kFixedHeader + 8 * i);
    if (shape[i] != 0 && expect > kLimit / shape[i]) corrupt("the shape is too large");
    expect *= shape[i];
  }
  if (expect != raw) corrupt("the shape does not match the stored size");
  if (chunks != (raw + chunk - 1) / chunk) corrupt("chunk count does not match the size");
  // Each chunk takes at least its 4-byte tag, so a short input cannot claim a huge array.
  if (chunks > (size - pos) / 4) corrupt("more chunks than bytes");

  Tensor t = Tensor::allocate(dtype, shape);
  const ShuffleScratch shuffled(std::min<std::size_t>(raw, chunk));
  for (std::size_t off = 0; off < raw; off += chunk) {
    const std::size_t n = std::min<std::size_t>(chunk, raw - off);
    if (size - pos < 4) corrupt("chunk header truncated");
    const auto tag = get<std::uint32_t>(p + pos);
    pos += 4;
    const std::size_t stored = tag & ~kStoredRaw;
    if (stored > size - pos) corrupt("chunk of " + std::to_string(stored) + " bytes truncated");
    if (tag & kStoredRaw) {
      if (stored != n) corrupt("stored chunk has the wrong size");
      std::memcpy(t.mutable_data() + off, p + pos, n);
    } else {
      std::size_t got = 0;
      if (codec == Codec::Zstd) {
        const auto r = ZSTD_decompressDCtx(zstd().d, shuffled.data(), n, p + pos, stored);
        got = ZSTD_isError(r) ? 0 : r;
      } else {
        const int r = LZ4_decompress_safe(reinterpret_cast<const char*>(p + pos),
                                          reinterpret_cast<char*>(shuffled.data()),
                                          static_cast<int>(stored), static_cast<int>(n));
        got = r < 0 ? 0 : static_cast<std::size_t>(r);
      }
      if (got != n) corrupt("a chunk did not decompress to its size");
      kernels::unshuffle_bytes(shuffled.data(), t.mutable_data() + off, n / item, item);
    }
    pos += stored;
  }
  if (pos != size) corrupt(std::to_string(size - pos) + " bytes left over after the last chunk");
  return t;
}

}  // namespace twinstream::ops
