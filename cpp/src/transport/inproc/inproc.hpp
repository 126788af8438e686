#pragma once
// Process-wide table of writers, so that a reader in the writer's own process reads the
// step memory directly (no mapping, no copy).
#include <cstdint>
#include <memory>

#include "core/segment.hpp"

namespace twinstream::transport::inproc {

void register_writer(std::uint64_t writer_key, std::weak_ptr<SegmentDirectory> segments);
void unregister_writer(std::uint64_t writer_key);

}  // namespace twinstream::transport::inproc
