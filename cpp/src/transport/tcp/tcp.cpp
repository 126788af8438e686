// Reader side of the tcp plane: a data connection of its own, on which the reader pulls
// exactly the byte ranges it needs and receives them with readv straight into their
// destinations (the caller's buffer or the step buffer behind a view).
#include <sys/uio.h>

#include <algorithm>

#include "control/connection.hpp"
#include "transport/registry.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::transport {
namespace {

// Ranges per request: keeps a request frame well under the frame limit.
constexpr std::size_t kRangesPerRequest = 1u << 16;
constexpr std::uint64_t kSpinReplyBytes = 256u << 10;

class TcpReader final : public DataPlaneReader {
 public:
  explicit TcpReader(const ReaderContext& ctx)
      : stream_(ctx.stream), timeout_(ctx.io_timeout) {
    peer_ = net::format_address(ctx.contact.host, ctx.contact.port);
    fd_ = net::connect_tcp(ctx.contact.host, ctx.contact.port, net::deadline_after(timeout_));
    net::tune_stream_socket(fd_.get(), true);
    wire::Hello hello;
    hello.token = ctx.contact.token;
    hello.role = wire::Role::Data;
    hello.reader_id = ctx.welcome.reader_id;
    hello.data_plane = "tcp";
    expect(net::send_all(fd_.get(), wire::encode(hello), deadline()), "sending its hello");
    net::Frame f;
    expect(net::read_frame(fd_.get(), f, deadline()), "waiting for its welcome");
    if (f.header.type == wire::MsgType::Error) {
      throw ConnectionError(wire::decode_error(f.payload).message);
    }
    if (f.header.type != wire::MsgType::Welcome) {
      throw ProtocolError("stream '" + stream_ + "': writer at " + peer_ +
                          " answered the data hello with " +
                          std::string(wire::msg_type_name(f.header.type)));
    }
  }
  std::string_view name() const override { return "tcp"; }
  void on_step(const wire::StepMeta&) override {}
  std::shared_ptr<const std::byte> view(std::uint32_t, std::uint64_t, std::uint64_t) override {
    return nullptr;
  }

  void read(std::uint64_t step, std::span<const Copy> copies) override {
    for (std::size_t first = 0; first < copies.size(); first += kRangesPerRequest) {
      const auto batch = copies.subspan(first, std::min(kRangesPerRequest, copies.size() - first));
      wire::ReadRequest req;
      req.step = step;
      std::uint64_t total = 0;
      iov_.clear();
      for (const auto& c : batch) {
        req.ranges.push_back({c.segment, c.offset, c.length});
        iov_.push_back({c.dst, c.length});
        total += c.length;
      }
      expect(net::send_all(fd_.get(), wire::encode(req), deadline()), "sending a read request");
      // A small reply arrives faster than a wake-up from poll: spin for it. A large one
      // would only burn the core the writer needs to send it.
      if (total <= kSpinReplyBytes) net::spin_until_readable(fd_.get(), std::chrono::microseconds(50));
      net::Frame f;
      expect(net::read_frame(fd_.get(), f, deadline()), "waiting for step data");
      if (f.header.type == wire::MsgType::Error) {
        throw ConnectionError(wire::decode_error(f.payload).message);
      }
      if (f.header.type != wire::MsgType::ReadReply) {
        throw ProtocolError("stream '" + stream_ + "': writer at " + peer_ + " sent " +
                            std::string(wire::msg_type_name(f.header.type)) +
                            " instead of step data");
      }
      const auto reply = wire::decode_read_reply(f.payload);
      if (reply.step != step || reply.total != total) {
        throw ProtocolError("stream '" + stream_ + "': writer at " + peer_ +
                            " answered a read with the wrong step or size");
      }
      expect(net::recvv_all(fd_.get(), iov_.data(), iov_.size(), deadline()), "receiving step data");
    }
  }

 private:
  net::Deadline deadline() const { return net::deadline_after(timeout_); }
  void expect(net::IoStatus st, const char* doing) {
    if (st == net::IoStatus::Ok) return;
    throw ConnectionError("stream '" + stream_ + "': data connection to the writer at " + peer_ +
                          (st == net::IoStatus::Timeout ? " timed out " : " closed ") + doing +
                          "; is the writer alive?");
  }
  std::string stream_;
  std::string peer_;
  double timeout_;
  net::Fd fd_;
  std::vector<iovec> iov_;
};
}  // namespace

Entry tcp_entry() {
  return {"tcp", true, "",
          [](const ReaderContext& ctx) -> std::unique_ptr<DataPlaneReader> {
            return std::make_unique<TcpReader>(ctx);
          }};
}

}  // namespace twinstream::transport
