// The same-host control ring: byte streams in both directions, wrap-around, a full ring,
// the doorbell requests, a peer that corrupts the shared positions, and two threads
// streaming through it at once.
#include "control/control_ring.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <chrono>
#include <thread>

#include "core/messages.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::net {
namespace {

using Bytes = std::vector<std::byte>;

// A frame of `length` payload bytes whose content says which frame it is.
Bytes frame(std::uint32_t seq, std::uint32_t length) {
  Bytes out(wire::kHeaderSize + length);
  wire::encode_header({wire::kProtocolVersion, wire::MsgType::Heartbeat, length}, out.data());
  for (std::uint32_t i = 0; i < length; ++i) {
    out[wire::kHeaderSize + i] = static_cast<std::byte>((seq * 131 + i) & 0xff);
  }
  if (length >= 4) std::memcpy(out.data() + wire::kHeaderSize, &seq, 4);
  return out;
}

void expect_frame(const Frame& f, std::uint32_t seq, std::uint32_t length) {
  ASSERT_EQ(f.header.length, length);
  const auto want = frame(seq, length);
  ASSERT_EQ(0, std::memcmp(f.payload.data(), want.data() + wire::kHeaderSize, length))
      << "frame " << seq;
}

bool shm_exists(const std::string& name) {
  const int fd = ::shm_open(name.c_str(), O_RDONLY, 0);
  if (fd >= 0) ::close(fd);
  return fd >= 0;
}

TEST(ControlRing, AttachRemovesTheNameAndBothDirectionsCarryFrames) {
  auto reader = ControlRing::create();
  const std::string name = reader.name();
  ASSERT_TRUE(shm_exists(name));
  auto writer = ControlRing::attach(name);
  EXPECT_FALSE(shm_exists(name)) << "attach must leave nothing behind";

  const auto down = frame(1, 100);
  EXPECT_EQ(writer.write_some(down), down.size());
  EXPECT_TRUE(reader.readable());
  FrameAssembler in;
  EXPECT_EQ(reader.read(in), down.size());
  EXPECT_FALSE(reader.readable());
  auto f = in.next();
  ASSERT_TRUE(f);
  expect_frame(*f, 1, 100);

  const auto ack = wire::encode(wire::Ack{42});
  EXPECT_TRUE(reader.write_all(ack));
  FrameAssembler back;
  EXPECT_EQ(writer.read(back), ack.size());
  auto a = back.next();
  ASSERT_TRUE(a);
  EXPECT_EQ(wire::decode_ack(a->payload).step, 42u);
  // Nothing crossed over: each side reads only what the other wrote.
  EXPECT_EQ(reader.read(in), 0u);
  EXPECT_EQ(writer.read(back), 0u);
}

TEST(ControlRing, StreamOfRandomFramesWrapsAroundManyTimes) {
  auto reader = ControlRing::create();
  auto writer = ControlRing::attach(reader.name());
  std::mt19937 rng(11);
  FrameAssembler in;
  std::vector<std::uint32_t> lengths;
  std::uint32_t sent = 0, got = 0;
  std::size_t total = 0;
  Bytes pending;
  while (total < 8 * ControlRing::kCapacity) {
    if (pending.empty()) {
      const std::uint32_t len = rng() % 5 == 0 ? 20000 + rng() % 40000 : rng() % 300;
      lengths.push_back(len);
      pending = frame(sent++, len);
    }
    const auto n = writer.write_some(pending);
    total += n;
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n));
    if (rng() % 3 == 0 || n == 0) {
      reader.read(in);
      while (auto f = in.next()) {
        ASSERT_LT(got, lengths.size());
        expect_frame(*f, got, lengths[got]);
        ++got;
      }
    }
  }
  while (!pending.empty()) {
    const auto n = writer.write_some(pending);
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n));
    reader.read(in);
  }
  reader.read(in);
  while (auto f = in.next()) expect_frame(*f, got, lengths[got]), ++got;
  EXPECT_EQ(got, sent);
}

TEST(ControlRing, FullRingAsksForRoomAndTheReaderSaysWhenThereIs) {
  auto reader = ControlRing::create();
  auto writer = ControlRing::attach(reader.name());
  const Bytes big(ControlRing::kCapacity + 1000, std::byte{7});
  EXPECT_EQ(writer.write_some(big), ControlRing::kCapacity);
  EXPECT_EQ(writer.write_some(big), 0u);
  EXPECT_FALSE(writer.write_all(wire::encode(wire::Ack{1})));
  EXPECT_TRUE(writer.wait_for_room());  // full: will be rung
  FrameAssembler in;
  EXPECT_EQ(reader.read(in), ControlRing::kCapacity);
  EXPECT_TRUE(reader.take_peer_wants_room());
  EXPECT_FALSE(reader.take_peer_wants_room()) << "once per wait";
  // Room already there: the request is withdrawn at once.
  EXPECT_FALSE(writer.wait_for_room());
  EXPECT_FALSE(reader.take_peer_wants_room());
}

TEST(ControlRing, DoorbellRequestsAreTakenOnceAndWithdrawnWhenDataIsThere) {
  auto reader = ControlRing::create();
  auto writer = ControlRing::attach(reader.name());
  EXPECT_FALSE(writer.take_peer_waiting());
  EXPECT_TRUE(reader.wait_for_data());  // empty: sleep, ring me
  EXPECT_TRUE(writer.peer_waiting());
  const auto f = frame(0, 8);
  writer.write_some(f);
  EXPECT_TRUE(writer.take_peer_waiting());
  EXPECT_FALSE(writer.take_peer_waiting()) << "once per sleep";
  // Data already there: no sleep, no request left up.
  EXPECT_FALSE(reader.wait_for_data());
  EXPECT_FALSE(writer.peer_waiting());
  // A request left up (a reader that timed out) goes once it reads.
  FrameAssembler in;
  reader.read(in);
  EXPECT_TRUE(reader.wait_for_data());
  writer.write_some(f);
  reader.read(in);
  EXPECT_FALSE(writer.take_peer_waiting());

  // The writer's side: asking for acknowledgements, and withdrawing.
  writer.want_doorbell(true);
  EXPECT_TRUE(reader.peer_waiting());
  writer.want_doorbell(false);
  EXPECT_FALSE(reader.peer_waiting());
}

TEST(ControlRing, ImpossiblePositionsFromThePeerAreRefused) {
  auto reader = ControlRing::create();
  // The test plays a hostile reader: it scribbles over the shared header (after the
  // layout check fields) through its own mapping.
  const int fd = ::shm_open(reader.name().c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(p, MAP_FAILED);
  auto writer = ControlRing::attach(reader.name());
  std::memset(static_cast<char*>(p) + 64, 0xff, 4096 - 64);
  FrameAssembler in;
  EXPECT_THROW(writer.read(in), ProtocolError);
  EXPECT_THROW(writer.write_some(frame(0, 8)), ProtocolError);
  ::munmap(p, 4096);
}

TEST(ControlRing, AttachRefusesNamesThatAreNotControlRings) {
  for (const char* name : {"/etc/passwd", "/twinstream-1-2", "/ts-ctl-1/../x", "ts-ctl-1",
                           "/ts-ctl-does-not-exist"}) {
    EXPECT_THROW(ControlRing::attach(name), Error) << name;
  }
}

TEST(ControlRing, TwoThreadsStreamFramesBothWays) {
  // The writer streams numbered frames down and the reader acknowledges each one up,
  // each thread spinning on its own side, as writer and reader processes do.
  auto reader = ControlRing::create();
  auto writer = ControlRing::attach(reader.name());
  constexpr std::uint32_t kFrames = 20000;
  // Bounded: a failed assertion in one thread must not leave the other spinning.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto in_time = [&] { return std::chrono::steady_clock::now() < until; };
  std::thread producer([&] {
    FrameAssembler acks;
    std::uint64_t acked = 0;
    for (std::uint32_t i = 0; i < kFrames; ++i) {
      auto f = frame(i, i % 97 * 13);
      std::span<const std::byte> left(f);
      while (!left.empty() && in_time()) {
        left = left.subspan(writer.write_some(left));
        writer.read(acks);
        while (auto a = acks.next()) {
          ASSERT_EQ(wire::decode_ack(a->payload).step, acked);
          ++acked;
        }
      }
    }
    while (acked < kFrames && in_time()) {
      writer.read(acks);
      while (auto a = acks.next()) {
        ASSERT_EQ(wire::decode_ack(a->payload).step, acked);
        ++acked;
      }
    }
  });
  FrameAssembler in;
  std::uint32_t got = 0;
  while (got < kFrames && in_time()) {
    reader.read(in);
    while (auto f = in.next()) {
      expect_frame(*f, got, got % 97 * 13);
      const auto ack = wire::encode(wire::Ack{got});
      while (!reader.write_all(ack) && in_time()) std::this_thread::yield();
      ++got;
    }
  }
  producer.join();
  EXPECT_EQ(got, kFrames);
}

}  // namespace
}  // namespace twinstream::net
