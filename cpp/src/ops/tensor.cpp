#include "ops/tensor.hpp"

#include <new>

namespace twinstream::ops {
namespace {
std::shared_ptr<std::byte> aligned_bytes(std::size_t n) {
  constexpr std::align_val_t kAlign{64};
  auto* p = static_cast<std::byte*>(::operator new(n == 0 ? 1 : n, kAlign));
  return {p, [](std::byte* q) { ::operator delete(q, kAlign); }};
}
}  // namespace

Tensor Tensor::allocate(DType dtype, Dims shape) {
  Tensor t;
  t.dtype = dtype;
  t.bytes = static_cast<std::size_t>(element_count(shape)) * dtype_size(dtype);
  t.shape = std::move(shape);
  t.storage = aligned_bytes(t.bytes);
  t.data = t.storage.get();
  return t;
}

Tensor Tensor::allocate_bytes(std::size_t bytes) { return allocate(DType::UInt8, Dims{bytes}); }

}  // namespace twinstream::ops
