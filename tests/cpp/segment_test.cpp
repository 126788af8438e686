// Step memory: slots reuse their segments, grow when a step outgrows them, and shared
// memory segments are visible read-only to another mapping and gone once released.
#include "core/segment.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

#include "transport/shm/shared_memory.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {
namespace {

struct Factory {
  std::string prefix;
  std::uint32_t next = 1;
  std::vector<std::size_t> sizes;
  Slot::NewSegment fn() {
    return [this](std::size_t n) {
      sizes.push_back(n);
      return std::make_shared<Segment>(next++, n, prefix);
    };
  }
};

TEST(Slot, AllocationsAreAlignedAndDisjoint) {
  Factory f;
  Slot slot;
  std::vector<std::uint32_t> retired;
  slot.reset(f.fn(), retired);
  std::vector<Allocation> all;
  const std::size_t sizes[] = {10, 100, 64, 1, 5000};
  for (auto n : sizes) all.push_back(slot.allocate(n, f.fn()));
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].offset % kAlignment, 0u);
    for (std::size_t j = 0; j < i; ++j) {
      if (all[i].segment != all[j].segment) continue;
      const bool apart = all[i].offset >= all[j].offset + sizes[j] ||
                         all[j].offset >= all[i].offset + sizes[i];
      EXPECT_TRUE(apart) << "allocations " << j << " and " << i << " overlap";
    }
  }
}

TEST(Slot, SteadyStateAllocatesNothing) {
  Factory f;
  Slot slot;
  std::vector<std::uint32_t> retired;
  auto one_step = [&] {
    slot.reset(f.fn(), retired);
    slot.allocate(1000, f.fn());
    slot.allocate(2000, f.fn());
  };
  one_step();  // grows: the second block does not fit the first segment
  one_step();  // consolidates into one segment that holds both
  const auto segments_made = f.sizes.size();
  const auto retired_so_far = retired.size();
  for (int step = 0; step < 5; ++step) one_step();
  EXPECT_EQ(f.sizes.size(), segments_made);
  EXPECT_EQ(retired.size(), retired_so_far);
  EXPECT_EQ(slot.segments().size(), 1u);
}

TEST(Slot, OverflowIsConsolidatedAtTheNextStep) {
  Factory f;
  Slot slot;
  std::vector<std::uint32_t> retired;
  slot.reset(f.fn(), retired);
  slot.allocate(1000, f.fn());
  slot.allocate(1 << 20, f.fn());  // does not fit the first segment
  ASSERT_EQ(slot.segments().size(), 2u);
  slot.reset(f.fn(), retired);
  EXPECT_EQ(slot.segments().size(), 1u);
  EXPECT_EQ(retired.size(), 2u);
  EXPECT_GE(slot.segments()[0]->size(), std::size_t{1000} + (1 << 20));
}

TEST(SharedMemory, ReaderSeesWriterBytesAndNameIsRemovedOnRelease) {
  const std::string prefix = "twinstream-test-" + std::to_string(::getpid());
  std::string name;
  {
    Segment seg(7, 1 << 16, prefix);
    std::memcpy(seg.data(), "hello", 5);
    name = shm::segment_name(prefix, 7);
    auto view = shm::SharedMemory::open_readonly(name, 1 << 16);
    EXPECT_EQ(std::memcmp(view.data(), "hello", 5), 0);
  }
  EXPECT_THROW(shm::SharedMemory::open_readonly(name, 1 << 16), Unavailable);
}

TEST(SharedMemory, ShouldRejectMappingLargerThanTheObject) {
  const std::string prefix = "twinstream-test2-" + std::to_string(::getpid());
  Segment seg(1, 4096, prefix);
  EXPECT_THROW(shm::SharedMemory::open_readonly(shm::segment_name(prefix, 1), 1 << 20),
               Unavailable);
}

TEST(SharedMemory, StaleObjectsOfADeadWriterAreRemovedByPrefix) {
  const std::string prefix = "twinstream-test3-" + std::to_string(::getpid());
  auto a = shm::SharedMemory::create(shm::segment_name(prefix, 1), 4096);
  auto b = shm::SharedMemory::create(shm::segment_name(prefix, 2), 4096);
  shm::unlink_all_with_prefix(prefix);
  EXPECT_THROW(shm::SharedMemory::open_readonly(shm::segment_name(prefix, 1), 4096), Unavailable);
  EXPECT_THROW(shm::SharedMemory::open_readonly(shm::segment_name(prefix, 2), 4096), Unavailable);
}

}  // namespace
}  // namespace twinstream
