#include "core/page_memory.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

namespace twinstream {

std::byte* allocate_pages(std::size_t size) {
  const std::size_t align = size >= kHugePage ? kHugePage : 4096;
  const std::size_t rounded = (size + align - 1) & ~(align - 1);  // aligned_alloc wants this
  auto* p = static_cast<std::byte*>(std::aligned_alloc(align, rounded == 0 ? align : rounded));
  if (!p) throw std::bad_alloc();
  // Advice only: where transparent huge pages are off (or "never") this changes nothing.
  if (align == kHugePage) ::madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

void free_pages(std::byte* p) { std::free(p); }

}  // namespace twinstream
