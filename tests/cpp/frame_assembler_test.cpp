// Frames cut out of a byte stream that arrives in arbitrary pieces.
#include "control/connection.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include "core/messages.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::net {
namespace {

struct SocketPair {
  Fd a, b;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    a = Fd(fds[0]);
    b = Fd(fds[1]);
    set_nonblocking(b.get(), true);
  }
};

TEST(FrameAssembler, ReassemblesFramesSentInRandomPieces) {
  SocketPair sp;
  std::vector<std::byte> stream;
  for (std::uint64_t i = 0; i < 500; ++i) {
    auto f = wire::encode(wire::Ack{i});
    stream.insert(stream.end(), f.begin(), f.end());
  }
  std::mt19937 rng(7);
  FrameAssembler in;
  std::uint64_t expected = 0;
  std::size_t pos = 0;
  while (pos < stream.size()) {
    const std::size_t n = std::min<std::size_t>(1 + rng() % 100, stream.size() - pos);
    ASSERT_EQ(::write(sp.a.get(), stream.data() + pos, n), static_cast<ssize_t>(n));
    pos += n;
    ASSERT_TRUE(in.fill(sp.b.get()));
    while (auto f = in.next()) {
      ASSERT_EQ(f->header.type, wire::MsgType::Ack);
      EXPECT_EQ(wire::decode_ack(f->payload).step, expected++);
    }
  }
  EXPECT_EQ(expected, 500u);
  EXPECT_EQ(in.buffered(), 0u);
}

TEST(FrameAssembler, ReportsCloseAndRejectsBadHeader) {
  SocketPair sp;
  FrameAssembler in;
  const char junk[16] = "GET / HTTP/1.1\n";
  ASSERT_EQ(::write(sp.a.get(), junk, sizeof junk), 16);
  ASSERT_TRUE(in.fill(sp.b.get()));
  EXPECT_THROW(in.next(), ProtocolError);
  sp.a.reset();
  FrameAssembler again;
  EXPECT_FALSE(again.fill(sp.b.get()));
}

TEST(FrameAssembler, LargeFrameSpanningManyReads) {
  SocketPair sp;
  wire::ErrorMsg big{1, std::string(60000, 'x')};
  auto bytes = wire::encode(big);
  auto more = wire::encode(wire::Ack{9});
  bytes.insert(bytes.end(), more.begin(), more.end());
  FrameAssembler in;
  std::size_t pos = 0;
  int frames = 0;
  while (pos < bytes.size()) {
    const std::size_t n = std::min<std::size_t>(7000, bytes.size() - pos);
    ASSERT_EQ(::write(sp.a.get(), bytes.data() + pos, n), static_cast<ssize_t>(n));
    pos += n;
    ASSERT_TRUE(in.fill(sp.b.get()));
    while (auto f = in.next()) {
      if (frames == 0) {
        EXPECT_EQ(wire::decode_error(f->payload).message, big.message);
      } else {
        EXPECT_EQ(wire::decode_ack(f->payload).step, 9u);
      }
      ++frames;
    }
  }
  EXPECT_EQ(frames, 2);
}

}  // namespace
}  // namespace twinstream::net
