// The trailing message sections of the RMA planes (fabric, mpi): round trips, absent when
// unused (the bytes are those of a message without them), and rejected when malformed.
#include <gtest/gtest.h>

#include "core/messages.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::wire {
namespace {

std::span<const std::byte> payload(const std::vector<std::byte>& frame) {
  return std::span<const std::byte>(frame).subspan(kHeaderSize);
}

StepMeta one_segment_step() {
  StepMeta m;
  m.index = 3;
  m.segments = {{7, 4096}};
  VariableMeta v{"x", DType::Float64, {8}, {}};
  v.blocks.push_back({{0}, {8}, 7, 0, 64});
  m.variables.push_back(v);
  return m;
}

TEST(PlaneWire, HelloCarriesThePlaneOptionOnlyWhenSet) {
  Hello h;
  h.data_plane = "fabric";
  const auto plain = encode(h);
  EXPECT_EQ(decode_hello(payload(plain)).plane_option, "");
  h.plane_option = "tcp";
  const auto with = encode(h);
  EXPECT_EQ(with.size(), plain.size() + 4 + 3);
  EXPECT_EQ(decode_hello(payload(with)).plane_option, "tcp");
}

TEST(PlaneWire, WelcomeCarriesDetailAndEndpointAddresses) {
  Welcome w;
  w.reader_id = 2;
  w.data_plane = "fabric";
  const auto plain = encode(w);
  EXPECT_TRUE(decode_welcome(payload(plain)).plane_addresses.empty());
  w.plane_detail = "provider=tcp;fabric=127.0.0.1/32";
  w.plane_addresses = {std::string("\x02\x00\x1f\x90\x7f\x00\x00\x01", 8), "second"};
  const auto d = decode_welcome(payload(encode(w)));
  EXPECT_EQ(d.plane_detail, w.plane_detail);
  EXPECT_EQ(d.plane_addresses, w.plane_addresses);
}

TEST(PlaneWire, StepCarriesRemoteKeys) {
  auto m = one_segment_step();
  const auto plain = encode(m);
  EXPECT_TRUE(decode_step(payload(plain)).remote.empty());
  m.remote.push_back({7, 0, 0x7f0000001000, 0xdeadbeefcafe});
  const auto d = decode_step(payload(encode(m)));
  ASSERT_EQ(d.remote.size(), 1u);
  EXPECT_EQ(d.remote[0].id, 7u);
  EXPECT_EQ(d.remote[0].address, 0x7f0000001000u);
  EXPECT_EQ(d.remote[0].key, 0xdeadbeefcafeu);
}

TEST(PlaneWire, RemoteKeyForAnUnlistedSegmentIsRejected) {
  auto m = one_segment_step();
  m.remote.push_back({8, 0, 0, 1});
  EXPECT_THROW(decode_step(payload(encode(m))), ProtocolError);
}

TEST(PlaneWire, EmptyTrailingSectionsAreRejected) {
  // Encoders never write an empty section; zeros where one would be are garbage.
  auto h = encode(Hello{});
  h.insert(h.end(), 4, std::byte{0});
  EXPECT_THROW(decode_hello(payload(h)), ProtocolError);
  auto w = encode(Welcome{});
  w.insert(w.end(), 8, std::byte{0});
  EXPECT_THROW(decode_welcome(payload(w)), ProtocolError);
  auto s = encode(one_segment_step());
  s.insert(s.end(), 4, std::byte{0});
  EXPECT_THROW(decode_step(payload(s)), ProtocolError);
}

TEST(PlaneWire, TruncatedTrailingSectionsAreRejected) {
  auto m = one_segment_step();
  m.remote.push_back({7, 0, 1, 2});
  auto f = encode(m);
  for (std::size_t cut = 1; cut < 24; ++cut) {
    std::vector<std::byte> t(f.begin(), f.end() - static_cast<std::ptrdiff_t>(cut));
    EXPECT_THROW(decode_step(payload(t)), ProtocolError) << cut;
  }
}

}  // namespace
}  // namespace twinstream::wire
