#include "transport/tcp/tcp_server.hpp"

#include <sys/socket.h>

#include <map>

#include "control/connection.hpp"
#include "core/log.hpp"
#include "core/messages.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::transport {

void TcpServer::serve(net::Fd fd, std::uint64_t reader_id) {
  std::lock_guard lock(mu_);
  reap_finished();
  auto& w = workers_.emplace_back();
  w.fd = std::move(fd);
  w.thread = std::thread([this, &w, reader_id] { run(w, w.fd.get(), reader_id); });
}

void TcpServer::reap_finished() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->done.load()) {
      it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void TcpServer::stop() {
  std::lock_guard lock(mu_);
  for (auto& w : workers_) {
    // shutdown() wakes a thread blocked in recv or send on this socket.
    ::shutdown(w.fd.get(), SHUT_RDWR);
  }
  for (auto& w : workers_) w.thread.join();
  workers_.clear();
}

void TcpServer::run(Worker& w, int fd, std::uint64_t reader_id) {
  const std::string who = "stream '" + stream_ + "' reader " + std::to_string(reader_id);
  try {
    net::Frame frame;
    std::vector<iovec> iov;
    while (true) {
      const auto st = net::read_frame(fd, frame, net::Deadline::max());
      if (st != net::IoStatus::Ok) break;  // reader left
      if (frame.header.type == wire::MsgType::Bye) break;
      if (frame.header.type != wire::MsgType::ReadRequest) {
        throw ProtocolError("unexpected " + std::string(wire::msg_type_name(frame.header.type)) +
                            " on a data connection");
      }
      const auto req = wire::decode_read_request(frame.payload);
      auto segments = access_.held_segments(reader_id, req.step);
      std::map<std::uint32_t, Segment*> by_id;
      for (const auto& s : segments) by_id[s->id()] = s.get();
      std::string refusal;
      if (segments.empty()) refusal = "step " + std::to_string(req.step) + " is not held by this reader";
      wire::ReadReply reply{req.step, 0};
      iov.clear();
      iov.push_back({});  // header goes first
      for (const auto& r : req.ranges) {
        if (!refusal.empty()) break;
        auto it = by_id.find(r.segment);
        if (it == by_id.end() || r.offset > it->second->size() ||
            r.length > it->second->size() - r.offset) {
          refusal = "range outside the step's memory";
          break;
        }
        iov.push_back({it->second->data() + r.offset, r.length});
        reply.total += r.length;
      }
      if (!refusal.empty()) {
        auto err = wire::encode(wire::ErrorMsg{wire::kBadRequest, who + ": " + refusal});
        net::send_all(fd, err, net::deadline_after(1.0));
        log::warn(who + ": refused a read request (" + refusal + "); closing its data connection");
        break;
      }
      auto header = wire::encode(reply);
      iov[0] = {header.data(), header.size()};
      // The reader holds the step until it has every byte, so the memory stays put.
      if (net::sendv_all(fd, iov.data(), iov.size(), net::Deadline::max()) !=
          net::IoStatus::Ok) {
        break;
      }
    }
  } catch (const std::exception& e) {
    log::warn(who + ": closing its data connection: " + e.what());
  }
  w.done.store(true);
}

}  // namespace twinstream::transport
