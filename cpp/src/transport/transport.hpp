#pragma once
// The data-plane interface: small and byte-oriented. Step metadata, acknowledgements and
// group membership travel on the control connection; a data plane only moves the bytes
// of steps a reader holds. Typed views live above this layer.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/contact.hpp"
#include "core/messages.hpp"

namespace twinstream::transport {

/// One piece of a read: `length` bytes at `offset` of writer segment `segment` go to `dst`.
struct Copy {
  std::uint32_t segment = 0;
  std::uint64_t offset = 0;
  std::byte* dst = nullptr;
  std::uint64_t length = 0;
};

/// What a reader resolved for its plane before joining (fabric: the provider).
struct PlaneChoice {
  std::string option;    // sent in the hello (fabric: provider name)
  std::string detail;    // for stats (fabric: "provider tcp")
  std::string fallback;  // why an `auto` choice is not the first preference; empty if it is
};

/// What a reader-side plane needs to reach the writer.
struct ReaderContext {
  std::string stream;
  Contact contact;
  wire::Welcome welcome;
  double io_timeout = 10.0;  // seconds a single read may take before ConnectionError
  PlaneChoice choice{};
  int control_fd = -1;  // the reader's control connection: its hang-up means the writer left
};

/// Reader side of a data plane. Used by one thread (the reader's).
class DataPlaneReader {
 public:
  virtual ~DataPlaneReader() = default;
  virtual std::string_view name() const = 0;
  /// Called when a step is begun: map new segments, drop retired ones.
  virtual void on_step(const wire::StepMeta& step) = 0;
  /// Zero-copy access to bytes of a held step, owning the mapping; nullptr when this plane
  /// must copy (tcp).
  virtual std::shared_ptr<const std::byte> view(std::uint32_t segment, std::uint64_t offset,
                                                std::uint64_t length) = 0;
  /// Copies the pieces of held step `step` to their destinations.
  virtual void read(std::uint64_t step, std::span<const Copy> copies) = 0;
  /// Whether reads can run in the background (start_read returns before the bytes land):
  /// the reader then reads the next announced step ahead (core/read_ahead.hpp).
  virtual bool reads_in_background() const { return false; }
  /// Starts copying pieces of `step`, held or announced and not yet acknowledged; they
  /// have landed once finish_read(ticket) returns, which must happen before that step's
  /// acknowledgement. Planes without background reads copy here and return 0.
  virtual std::uint64_t start_read(std::uint64_t step, std::span<const Copy> copies) {
    read(step, copies);
    return 0;
  }
  virtual void finish_read(std::uint64_t /*ticket*/) {}
  /// Called once the writer's end of stream has arrived (no step is held, none will come):
  /// a plane releases here what it holds together with the writer, while the writer still
  /// waits for it (the mpi plane's window).
  virtual void on_end() {}
};

}  // namespace twinstream::transport
