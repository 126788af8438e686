// Reader side of the shm plane: map the writer's segments read-only, once, and hand out
// pointers into them. The writer never reuses a step's memory before this reader's ack,
// so a view is stable for the whole step.
#include <cstring>
#include <map>

#include "transport/registry.hpp"
#include "transport/shm/shared_memory.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::transport {
namespace {
class ShmReader final : public DataPlaneReader {
 public:
  explicit ShmReader(const ReaderContext& ctx)
      : stream_(ctx.stream), prefix_(ctx.welcome.shm_prefix) {
    if (prefix_.empty()) {
      throw Unavailable("stream '" + ctx.stream +
                        "': the writer keeps no shared memory (opened with shm=False); use "
                        "data_plane='tcp'");
    }
  }
  std::string_view name() const override { return "shm"; }

  void on_step(const wire::StepMeta& step) override {
    for (auto id : step.retired) maps_.erase(id);
    for (const auto& s : step.segments) {
      auto it = maps_.find(s.id);
      if (it != maps_.end() && it->second->size() >= s.size) continue;
      maps_[s.id] = std::make_shared<shm::SharedMemory>(
          shm::SharedMemory::open_readonly(shm::segment_name(prefix_, s.id), s.size));
    }
  }

  std::shared_ptr<const std::byte> view(std::uint32_t segment, std::uint64_t offset,
                                        std::uint64_t) override {
    auto& m = mapping(segment);
    return {m, m->data() + offset};
  }

  void read(std::uint64_t, std::span<const Copy> copies) override {
    for (const auto& c : copies) std::memcpy(c.dst, mapping(c.segment)->data() + c.offset, c.length);
  }

 private:
  std::shared_ptr<shm::SharedMemory>& mapping(std::uint32_t id) {
    auto it = maps_.find(id);
    if (it == maps_.end()) {
      throw ProtocolError("stream '" + stream_ + "': segment " + std::to_string(id) +
                          " was not announced");
    }
    return it->second;
  }
  std::string stream_;
  std::string prefix_;
  std::map<std::uint32_t, std::shared_ptr<shm::SharedMemory>> maps_;
};
}  // namespace

Entry shm_entry() {
  return {"shm", true, "",
          [](const ReaderContext& ctx) -> std::unique_ptr<DataPlaneReader> {
            return std::make_unique<ShmReader>(ctx);
          }};
}

}  // namespace twinstream::transport
