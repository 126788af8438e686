#pragma once
/// Operators that move elements without computing on them: subsample (strided slices)
/// and patches (tiles as a batch). They copy rows with memcpy where rows are contiguous and
/// element by element otherwise; the caller validates the parameters (pipeline.cpp).
#include <cstddef>

#include "ops/tensor.hpp"

namespace twinstream::ops {

/// Shape of x[::s0, ::s1, ...] (missing strides are 1).
Dims subsample_shape(const Dims& shape, const Dims& strides);
/// Writes x[::s0, ::s1, ...] of `in` to `out` (C order, subsample_shape elements).
void subsample_copy(const TensorView& in, const Dims& strides, std::byte* out);

/// Number of tiles along each patched axis: (shape[i] - size[i]) / stride[i] + 1.
Dims patch_grid(const Dims& shape, const Dims& size, const Dims& stride);
/// Shape of the batch: (n_patches, *size, *shape[len(size):]).
Dims patches_shape(const Dims& shape, const Dims& size, const Dims& stride);
/// Writes the tiles of `in`, row-major over the tile grid, to `out`.
void patches_copy(const TensorView& in, const Dims& size, const Dims& stride, std::byte* out);

}  // namespace twinstream::ops
