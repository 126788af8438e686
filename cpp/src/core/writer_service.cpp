// The writer's service thread: one poll loop over the control port, handshakes in
// progress and connected readers. Input from each connection is assembled without
// blocking, so a slow or hostile peer cannot stall anyone else.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.hpp"
#include "core/writer_impl.hpp"
#include "transport/registry.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {

namespace {
// A connection must complete its hello within this time, in at most this many bytes.
constexpr double kHandshakeSeconds = 5.0;
constexpr std::size_t kMaxHelloBytes = 8192;
constexpr std::size_t kMaxPendingConnections = 64;

std::string peer_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = {};
  std::uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return net::format_address(host, port);
}
}  // namespace

void Writer::Impl::serve() {
  std::vector<pollfd> fds;
  std::vector<ReaderId> reader_ids;
  while (true) {
    int timeout_ms;
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      fds.clear();
      reader_ids.clear();
      fds.push_back({listen_.get(), POLLIN, 0});
      fds.push_back({wake_fd_.get(), POLLIN, 0});
      auto next = net::deadline_after(opt_.heartbeat_interval);
      for (auto& c : pending_) {
        fds.push_back({c.fd.get(), POLLIN, 0});
        next = std::min(next, c.deadline);
      }
      bool ring_readable = false;
      for (auto& [id, p] : readers_) {
        const short ev = POLLIN | (p.out_pos < p.out.size() && !p.ring ? POLLOUT : 0);
        fds.push_back({p.fd.get(), ev, 0});
        reader_ids.push_back(id);
        // Ask again before sleeping: a reader takes the request when it rings, and it may
        // ring before it has acknowledged anything (preload wants the next announcement),
        // which leaves nothing for this loop to act on (and re-ask after) when it wakes.
        want_acks(p);
        // Asked to be rung after its last look: what came before that is read now.
        ring_readable = ring_readable || (p.ring && p.ring->readable());
      }
      timeout_ms = ring_readable ? 0 : net::poll_timeout_ms(next);
    }
    const int rc = ::poll(fds.data(), fds.size(), timeout_ms);
    if (rc < 0 && errno != EINTR) {
      log::warn("stream '" + name_ + "': poll failed: " + net::errno_text(errno));
    }
    std::lock_guard lock(mu_);
    if (stop_) return;
    if (fds[1].revents) {
      std::uint64_t n;
      [[maybe_unused]] auto r = ::read(wake_fd_.get(), &n, sizeof n);
    }
    // Handshakes in progress (the first pending_.size() entries after the two fixed ones;
    // accept_new only appends, so indices stay valid).
    const std::size_t npending = pending_.size();
    for (std::size_t i = 0; i < npending; ++i) {
      auto& c = pending_[i];
      const auto rev = fds[2 + i].revents;
      if (rev) {
        try {
          if (!c.in.fill(c.fd.get())) {
            log::warn("stream '" + name_ + "': connection from " + c.who +
                      " closed before completing its handshake");
            c.fd.reset();
            continue;
          }
          if (auto f = c.in.next()) {
            handshake(c, *f);
          } else if (c.in.buffered() > kMaxHelloBytes) {
            throw ProtocolError("sent " + std::to_string(c.in.buffered()) +
                                " bytes without a complete hello");
          }
        } catch (const std::exception& e) {
          log::warn("stream '" + name_ + "': closing connection from " + c.who + ": " + e.what());
          c.fd.reset();
        }
      } else if (net::Clock::now() >= c.deadline) {
        log::warn("stream '" + name_ + "': closing connection from " + c.who +
                  ": no handshake within " + std::to_string(int(kHandshakeSeconds)) + " s");
        c.fd.reset();
      }
    }
    std::erase_if(pending_, [](const Pending& c) { return !c.fd.valid(); });

    for (std::size_t i = 0; i < reader_ids.size(); ++i) {
      const auto rev = fds[2 + npending + i].revents;
      auto it = readers_.find(reader_ids[i]);
      if (it == readers_.end()) continue;
      auto& p = it->second;
      read_ring(p);  // before its socket: acknowledgements there came first
      if (p.ring && p.out_pos < p.out.size()) flush(p);  // room may have come unrung
      if (!rev) continue;
      try {
        if (rev & POLLOUT) flush(p);
        if (rev & (POLLIN | POLLHUP | POLLERR)) {
          const bool open = p.in.fill(p.fd.get());
          while (!p.dead) {
            auto f = p.in.next();
            if (!f) break;
            handle_frame(p, *f);
          }
          if (!open && !p.dead) {
            p.dead = true;
            p.dead_reason = p.end_sent ? "left" : "disconnected (process ended or crashed)";
          }
        }
      } catch (const std::exception& e) {
        p.dead = true;
        p.dead_reason = std::string("sent bad data (") + e.what() + "); connection closed";
      }
    }
    if (fds[0].revents & POLLIN) accept_new();
    send_heartbeats();
    reap_dead();
  }
}

void Writer::Impl::accept_new() {
  while (true) {
    net::Fd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) return;
    const auto who = peer_address(fd.get());
    if (pending_.size() >= kMaxPendingConnections) {
      log::warn("stream '" + name_ + "': refusing connection from " + who +
                ": too many handshakes in progress");
      continue;
    }
    net::tune_stream_socket(fd.get(), true);
    pending_.push_back({std::move(fd), {}, net::deadline_after(kHandshakeSeconds), who});
  }
}

void Writer::Impl::refuse(Pending& c, std::uint32_t code, const std::string& message) {
  log::warn("stream '" + name_ + "': refused connection from " + c.who + ": " + message);
  net::send_all(c.fd.get(), wire::encode(wire::ErrorMsg{code, message}), net::deadline_after(1.0));
  c.fd.reset();
}

void Writer::Impl::handshake(Pending& c, const net::Frame& f) {
  if (f.header.type != wire::MsgType::Hello) {
    throw ProtocolError("first message was " + std::string(wire::msg_type_name(f.header.type)) +
                        ", not hello");
  }
  const auto hello = wire::decode_hello(f.payload);
  if (hello.version != wire::kProtocolVersion || f.header.version != wire::kProtocolVersion) {
    return refuse(c, wire::kVersionMismatch,
                  "stream '" + name_ + "': protocol version mismatch: the reader speaks v" +
                      std::to_string(hello.version) + ", this writer (twinstream " +
                      TWINSTREAM_VERSION + ") speaks v" +
                      std::to_string(wire::kProtocolVersion) +
                      "; install the same twinstream release on both sides");
  }
  if (!tokens_equal(hello.token, token_)) {
    return refuse(c, wire::kBadToken,
                  "stream '" + name_ + "': access token refused; read the token from the "
                  "current contact file " + contact_path_ + " (an old copy belongs to a dead writer)");
  }
  if (hello.role == wire::Role::Data) {
    auto it = readers_.find(hello.reader_id);
    if (it == readers_.end() || it->second.plane != "tcp") {
      return refuse(c, wire::kBadRequest,
                    "stream '" + name_ + "': data connection for unknown reader " +
                        std::to_string(hello.reader_id));
    }
    wire::Welcome w;
    w.reader_id = hello.reader_id;
    w.data_plane = "tcp";
    net::send_all(c.fd.get(), wire::encode(w), net::deadline_after(2.0));
    tcp_->serve(std::move(c.fd), hello.reader_id);
    return;
  }

  // Pipelines it asks this writer to run: checked now, not when the first step comes.
  std::vector<std::pair<std::string, ops::Pipeline>> writer_ops;
  if (!hello.writer_ops.empty()) {
    const std::string who = "stream '" + name_ + "': writer_ops";
    if (opt_.ranks > 1) {
      return refuse(c, wire::kBadRequest,
                    who + " on a writer job of " + std::to_string(opt_.ranks) + " ranks is not "
                    "supported (each rank holds only its own blocks); apply the pipeline in "
                    "the reader with step.get(name, ops=[...])");
    }
    if (hello.policy == "shuffle") {
      return refuse(c, wire::kBadRequest,
                    who + " is not supported for a shuffle group (its batches mix rows of "
                    "several steps); apply the pipeline in the reader with "
                    "step.get(name, ops=[...])");
    }
    try {
      writer_ops = parse_writer_ops(hello.writer_ops, who);
    } catch (const InvalidArgument& e) {
      return refuse(c, wire::kBadRequest, e.what());
    }
  }

  const bool same_host = hello.host_id == net::host_id();
  const bool same_process = same_host && hello.pid == static_cast<std::uint32_t>(::getpid());
  std::string plane = hello.data_plane.empty() ? "auto" : hello.data_plane;
  if (plane == "auto") {
    plane = same_process ? "inproc" : (same_host && opt_.shm) ? "shm" : "tcp";
  }
  try {
    transport::find(plane);  // unknown or compiled-out planes explain themselves
  } catch (const std::exception& e) {
    return refuse(c, wire::kUnavailable, "stream '" + name_ + "': " + e.what());
  }
  if (plane == "inproc" && !same_process) {
    return refuse(c, wire::kUnavailable,
                  "stream '" + name_ + "': data_plane='inproc' needs the reader in the writer's "
                  "process; use 'shm' (same host) or 'tcp'");
  }
  if (plane == "shm" && !(same_host && opt_.shm)) {
    return refuse(c, wire::kUnavailable,
                  "stream '" + name_ + "': data_plane='shm' needs " +
                      (opt_.shm ? std::string("the reader on the writer's host")
                                : std::string("a writer opened with shm=True")) +
                      "; use 'tcp'");
  }
  // RMA planes open on the writer's side here (fabric: an endpoint of the reader's provider).
  wire::Welcome grant;
  try {
    planes_->admit(next_reader_id_, plane, hello.plane_option, grant);
  } catch (const Error& e) {
    return refuse(c, wire::kPlaneUnavailable, e.what());
  }
  const ReaderId id = next_reader_id_++;
  const std::string group = hello.group.empty() ? "reader-" + std::to_string(id) : hello.group;
  GroupId gid = 0;
  try {
    gid = groups_.join(group, hello.policy, id, hello.latest, hello.shuffle);
  } catch (const InvalidArgument& e) {
    planes_->reader_left(id);
    return refuse(c, wire::kBadRequest, "stream '" + name_ + "': " + e.what());
  }
  const auto* joined = groups_.group(gid);
  const bool shuffle = joined->shuffler != nullptr;
  if (hello.latest) queue_.set_latest(id);
  // Kept steps for the newcomer: step 0 under keep_first for anyone who reads steps, the
  // history only where every member gets every step (elsewhere the group has had them).
  if (!shuffle) queue_.add_newcomer(id, joined->policy->name() == "all");
  Peer& p = readers_[id];
  p.group = gid;
  p.latest = hello.latest;
  p.shuffle = shuffle;
  p.id = id;
  p.fd = std::move(c.fd);
  p.in = std::move(c.in);
  p.plane = plane;
  p.prefetch = hello.prefetch;
  p.writer_ops = std::move(writer_ops);
  p.who = "reader " + std::to_string(id) + " (pid " + std::to_string(hello.pid) + ", " + c.who +
          ", group '" + group + "', " + plane + ")";
  p.attrs_sent = 0;
  p.retired_sent = retired_seq_;  // segments retired before it joined are not its concern
  wire::Welcome w;
  w.reader_id = id;
  w.data_plane = plane;
  w.shm_prefix = plane == "shm" ? shm_prefix_ : "";
  w.writer_key = writer_key_;
  w.writer_pid = static_cast<std::uint32_t>(::getpid());
  w.group = group;
  w.first_step = queue_.oldest_pending(id).value_or(next_index_);
  w.plane_detail = std::move(grant.plane_detail);
  w.plane_addresses = std::move(grant.plane_addresses);
  // A same-host reader offers a control ring; every frame after the welcome goes there.
  std::optional<net::ControlRing> ring;
  if (!hello.control_ring.empty() && same_host) {
    try {
      ring = net::ControlRing::attach(hello.control_ring);
      w.control_ring = true;
    } catch (const Error& e) {
      log::info("stream '" + name_ + "': " + p.who + ": no control ring (" + e.what() +
                "); using the socket alone");
    }
  }
  send(p, wire::encode(w));
  if (ring && p.out_pos < p.out.size()) {
    // The welcome must be out before frames take the ring; a fresh socket takes it.
    if (net::send_all(p.fd.get(), std::span(p.out).subspan(p.out_pos),
                      net::deadline_after(2.0)) != net::IoStatus::Ok) {
      p.dead = true;
      p.dead_reason = "did not take its welcome";
    }
    p.out.clear();
    p.out_pos = 0;
  }
  p.ring = std::move(ring);
  log::info("stream '" + name_ + "': " + p.who + " joined");
  cv_.notify_all();  // min_readers
  pump(p);
}

void Writer::Impl::send_heartbeats() {
  const auto now = net::Clock::now();
  const auto interval = std::chrono::duration<double>(opt_.heartbeat_interval);
  for (auto& [id, p] : readers_) {
    // A reader that has not drained its socket does not need more bytes to know we live.
    if (p.dead || p.out_pos < p.out.size()) continue;
    if (now - p.last_send >= interval) send(p, wire::encode_empty(wire::MsgType::Heartbeat));
  }
}

}  // namespace twinstream
