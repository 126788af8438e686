#include "control/connection.hpp"

#include <cerrno>
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

bool FrameAssembler::fill(int fd) {
  // Compact before growing so a long-lived connection does not creep.
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  while (true) {
    const std::size_t old = buf_.size();
    buf_.resize(old + 64 * 1024);
    const ssize_t n = ::recv(fd, buf_.data() + old, 64 * 1024, MSG_DONTWAIT);
    if (n > 0) {
      buf_.resize(old + static_cast<std::size_t>(n));
      if (n < 64 * 1024) return true;
      continue;
    }
    buf_.resize(old);
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

std::optional<Frame> FrameAssembler::next() {
  const std::size_t avail = buf_.size() - pos_;
  if (avail < wire::kHeaderSize) return std::nullopt;
  const auto header = wire::decode_header({buf_.data() + pos_, wire::kHeaderSize});
  if (avail < wire::kHeaderSize + header.length) return std::nullopt;
  Frame f;
  f.header = header;
  const auto* begin = buf_.data() + pos_ + wire::kHeaderSize;
  f.payload.assign(begin, begin + header.length);
  pos_ += wire::kHeaderSize + header.length;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  return f;
}

}  // namespace twinstream::net
