#include "transport/inproc/inproc.hpp"

#include <cstring>
#include <map>
#include <mutex>

#include "transport/registry.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::transport {
namespace inproc {
namespace {
std::mutex& table_mutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::uint64_t, std::weak_ptr<SegmentDirectory>>& table() {
  static std::map<std::uint64_t, std::weak_ptr<SegmentDirectory>> t;
  return t;
}
}  // namespace

void register_writer(std::uint64_t key, std::weak_ptr<SegmentDirectory> segments) {
  std::lock_guard lock(table_mutex());
  table()[key] = std::move(segments);
}
void unregister_writer(std::uint64_t key) {
  std::lock_guard lock(table_mutex());
  table().erase(key);
}

namespace {
class InprocReader final : public DataPlaneReader {
 public:
  explicit InprocReader(const ReaderContext& ctx) : stream_(ctx.stream) {
    std::lock_guard lock(table_mutex());
    auto it = table().find(ctx.welcome.writer_key);
    if (it != table().end()) directory_ = it->second.lock();
    if (!directory_) {
      throw Unavailable("stream '" + ctx.stream +
                        "': the writer is not in this process; use data_plane='shm' or 'tcp'");
    }
  }
  std::string_view name() const override { return "inproc"; }
  void on_step(const wire::StepMeta&) override {}

  std::shared_ptr<const std::byte> view(std::uint32_t segment, std::uint64_t offset,
                                        std::uint64_t) override {
    auto seg = lookup(segment);
    // Aliasing pointer: shares ownership of the segment, points at the bytes.
    return {seg, seg->data() + offset};
  }

  void read(std::uint64_t, std::span<const Copy> copies) override {
    for (const auto& c : copies) {
      auto seg = lookup(c.segment);
      std::memcpy(c.dst, seg->data() + c.offset, c.length);
    }
  }

 private:
  std::shared_ptr<Segment> lookup(std::uint32_t id) {
    auto seg = directory_->find(id);
    if (!seg) {
      throw ConnectionError("stream '" + stream_ + "': segment " + std::to_string(id) +
                            " is gone from the writer (writer closed?)");
    }
    return seg;
  }
  std::string stream_;
  std::shared_ptr<SegmentDirectory> directory_;
};
}  // namespace
}  // namespace inproc

Entry inproc_entry() {
  return {"inproc", true, "",
          [](const ReaderContext& ctx) -> std::unique_ptr<DataPlaneReader> {
            return std::make_unique<inproc::InprocReader>(ctx);
          }};
}

}  // namespace twinstream::transport
