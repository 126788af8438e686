#pragma once
// Framed messages over a socket: a blocking reader with a deadline (reader side) and an
// incremental assembler for the writer's poll loop, where one slow or hostile peer must
// never stall the others.
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "control/socket.hpp"
#include "core/wire.hpp"

namespace twinstream::net {

struct Frame {
  wire::FrameHeader header;
  std::vector<std::byte> payload;
};

/// Reads one whole frame before the deadline. Throws ProtocolError on a bad header.
IoStatus read_frame(int fd, Frame& out, Deadline deadline);

/// Collects bytes from a non-blocking socket and cuts them into frames.
class FrameAssembler {
 public:
  /// Reads what the socket has. False when the peer closed or the socket failed.
  bool fill(int fd);
  /// The next complete frame, if any. Throws ProtocolError on a bad header.
  std::optional<Frame> next();
  /// Bytes received but not yet returned as frames.
  std::size_t buffered() const { return end_ - begin_; }
  /// Complete frames waiting to be returned. Throws ProtocolError on a bad header.
  std::size_t frames_ready() const;
  /// Room for `n` more bytes from another source (the control ring), then `commit(n)`.
  std::span<std::byte> space(std::size_t n);
  void commit(std::size_t n) { end_ += n; }

 private:
  // Bytes [begin_, end_) of buf_ are unread; buf_ only grows (no per-read zeroing).
  std::vector<std::byte> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace twinstream::net
