#pragma once
// The same-host control path: two single-producer, single-consumer byte rings in one
// shared-memory object, next to the TCP control connection.
//
//   down: writer -> reader, every frame after the handshake (announcements, heartbeats,
//         the end of the stream);
//   up:   reader -> writer, acknowledgements.
//
// Over loopback TCP each announcement and each acknowledgement costs a send, a receive and
// usually a wake-up on both sides: 20 µs of CPU a step on each side, measured, which on
// its own caps a stream of 1 MiB steps far below memory speed. Through the rings a step
// costs a few cache lines while both sides are busy.
//
// The TCP connection stays. It carries the handshake, says that the other side is gone
// (hang-up), and wakes a side that sleeps in poll(): a side about to sleep raises its
// "waiting" flag and looks once more; the other side, after writing, takes the flag and if
// it was up sends a Doorbell frame on the socket. Both use sequentially consistent
// operations, so at least one of them sees the other (no lost wake-up).
//
// The reader creates the object (mode 0600) and names it in its hello; the writer maps it
// and removes the name at once, so nothing is left behind whoever dies. Positions are
// untrusted: each side checks what the other wrote before using it.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "control/connection.hpp"
#include "transport/shm/shared_memory.hpp"

namespace twinstream::net {

/// Sends a Doorbell frame on `fd` (the control connection beside a ring) without waiting.
/// False only if the connection is gone: a socket too full to take it has unread bytes,
/// which wake the other side anyway.
bool send_doorbell(int fd);

class ControlRing {
 public:
  enum class Side { Writer, Reader };
  /// Bytes of each ring. Announcements are small; a bigger frame goes through in parts.
  static constexpr std::size_t kCapacity = 256 * 1024;

  /// Reader: a new object with a fresh name. Throws Error if shared memory is unusable.
  static ControlRing create();
  /// Writer: maps the reader's object and removes its name. Throws Error if it cannot
  /// (another host or container, another user, a bad name).
  static ControlRing attach(const std::string& name);

  ControlRing() = default;
  ControlRing(ControlRing&&) noexcept = default;
  ControlRing& operator=(ControlRing&&) noexcept = default;

  const std::string& name() const { return memory_->name(); }
  /// Removes the name (the reader, once the writer answered); the mapping stays.
  void unlink();

  // Sending side: this side's outgoing ring.
  /// Writes as much of `bytes` as fits; returns how much.
  std::size_t write_some(std::span<const std::byte> bytes);
  /// Writes all of `bytes` or nothing.
  bool write_all(std::span<const std::byte> bytes);
  /// After writing: whether the other side sleeps and asked to be rung (once per sleep).
  bool take_peer_waiting();
  /// Whether the other side asked to be rung, without taking the request.
  bool peer_waiting() const;
  /// No room for what is left: ask to be rung when the other side frees some. False if
  /// room appeared meanwhile (the request is withdrawn: write again).
  bool wait_for_room();

  // Receiving side: this side's incoming ring.
  /// Moves everything received into `in`; returns the number of bytes.
  std::size_t read(FrameAssembler& in);
  /// Whether bytes are waiting to be read.
  bool readable() const;
  /// About to sleep: asks the other side to ring. False if bytes arrived meanwhile (the
  /// request is withdrawn: read again).
  bool wait_for_data();
  /// Asks the other side to ring when it writes next, or withdraws that.
  void want_doorbell(bool on);
  /// After reading: whether the other side waits for room (once per wait).
  bool take_peer_wants_room();

 private:
  struct Channel;
  struct Layout;
  // Free bytes in the outgoing ring, after checking the other side's read position.
  std::size_t room(std::memory_order order) const;
  ControlRing(std::shared_ptr<shm::SharedMemory> memory, Side side);
  Channel& out() const;
  Channel& in() const;
  std::byte* out_data() const;
  std::byte* in_data() const;

  // Shared by both sides when they are one process (an inproc reader): one mapping, so
  // that the atomics each side uses are the same addresses (what ThreadSanitizer, and
  // the C++ memory model as written, reason about).
  std::shared_ptr<shm::SharedMemory> memory_;
  Side side_ = Side::Reader;
  // This side's own positions, kept here: the copies in shared memory are the other
  // side's to read, never trusted back.
  std::uint64_t out_pos_ = 0;  // bytes written to the outgoing ring
  std::uint64_t in_pos_ = 0;   // bytes read from the incoming ring
};

}  // namespace twinstream::net
