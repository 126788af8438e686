// One writer as a reader sees it. Announcements arrive on the control connection; bytes
// come through the data plane chosen at the handshake.
#include "core/reader_source.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "core/log.hpp"
#include "transport/registry.hpp"
#include "transport/shm/shared_memory.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {

ReaderSource::ReaderSource(std::string stream, std::string member, std::uint32_t rank,
                           std::string path,
                           const ReaderOptions& opt, transport::PlaneChoice choice,
                           std::shared_ptr<BufferPool> buffers, net::Deadline deadline, bool wait)
    : name_(std::move(stream)),
      member_(std::move(member)),
      rank_(rank),
      path_(std::move(path)),
      opt_(opt),
      choice_(std::move(choice)),
      buffers_(std::move(buffers)) {
  connect(deadline, wait);
}

std::string ReaderSource::who() const {
  return "stream '" + name_ + "'" + (member_.empty() ? "" : " member '" + member_ + "'") +
         (rank_ > 0 || contact_.ranks > 1 ? " writer rank " + std::to_string(rank_) : "");
}

void ReaderSource::connect(net::Deadline deadline, bool wait) {
  const auto& path = path_;
  const auto dir = path.substr(0, path.rfind('/'));
  bool warned_stale = false;
  std::optional<wire::ErrorMsg> refusal;
  const auto& choice = choice_;
  // The writer may start after us: wait for its contact file to appear (or a stale one to
  // be replaced) with inotify on the rendezvous directory. A slow periodic re-check
  // covers file systems without inotify (NFS) and a directory that does not exist yet.
  net::Fd notify(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  bool watching = false;
  while (true) {
    if (notify.valid() && !watching) {
      watching = ::inotify_add_watch(notify.get(), dir.c_str(),
                                     IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) >= 0;
    }
    std::string why;
    auto c = read_contact(path, &why);
    if (c && !contact_is_live(*c)) {
      if (!wait) {
        // A fan-in member that died: nobody will replace its writer (as a new writer of
        // a stream does), so its shared memory goes now.
        if (!c->shm_prefix.empty() && c->host_id == net::host_id()) {
          shm::unlink_all_with_prefix(c->shm_prefix);
        }
      } else if (!warned_stale) {
        log::warn(who() + ": contact file " + path + " belongs to a dead writer (pid " +
                  std::to_string(c->pid) + "); waiting for a new writer");
        warned_stale = true;
      }
      why = "only a stale contact file from dead writer pid " + std::to_string(c->pid);
      c.reset();
    }
    if (!c && !wait) {
      throw ConnectionError(who() + ": no writer to connect to (" + why + ")");
    }
    if (c) {
      try {
        contact_ = *c;
        peer_ = net::format_address(c->host, c->port);
        ctrl_ = net::connect_tcp(c->host, c->port, std::min(deadline, net::deadline_after(5.0)));
        net::tune_stream_socket(ctrl_.get(), false);
        wire::Hello hello;
        hello.token = c->token;
        hello.role = wire::Role::Control;
        hello.group = opt_.group;
        hello.policy = opt_.policy;
        hello.data_plane = opt_.data_plane;
        hello.host_id = net::host_id();
        hello.pid = static_cast<std::uint32_t>(::getpid());
        hello.prefetch = opt_.prefetch;
        hello.latest = opt_.latest;
        hello.shuffle = opt_.shuffle;
        hello.plane_option = choice.option;
        hello.writer_ops = opt_.writer_ops;
        // Same host: offer a control ring; the writer says in its welcome whether it
        // took it. Shared memory that cannot be made only means the socket alone.
        if (opt_.control == "auto" && c->host_id == net::host_id() && !ring_) {
          try {
            ring_ = net::ControlRing::create();
          } catch (const Error& e) {
            log::info(who() + ": no control ring (" + e.what() + "); using the socket alone");
          }
        }
        if (ring_) hello.control_ring = ring_->name();
        if (net::send_all(ctrl_.get(), wire::encode(hello), deadline) != net::IoStatus::Ok) {
          throw ConnectionError("could not send its hello");
        }
        net::Frame f;
        const auto st = net::read_frame(ctrl_.get(), f, deadline);
        if (st != net::IoStatus::Ok) {
          throw ConnectionError(st == net::IoStatus::Timeout ? "no answer to its hello"
                                                             : "closed during the handshake");
        }
        if (f.header.type == wire::MsgType::Error) {
          refusal = wire::decode_error(f.payload);  // never retried: the answer would not change
          break;
        }
        if (f.header.type != wire::MsgType::Welcome) {
          throw ProtocolError("writer at " + peer_ + " answered with " +
                              std::string(wire::msg_type_name(f.header.type)));
        }
        welcome_ = wire::decode_welcome(f.payload);
        break;
      } catch (const ProtocolError&) {
        throw;
      } catch (const ConnectionError& e) {
        if (!wait) throw ConnectionError(who() + ": " + e.what());
        why = e.what();  // writer starting up or just gone: try again until the deadline
        ctrl_.reset();
      }
    }
    if (net::Clock::now() >= deadline) {
      throw TimeoutError(who() + ": no writer to connect to before open_timeout (" +
                         why + "); start the writer, or check dir=/TWINSTREAM_DIR (looked in " +
                         path + ")");
    }
    const auto recheck = net::Clock::now() + std::chrono::milliseconds(watching ? 250 : 50);
    if (watching &&
        net::wait_readable(notify.get(), std::min(deadline, recheck)) == net::IoStatus::Ok) {
      char events[4096];
      while (::read(notify.get(), events, sizeof events) > 0) {
      }
    } else if (!watching) {
      ::poll(nullptr, 0, net::poll_timeout_ms(std::min(deadline, recheck)));  // bounded pause
    }
  }

  if (refusal) {
    ctrl_.reset();
    if (refusal->code == wire::kPlaneUnavailable) throw Unavailable(refusal->message);
    if (refusal->code == wire::kUnavailable || refusal->code == wire::kBadRequest) {
      throw InvalidArgument(refusal->message);
    }
    throw ConnectionError(refusal->message);
  }
  if (ring_) {
    ring_->unlink();  // the writer mapped it (or never will): the name has served
    if (!welcome_.control_ring) ring_.reset();
  }
  stats_.control = ring_ ? "ring" : "socket";
  net::set_nonblocking(ctrl_.get(), true);
  transport::ReaderContext ctx{name_, contact_, welcome_, opt_.heartbeat_timeout, choice,
                               ctrl_.get()};
  plane_ = transport::find(welcome_.data_plane).make_reader(ctx);
  if (opt_.preload == "on" && plane_->reads_in_background()) {
    ahead_ = std::make_unique<ReadAhead>(*plane_, buffers_);
  }
  stats_.data_plane = welcome_.data_plane;
  stats_.data_plane_detail = choice.detail;
  stats_.data_plane_fallback = choice.fallback;
  last_heard_ = net::Clock::now();
  log::info(who() + ": reader " + std::to_string(welcome_.reader_id) +
            " joined group '" + welcome_.group + "' over " + welcome_.data_plane);
}

void ReaderSource::remove_dead_writers_memory(double grace) const {
  if (contact_.shm_prefix.empty() || contact_.host_id != net::host_id()) return;
  // The connection closes while a killed process is still exiting: give it a moment.
  const auto until = net::deadline_after(grace);
  while (contact_is_live(contact_)) {
    if (net::Clock::now() >= until) return;  // alive (hung?): never touch its memory
    ::poll(nullptr, 0, 10);
  }
  shm::unlink_all_with_prefix(contact_.shm_prefix);
}

void ReaderSource::writer_lost(const std::string& what) const {
  // A writer killed on this host leaves its shared memory behind; the first reader to
  // notice removes it (only once the process is really gone, never for a hung writer).
  if (!contact_.shm_prefix.empty() && contact_.host_id == net::host_id() &&
      !contact_is_live(contact_)) {
    shm::unlink_all_with_prefix(contact_.shm_prefix);
  }
  throw ConnectionError(who() + ": the writer (pid " +
                        std::to_string(welcome_.writer_pid) + ", " + peer_ + ") " + what +
                        "; steps after the last one received are lost; restart the writer and "
                        "reopen the reader");
}

bool ReaderSource::read_ring() {
  if (ring_->read(ctrl_in_) == 0) return false;
  if (ring_->take_peer_wants_room()) net::send_doorbell(ctrl_.get());  // writer on a full ring
  return true;
}

void ReaderSource::read_doorbells() {
  const bool open = doorbells_.fill(ctrl_.get());
  while (auto f = doorbells_.next()) {
    if (f->header.type != wire::MsgType::Doorbell) {
      throw ProtocolError(who() + ": writer at " + peer_ + " sent " +
                          std::string(wire::msg_type_name(f->header.type)) +
                          " on the socket of a control ring");
    }
  }
  if (!open) {
    read_ring();  // the last words before the close
    if (ctrl_in_.frames_ready() > 0) return;
    writer_lost("closed the connection without ending the stream (it crashed or was killed)");
  }
}

// The next control frame, or nullopt at the deadline. Spins briefly before sleeping in
// poll(): a step that is about to arrive then costs no wake-up (the idle strategy of
// low-latency messaging), and an idle reader still sleeps. With a control ring the spin
// reads shared memory, and a sleeping reader is rung on the socket (control_ring.hpp).
std::optional<net::Frame> ReaderSource::next_frame(net::Deadline deadline,
                                                   net::Clock::duration silence) {
  constexpr auto kSpin = std::chrono::microseconds(50);
  const auto spin_until = net::Clock::now() + kSpin;
  while (true) {
    if (auto f = ctrl_in_.next()) {
      last_heard_ = net::Clock::now();
      return f;
    }
    if (ring_) {
      if (read_ring() || net::Clock::now() < spin_until) continue;  // spin: memory only
      read_doorbells();  // and the hang-up
      if (ctrl_in_.frames_ready() > 0) continue;
      // Asleep until rung (or the deadline); the request stays up if we return empty,
      // so that a caller polling fd() is rung too.
      if (!ring_->wait_for_data()) continue;
    } else {
      const auto before = ctrl_in_.buffered();
      if (!ctrl_in_.fill(ctrl_.get())) {
        if (auto f = ctrl_in_.next()) return f;  // the last words before the close
        writer_lost("closed the connection without ending the stream (it crashed or was killed)");
      }
      if (ctrl_in_.buffered() != before || net::Clock::now() < spin_until) continue;
    }
    const auto heard_by = last_heard_ + silence;
    const auto st = net::wait_readable(ctrl_.get(), std::min(deadline, heard_by));
    if (st == net::IoStatus::Timeout) {
      if (ring_ && ring_->readable()) continue;
      if (net::Clock::now() >= heard_by) {
        writer_lost("sent nothing for heartbeat_timeout=" + std::to_string(opt_.heartbeat_timeout) +
                    " s (hung, or its host is unreachable)");
      }
      if (net::Clock::now() >= deadline) return std::nullopt;
    }
  }
}

StepStatus ReaderSource::begin_step(net::Deadline deadline) {
  if (closed_) throw InvalidArgument(who() + ": begin_step on a closed reader");
  if (in_step_) {
    throw InvalidArgument(who() + ": begin_step called twice; call end_step first");
  }
  if (ended_) return StepStatus::EndOfStream;
  const auto silence = std::chrono::duration_cast<net::Clock::duration>(
      std::chrono::duration<double>(opt_.heartbeat_timeout));
  while (true) {
    std::optional<net::Frame> f;
    if (!peeked_.empty()) {
      f = std::move(peeked_.front());
      peeked_.pop_front();
    } else {
      f = next_frame(deadline, silence);
    }
    if (!f) return StepStatus::NotReady;
    last_heard_ = net::Clock::now();
    switch (f->header.type) {
      case wire::MsgType::Heartbeat: continue;
      case wire::MsgType::End:
        ended_ = true;
        plane_->on_end();
        return StepStatus::EndOfStream;
      case wire::MsgType::Error: throw ConnectionError(wire::decode_error(f->payload).message);
      case wire::MsgType::Announce: break;
      default:
        throw ProtocolError(who() + ": writer at " + peer_ + " sent an unexpected " +
                            std::string(wire::msg_type_name(f->header.type)));
    }
    if (!next_.empty()) {
      step_ = std::move(next_.front());  // decoded and given to the plane by peek_next
      next_.pop_front();
    } else try {
      step_ = wire::decode_step(f->payload);
      plane_->on_step(step_);
    } catch (const Unavailable&) {
      // Step memory that was announced but is gone: the writer gave up on this reader
      // (close_timeout) and closed. Said as such; otherwise the plane's reason stands.
      // Drain what is queued on the control connection: the hang-up comes after it.
      auto& socket_in = ring_ ? doorbells_ : ctrl_in_;
      for (auto before = socket_in.buffered();; before = socket_in.buffered()) {
        if (!socket_in.fill(ctrl_.get())) {
          writer_lost("closed the stream (close_timeout) before this reader took step " +
                      std::to_string(step_.index) + "; its memory is gone");
        }
        if (socket_in.buffered() == before) break;
      }
      throw;
    }
    if (step_.stream_attributes) stream_attrs_ = std::move(*step_.stream_attributes);
    step_.stream_attributes.reset();
    step_attrs_ = step_.attributes;
    stats_.dropped = step_.dropped;
    stats_.steps++;
    if (step_.flags & wire::kRedelivered) stats_.redelivered++;
    if (ahead_) ahead_->begin_step(step_.index);
    in_step_ = true;
    return StepStatus::Ok;
  }
}

std::shared_ptr<const std::byte> ReaderSource::view(std::uint32_t segment,
                                                    std::uint64_t offset, std::uint64_t length) {
  if (!in_step_) throw InvalidArgument(who() + ": read outside a step");
  if (!ahead_) return plane_->view(segment, offset, length);
  auto p = ahead_->view(step_, segment, offset, length,
                        [this](std::size_t k) { return peek_next(k); });
  stats_.preload_bytes = ahead_->served_bytes();
  return p;
}

void ReaderSource::pull(std::span<const transport::Copy> copies) {
  if (!in_step_) throw InvalidArgument(who() + ": read outside a step");
  if (copies.empty()) return;
  if (!ahead_) {
    plane_->read(step_.index, copies);
    return;
  }
  ahead_->read(step_, copies, [this](std::size_t k) { return peek_next(k); });
  stats_.preload_bytes = ahead_->served_bytes();
}

const wire::StepMeta* ReaderSource::peek_next(std::size_t k) {
  if (k <= next_.size()) return &next_[k - 1];
  if (peeked_.size() < k) {
    // What has arrived, without waiting: the ring's bytes, or the socket's.
    if (ring_) {
      read_ring();
    } else {
      ctrl_in_.fill(ctrl_.get());  // a hang-up is begin_step's to report
    }
    while (peeked_.size() < k) {
      auto f = ctrl_in_.next();
      if (!f) break;
      last_heard_ = net::Clock::now();
      if (f->header.type != wire::MsgType::Heartbeat) peeked_.push_back(std::move(*f));
    }
    if (peeked_.size() < k && ring_ && ring_->take_peer_waiting()) {
      // The writer waits for acknowledgements to hand out more (end_step rings it only at
      // the last step left): ring now, so that the announcement is here for a later look.
      // The writer asks again before it sleeps (Writer::Impl::serve).
      net::send_doorbell(ctrl_.get());
    }
  }
  // Decoded in order; a frame other than an announcement (the end) stops the look.
  while (next_.size() < k && next_.size() < peeked_.size()) {
    const auto& f = peeked_[next_.size()];
    if (f.header.type != wire::MsgType::Announce) return nullptr;
    auto next = wire::decode_step(f.payload);
    plane_->on_step(next);  // the held step's segments stay: the writer keeps them until its ack
    next_.push_back(std::move(next));
  }
  return k <= next_.size() ? &next_[k - 1] : nullptr;
}

void ReaderSource::end_step() {
  if (!in_step_) throw InvalidArgument(who() + ": end_step without begin_step");
  in_step_ = false;
  if (ahead_) {
    ahead_->end_step();
    stats_.preload_unused_bytes = ahead_->unused_bytes();
  }
  const auto ack = wire::encode(wire::Ack{step_.index});
  if (ring_ && ring_->write_all(ack)) {
    // The writer asks to be rung when it waits for acknowledgements. While another step
    // is already here it can wait: it is rung when this reader is down to its last one,
    // so one wake-up serves several steps (and the writer refills while that one is read).
    if (ring_->peer_waiting()) {
      read_ring();
      if (ctrl_in_.frames_ready() + peeked_.size() <= 1 && ring_->take_peer_waiting()) {
        net::send_doorbell(ctrl_.get());  // a lost one: the writer's next look finds the ack
      }
    }
    return;
  }
  // No ring, or it is full: the socket. The writer reads the ring before the socket, so
  // acknowledgements keep their order.
  if (net::send_all(ctrl_.get(), ack, net::deadline_after(opt_.heartbeat_timeout)) !=
      net::IoStatus::Ok) {
    writer_lost("did not take the acknowledgement of step " + std::to_string(step_.index));
  }
}

void ReaderSource::close() {
  if (closed_) return;
  closed_ = true;
  if (ahead_) {
    try {
      ahead_->land_all();
    } catch (const Error& e) {
      log::info(who() + ": a read ahead did not land before closing: " + e.what());
      ahead_->abandon();
    }
  }
  if (ctrl_.valid()) {
    net::send_all(ctrl_.get(), wire::encode_empty(wire::MsgType::Bye), net::deadline_after(0.5));
  }
  plane_.reset();   // lands or abandons the reads under way, some into ahead_'s buffers
  ahead_.reset();
  ctrl_.reset();
}

}  // namespace twinstream
