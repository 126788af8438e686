#pragma once
// Reader-side buffers for pulled data, reused step after step. A fresh 64 MiB buffer per
// step costs a page fault per 4 KiB (more than the copy itself); a pooled one is warm.
// Buffers go back to the pool when the last view of them is dropped, even after the
// reader itself is gone.
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

namespace twinstream {

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  /// At least `bytes` bytes, 64-byte aligned, owned by the returned pointer.
  std::shared_ptr<std::byte> acquire(std::size_t bytes);
  ~BufferPool();

 private:
  void give_back(std::byte* p, std::size_t capacity);
  std::mutex mu_;
  std::multimap<std::size_t, std::byte*> free_;  // capacity -> buffer
  std::size_t free_bytes_ = 0;
};

}  // namespace twinstream
