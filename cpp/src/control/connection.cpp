#include "control/connection.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>

namespace twinstream::net {

IoStatus read_frame(int fd, Frame& out, Deadline deadline) {
  std::byte header[wire::kHeaderSize];
  auto st = recv_exact(fd, header, deadline);
  if (st != IoStatus::Ok) return st;
  out.header = wire::decode_header(header);
  out.payload.resize(out.header.length);
  return recv_exact(fd, out.payload, deadline);
}

std::span<std::byte> FrameAssembler::space(std::size_t n) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (buf_.size() - end_ < n) {
    if (begin_ > 0) {  // compact before growing
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < n) buf_.resize(end_ + n);
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

bool FrameAssembler::fill(int fd) {
  constexpr std::size_t kChunk = 64 * 1024;
  while (true) {
    const auto room = space(kChunk);
    const ssize_t n = ::recv(fd, room.data(), room.size(), MSG_DONTWAIT);
    if (n > 0) {
      commit(static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < room.size()) return true;  // drained what the socket had
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

std::size_t FrameAssembler::frames_ready() const {
  std::size_t n = 0;
  for (std::size_t at = begin_; end_ - at >= wire::kHeaderSize; ++n) {
    const auto header = wire::decode_header({buf_.data() + at, wire::kHeaderSize});
    if (end_ - at < wire::kHeaderSize + header.length) break;
    at += wire::kHeaderSize + header.length;
  }
  return n;
}

std::optional<Frame> FrameAssembler::next() {
  const std::size_t avail = end_ - begin_;
  if (avail < wire::kHeaderSize) return std::nullopt;
  const auto header = wire::decode_header({buf_.data() + begin_, wire::kHeaderSize});
  if (avail < wire::kHeaderSize + header.length) return std::nullopt;
  Frame f;
  f.header = header;
  const auto* first = buf_.data() + begin_ + wire::kHeaderSize;
  f.payload.assign(first, first + header.length);
  begin_ += wire::kHeaderSize + header.length;
  return f;
}

}  // namespace twinstream::net
