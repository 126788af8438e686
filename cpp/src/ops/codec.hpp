#pragma once
/// Lossless compression of one array: byte shuffle (SIMD) then zstd or lz4, in chunks of
/// 1 MiB so that the shuffled chunk is still in cache when the codec reads it. The output
/// describes itself (dtype, shape, codec), so decompress needs nothing else.
///
/// Layout (little-endian): "TSC1", codec u8, dtype u8, ndim u8, 0 u8, raw bytes u64,
/// chunk bytes u32, chunk count u32, shape u64 x ndim, then per chunk a u32 stored size
/// (top bit set: stored uncompressed, because the codec did not shrink it) and the bytes.
#include <cstddef>

#include "ops/op_spec.hpp"
#include "ops/tensor.hpp"

namespace twinstream::ops {

/// Compresses `in`; level as in CompressOp (zstd 1-19; lz4 0 = fast, 1-12 = HC).
Tensor compress(const TensorView& in, Codec codec, int level);
/// Restores the array compress() was given. Every length is checked before use: corrupt
/// or truncated input throws InvalidArgument saying what is wrong, never reads past
/// `size` bytes.
Tensor decompress(const void* data, std::size_t size);

/// Chunk size of the layout above.
inline constexpr std::size_t kCompressChunk = 1u << 20;

}  // namespace twinstream::ops
