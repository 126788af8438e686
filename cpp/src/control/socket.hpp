#pragma once
// Thin RAII over POSIX TCP sockets with deadlines. Every blocking call takes a deadline
// and polls; nothing here sleeps.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <sys/uio.h>

namespace twinstream::net {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

/// A deadline `seconds` from now; negative means never.
Deadline deadline_after(double seconds);
/// Milliseconds until `d` for poll(): -1 for never, 0 if passed.
int poll_timeout_ms(Deadline d);

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset();

 private:
  int fd_ = -1;
};

/// Listens on host:port (port 0: any free port). Throws Error with the address.
Fd listen_tcp(const std::string& host, std::uint16_t port, std::uint16_t* bound_port);
/// Connects with a deadline. Throws ConnectionError naming the address.
Fd connect_tcp(const std::string& host, std::uint16_t port, Deadline deadline);
/// TCP_NODELAY, large buffers, close-on-exec.
void tune_stream_socket(int fd, bool large_buffers);
void set_nonblocking(int fd, bool on);

/// Outcome of a bounded wait.
enum class IoStatus { Ok, Timeout, Closed };

/// Sends everything (blocking socket or not) before the deadline.
IoStatus send_all(int fd, std::span<const std::byte> data, Deadline deadline);
/// Scatter-gather send of every iovec (modified in place), MSG_NOSIGNAL.
IoStatus sendv_all(int fd, iovec* iov, std::size_t iovcnt, Deadline deadline);
/// Receives exactly `out.size()` bytes.
IoStatus recv_exact(int fd, std::span<std::byte> out, Deadline deadline);
/// Scatter receive of every iovec (modified in place).
IoStatus recvv_all(int fd, iovec* iov, std::size_t iovcnt, Deadline deadline);
/// Busy-polls fd for up to `budget`; true when it became readable. For waits expected to
/// be shorter than a scheduler wake-up (a pull's reply on a fast link).
bool spin_until_readable(int fd, std::chrono::microseconds budget);
/// Waits until fd is readable. Ok, Timeout, or Closed (error/hang-up).
IoStatus wait_readable(int fd, Deadline deadline);

/// "host:port", with IPv6 hosts in brackets ("[::1]:5000").
std::string format_address(const std::string& host, std::uint16_t port);
/// "hostname/boot-id": equal on two processes of one host (one kernel).
const std::string& host_id();
/// Text of errno for messages.
std::string errno_text(int err);

}  // namespace twinstream::net
