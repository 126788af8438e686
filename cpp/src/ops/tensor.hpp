#pragma once
/// The arrays operators pass along a pipeline: a dtype, a shape and bytes that are either
/// owned (64-byte aligned, shared so that a cached result is handed out without a copy)
/// or a view of the caller's input.
#include <cstddef>
#include <memory>

#include "twinstream/dtype.hpp"
#include "twinstream/selection.hpp"

namespace twinstream::ops {

/// Read-only input: the caller keeps `data` alive for the call.
struct TensorView {
  DType dtype = DType::Float32;
  Dims shape;
  const void* data = nullptr;
};

/// An operator's output.
struct Tensor {
  DType dtype = DType::Float32;
  Dims shape;
  std::shared_ptr<std::byte> storage;  ///< null when `data` views the pipeline's input
  const std::byte* data = nullptr;
  std::size_t bytes = 0;

  /// Allocates an owned, uninitialised, 64-byte aligned tensor.
  static Tensor allocate(DType dtype, Dims shape);
  /// An owned tensor of `bytes` raw bytes (compressed blocks), shape {bytes}, uint8.
  static Tensor allocate_bytes(std::size_t bytes);
  bool owned() const { return storage != nullptr; }
  std::byte* mutable_data() const { return storage.get(); }
  TensorView view() const { return {dtype, shape, data}; }
};

}  // namespace twinstream::ops
