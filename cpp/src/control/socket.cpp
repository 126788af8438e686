#include "control/socket.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "twinstream/errors.hpp"

namespace twinstream::net {

Deadline deadline_after(double seconds) {
  if (seconds < 0) return Deadline::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(std::min(seconds, 1e9)));
}

int poll_timeout_ms(Deadline d) {
  if (d == Deadline::max()) return -1;
  const auto now = Clock::now();
  if (d <= now) return 0;
  // Round up so that a wait never ends just before its deadline.
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d - now).count();
  return static_cast<int>(std::min<long long>(ms, INT_MAX));
}

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string errno_text(int err) { return std::strerror(err); }

std::string format_address(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {
addrinfo* resolve(const std::string& host, std::uint16_t port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* res = nullptr;
  const auto service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    throw ConnectionError("cannot resolve '" + host + "': " + gai_strerror(rc) +
                          "; check the host option or the contact file");
  }
  return res;
}
}  // namespace

void set_nonblocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK));
}

void tune_stream_socket(int fd, bool large_buffers) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (large_buffers) {
    // 4 MiB keeps a loopback or 100 Gb/s link busy; the kernel caps it at rmem_max.
    int size = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
}

Fd listen_tcp(const std::string& host, std::uint16_t port, std::uint16_t* bound_port) {
  addrinfo* res = resolve(host, port, true);
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) continue;
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), 128) != 0) {
      last_error = errno_text(errno);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    *bound_port = ntohs(ss.ss_family == AF_INET6
                            ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                            : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    ::freeaddrinfo(res);
    return fd;
  }
  ::freeaddrinfo(res);
  throw ConnectionError("cannot listen on " + format_address(host, port) + ": " +
                        last_error + "; pick another host/port option");
}

Fd connect_tcp(const std::string& host, std::uint16_t port, Deadline deadline) {
  addrinfo* res = resolve(host, port, false);
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) continue;
    set_nonblocking(fd.get(), true);
    int rc = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd.get(), POLLOUT, 0};
      rc = ::poll(&p, 1, poll_timeout_ms(deadline));
      if (rc == 0) {
        last_error = "timed out";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last_error = errno_text(errno);
      continue;
    }
    set_nonblocking(fd.get(), false);
    ::freeaddrinfo(res);
    return fd;
  }
  ::freeaddrinfo(res);
  throw ConnectionError("cannot connect to " + format_address(host, port) + ": " +
                        last_error);
}

IoStatus wait_readable(int fd, Deadline deadline) {
  while (true) {
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (rc > 0) return (p.revents & POLLIN) ? IoStatus::Ok : IoStatus::Closed;
    if (rc == 0) return IoStatus::Timeout;
    if (errno != EINTR) return IoStatus::Closed;
  }
}

namespace {
IoStatus wait_writable(int fd, Deadline deadline) {
  while (true) {
    pollfd p{fd, POLLOUT, 0};
    const int rc = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (rc > 0) return (p.revents & POLLOUT) ? IoStatus::Ok : IoStatus::Closed;
    if (rc == 0) return IoStatus::Timeout;
    if (errno != EINTR) return IoStatus::Closed;
  }
}

// Drops `n` consumed bytes from the front of an iovec array.
void advance(iovec*& iov, std::size_t& cnt, std::size_t n) {
  while (cnt > 0 && n >= iov->iov_len) {
    n -= iov->iov_len;
    ++iov;
    --cnt;
  }
  if (cnt > 0) {
    iov->iov_base = static_cast<char*>(iov->iov_base) + n;
    iov->iov_len -= n;
  }
}
}  // namespace

IoStatus sendv_all(int fd, iovec* iov, std::size_t cnt, Deadline deadline) {
  while (cnt > 0 && iov->iov_len == 0) {
    ++iov;
    --cnt;
  }
  while (cnt > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = std::min<std::size_t>(cnt, IOV_MAX);
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      advance(iov, cnt, static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      const auto st = wait_writable(fd, deadline);
      if (st != IoStatus::Ok) return st;
      continue;
    }
    return IoStatus::Closed;
  }
  return IoStatus::Ok;
}

IoStatus send_all(int fd, std::span<const std::byte> data, Deadline deadline) {
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  return sendv_all(fd, &iov, 1, deadline);
}

IoStatus recvv_all(int fd, iovec* iov, std::size_t cnt, Deadline deadline) {
  while (cnt > 0 && iov->iov_len == 0) {
    ++iov;
    --cnt;
  }
  while (cnt > 0) {
    // Read first (non-blocking, whatever the socket's mode): when the bytes are already
    // there this saves the poll, and a blocking socket never blocks past the deadline.
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = std::min<std::size_t>(cnt, IOV_MAX);
    const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n > 0) {
      advance(iov, cnt, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return IoStatus::Closed;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return IoStatus::Closed;
    // Closed here means hang-up or error with nothing left to read (POLLIN would be set
    // if bytes were still queued).
    const auto st = wait_readable(fd, deadline);
    if (st != IoStatus::Ok) return st;
  }
  return IoStatus::Ok;
}

IoStatus recv_exact(int fd, std::span<std::byte> out, Deadline deadline) {
  iovec iov{out.data(), out.size()};
  return recvv_all(fd, &iov, 1, deadline);
}

bool spin_until_readable(int fd, std::chrono::microseconds budget) {
  const auto until = Clock::now() + budget;
  do {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) return true;
  } while (Clock::now() < until);
  return false;
}

const std::string& host_id() {
  static const std::string id = [] {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    std::string boot;
    std::ifstream f("/proc/sys/kernel/random/boot_id");
    std::getline(f, boot);
    return std::string(name) + "/" + boot;
  }();
  return id;
}

}  // namespace twinstream::net
