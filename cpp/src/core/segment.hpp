#pragma once
// Writer memory for step bytes. A Slot is the memory of one step in flight: a bump
// allocator over one or more Segments, reused step after step so that steady state
// allocates nothing. Segments live in shared memory when the writer serves same-host
// readers, on the heap otherwise.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "transport/shm/shared_memory.hpp"

namespace twinstream {

/// Offsets inside a segment are multiples of this (cache line; SIMD friendly).
inline constexpr std::size_t kAlignment = 64;

class Segment {
 public:
  /// Shared memory named from `shm_prefix` when it is not empty, else heap memory.
  Segment(std::uint32_t id, std::size_t size, const std::string& shm_prefix);
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  std::uint32_t id() const { return id_; }
  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::uint32_t id_;
  std::size_t size_;
  std::byte* data_ = nullptr;
  shm::SharedMemory shm_;
};

/// Segments by id, shared with the parts that read them outside the writer thread (tcp
/// servers, in-process readers).
class SegmentDirectory {
 public:
  void add(const std::shared_ptr<Segment>& s);
  void remove(std::uint32_t id);
  std::shared_ptr<Segment> find(std::uint32_t id) const;
  /// Every segment now (a plane opened late registers these).
  std::vector<std::shared_ptr<Segment>> all() const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::map<std::uint32_t, std::shared_ptr<Segment>> segments_;
};

struct Allocation {
  std::uint32_t segment = 0;
  std::uint64_t offset = 0;
  std::byte* data = nullptr;
};

class Slot {
 public:
  using NewSegment = std::function<std::shared_ptr<Segment>(std::size_t min_size)>;

  /// Prepares for a new step. If the last step overflowed into several segments, they
  /// are replaced by one big enough for all (their ids go to `retired`).
  void reset(const NewSegment& make, std::vector<std::uint32_t>& retired);
  /// `bytes` of step memory, 64-byte aligned; grows with a new segment if needed.
  Allocation allocate(std::size_t bytes, const NewSegment& make);
  const std::vector<std::shared_ptr<Segment>>& segments() const { return segments_; }
  std::size_t used() const { return used_total_; }

 private:
  std::vector<std::shared_ptr<Segment>> segments_;
  std::vector<std::size_t> used_;  // bytes used per segment in the current step
  std::size_t used_total_ = 0;
};

}  // namespace twinstream
