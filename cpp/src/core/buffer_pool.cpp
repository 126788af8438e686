#include "core/buffer_pool.hpp"

#include "core/page_memory.hpp"

#include <bit>
#include <cstdlib>
#include <new>

namespace twinstream {
namespace {
// Keep at most this much idle memory; beyond it buffers are freed.
constexpr std::size_t kMaxIdleBytes = std::size_t{512} << 20;
}  // namespace

std::shared_ptr<std::byte> BufferPool::acquire(std::size_t bytes) {
  const std::size_t capacity = std::bit_ceil(std::max<std::size_t>(bytes, 4096));
  std::byte* p = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = free_.find(capacity);
    if (it != free_.end()) {
      p = it->second;
      free_.erase(it);
      free_bytes_ -= capacity;
    }
  }
  if (!p) {
    p = allocate_pages(capacity);
  }
  std::weak_ptr<BufferPool> pool = weak_from_this();
  return std::shared_ptr<std::byte>(p, [pool, capacity](std::byte* b) {
    if (auto owner = pool.lock()) {
      owner->give_back(b, capacity);
    } else {
      free_pages(b);
    }
  });
}

void BufferPool::give_back(std::byte* p, std::size_t capacity) {
  std::lock_guard lock(mu_);
  if (free_bytes_ + capacity > kMaxIdleBytes) {
    free_pages(p);
    return;
  }
  free_.emplace(capacity, p);
  free_bytes_ += capacity;
}

BufferPool::~BufferPool() {
  for (auto& [cap, p] : free_) free_pages(p);
}

}  // namespace twinstream
