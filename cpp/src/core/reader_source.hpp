#pragma once
// One writer process as a reader sees it: the control connection, the data plane, the step
// being read. A writer job (core/writer_job.hpp) has one source per rank; it plans reads
// and asks each source to pull its part.
// Used by one thread (the reader's); every wait bounded.
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/connection.hpp"
#include "control/control_ring.hpp"
#include "core/buffer_pool.hpp"
#include "core/contact.hpp"
#include "core/read_ahead.hpp"
#include "transport/transport.hpp"
#include "twinstream/reader.hpp"

namespace twinstream {

class ReaderSource {
 public:
  /// Connects to the writer of contact file `path`. With `wait`, waits (until `deadline`)
  /// for the file to appear or a stale one to be replaced; without, a missing or stale
  /// file is a ConnectionError at once (a fan-in member that already ended or died).
  /// `choice`: the reader's data-plane option, resolved on this host beforehand
  /// (transport::resolve_reader_plane).
  ReaderSource(std::string stream, std::string member, std::uint32_t rank, std::string path,
               const ReaderOptions& opt, transport::PlaneChoice choice,
               std::shared_ptr<BufferPool> buffers, net::Deadline deadline, bool wait);
  ~ReaderSource() { close(); }

  /// Ok, NotReady at the deadline, or EndOfStream. Throws ConnectionError when the writer
  /// died, hung or hung up.
  StepStatus begin_step(net::Deadline deadline);
  /// Zero-copy access to bytes of the held step: mapped (shm, inproc) or read ahead
  /// (preload); nullptr where the plane must copy.
  std::shared_ptr<const std::byte> view(std::uint32_t segment, std::uint64_t offset,
                                        std::uint64_t length);
  /// Copies pieces of the held step to their destinations.
  void pull(std::span<const transport::Copy> copies);
  void end_step();
  void close();

  /// The control connection (to poll several sources at once) and whether frames are
  /// already buffered from it or waiting in the control ring. A begin_step that returned
  /// NotReady left the ring asking for a doorbell, so polling fd() wakes on a new frame.
  int fd() const { return ctrl_.get(); }
  bool buffered() const {
    return !peeked_.empty() || ctrl_in_.buffered() > 0 || (ring_ && ring_->readable());
  }
  bool in_step() const { return in_step_; }
  bool ended() const { return ended_; }

  /// Removes the shared memory of this source's writer if it is dead (waiting up to
  /// `grace` seconds for a killed process to finish exiting). For fan-in members, whose
  /// writers no successor replaces.
  void remove_dead_writers_memory(double grace) const;

  const std::string& member() const { return member_; }
  std::uint32_t rank() const { return rank_; }
  const Contact& contact() const { return contact_; }
  /// The oldest step the writer will offer this reader.
  std::uint64_t first_step() const { return welcome_.first_step; }
  const wire::StepMeta& step() const { return step_; }
  const Attributes& step_attributes() const { return step_attrs_; }
  const Attributes& stream_attributes() const { return stream_attrs_; }
  const ReaderStats& stats() const { return stats_; }

 private:
  void connect(net::Deadline deadline, bool wait);
  [[noreturn]] void writer_lost(const std::string& what) const;
  std::optional<net::Frame> next_frame(net::Deadline deadline, net::Clock::duration silence);
  // Control ring: moves what it holds into ctrl_in_; true if anything came.
  bool read_ring();
  // The socket beside a control ring: doorbells (dropped) and the hang-up.
  void read_doorbells();
  // The k-th step announced after the held one (k >= 1), if its announcement is already
  // here (without waiting): decoded, and made known to the plane, for reading it ahead.
  const wire::StepMeta* peek_next(std::size_t k);
  std::string who() const;  // "stream 'md'", "stream 'md' member 'run-07'", "... rank 2"

  const std::string name_;
  const std::string member_;
  const std::uint32_t rank_;
  const std::string path_;
  const ReaderOptions& opt_;
  const transport::PlaneChoice choice_;
  std::shared_ptr<BufferPool> buffers_;
  Attributes step_attrs_;
  Attributes stream_attrs_;
  wire::StepMeta step_;
  bool in_step_ = false;
  ReaderStats stats_;

  Contact contact_;
  std::string peer_;
  net::Fd ctrl_;
  net::FrameAssembler ctrl_in_;  // frames from the writer: the ring's if there is one
  std::optional<net::ControlRing> ring_;  // same-host control path (control/control_ring.hpp)
  net::FrameAssembler doorbells_;         // the socket's bytes while a ring is in use
  wire::Welcome welcome_;
  std::unique_ptr<transport::DataPlaneReader> plane_;
  std::unique_ptr<ReadAhead> ahead_;     // preload, on planes that read in the background
  std::deque<net::Frame> peeked_;        // frames after the held step, taken early
  std::deque<wire::StepMeta> next_;      // the first of peeked_ decoded (announcements)
  net::Clock::time_point last_heard_;
  bool ended_ = false;
  bool closed_ = false;
};

}  // namespace twinstream
