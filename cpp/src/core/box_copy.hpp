#pragma once
// Contiguous runs to move a region between two C-order arrays. Every data plane uses it:
// shm/inproc turn runs into memcpy, tcp into ranges to pull and readv destinations.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "twinstream/selection.hpp"

namespace twinstream {

/// Calls emit(src_byte_offset, dst_byte_offset, nbytes) for each run that copies
/// `region` (global coordinates, inside both) from array `src` to array `dst`, both
/// described by their box in global coordinates. Adjacent rows are merged into one run
/// whenever the region spans whole rows of both arrays.
template <typename Emit>
void for_each_run(const Box& src, const Box& dst, const Box& region, std::size_t elem,
                  Emit&& emit) {
  const std::size_t rank = region.count.size();
  for (auto c : region.count) {
    if (c == 0) return;
  }
  if (rank == 0) {
    emit(std::uint64_t{0}, std::uint64_t{0}, static_cast<std::uint64_t>(elem));
    return;
  }
  // Strides in elements.
  std::vector<std::uint64_t> ss(rank, 1), ds(rank, 1);
  for (std::size_t d = rank - 1; d > 0; --d) {
    ss[d - 1] = ss[d] * src.count[d];
    ds[d - 1] = ds[d] * dst.count[d];
  }
  // Collapse trailing axes the region covers entirely in both arrays.
  std::size_t k = rank - 1;
  std::uint64_t run = region.count[k];
  while (k > 0 && region.count[k] == src.count[k] && region.count[k] == dst.count[k]) {
    --k;
    run *= region.count[k];
  }
  std::uint64_t src_base = 0, dst_base = 0;
  for (std::size_t d = 0; d < rank; ++d) {
    src_base += (region.start[d] - src.start[d]) * ss[d];
    dst_base += (region.start[d] - dst.start[d]) * ds[d];
  }
  // Odometer over axes [0, k).
  std::vector<std::uint64_t> idx(k, 0);
  const std::uint64_t run_bytes = run * elem;
  while (true) {
    std::uint64_t so = src_base, doff = dst_base;
    for (std::size_t d = 0; d < k; ++d) {
      so += idx[d] * ss[d];
      doff += idx[d] * ds[d];
    }
    emit(so * elem, doff * elem, run_bytes);
    std::size_t d = k;
    while (d > 0) {
      --d;
      if (++idx[d] < region.count[d]) break;
      idx[d] = 0;
      if (d == 0) return;
    }
    if (k == 0) return;
  }
}

}  // namespace twinstream
