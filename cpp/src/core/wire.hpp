#pragma once
// Wire format: little-endian, versioned, every length checked before use. A frame is a
// 16-byte header followed by `length` payload bytes. Decoding throws ProtocolError; the
// caller closes that peer and nobody else is affected.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "twinstream/attribute.hpp"
#include "twinstream/selection.hpp"

namespace twinstream::wire {

inline constexpr std::uint32_t kMagic = 0x31535754;  // "TWS1"
inline constexpr std::uint16_t kProtocolVersion = 4;  // 4: control ring (hello, welcome, doorbell)
inline constexpr std::size_t kHeaderSize = 16;
inline constexpr std::uint32_t kMaxFrame = 16u << 20;   // metadata frames
inline constexpr std::size_t kMaxString = 64u << 10;    // names, messages
inline constexpr std::size_t kMaxCount = 1u << 20;      // list lengths
inline constexpr std::size_t kTokenSize = 32;

enum class MsgType : std::uint16_t {
  Hello = 1,
  Welcome = 2,
  Error = 3,
  Announce = 4,
  Ack = 5,
  End = 6,
  Heartbeat = 7,
  ReadRequest = 8,
  ReadReply = 9,
  Bye = 10,
  Doorbell = 11,  // same-host control ring: wakes a side asleep in poll(); no payload
};
std::string_view msg_type_name(MsgType t);

struct FrameHeader {
  std::uint16_t version = kProtocolVersion;
  MsgType type = MsgType::Heartbeat;
  std::uint32_t length = 0;
};

/// Writes the 16-byte header.
void encode_header(const FrameHeader& h, std::byte* out);
/// Validates magic, type and length (not the version: the handshake reports that with a
/// message of its own). Throws ProtocolError.
FrameHeader decode_header(std::span<const std::byte> in);

class Encoder {
 public:
  /// Reserves room for the frame header; finish() fills it in.
  explicit Encoder(MsgType type);
  void u8(std::uint8_t v);
  void u16(std::uint16_t v);
  void u32(std::uint32_t v);
  void u64(std::uint64_t v);
  void f64(double v);
  void str(std::string_view s);
  void bytes(std::span<const std::byte> b);
  void dims(const Dims& d);
  void attributes(const Attributes& a);
  /// Completed frame (header + payload).
  std::vector<std::byte>& finish();

 private:
  void raw(const void* p, std::size_t n);
  MsgType type_;
  std::vector<std::byte> buf_;
};

class Decoder {
 public:
  explicit Decoder(std::span<const std::byte> payload) : in_(payload) {}
  std::uint8_t u8();
  std::uint16_t u16();
  std::uint32_t u32();
  std::uint64_t u64();
  double f64();
  std::string str(std::size_t max = kMaxString);
  std::vector<std::byte> bytes(std::size_t max);
  /// A list length, bounded so that a hostile count cannot make us allocate.
  std::size_t count(std::size_t max = kMaxCount);
  Dims dims();
  Attributes attributes();
  /// Throws unless every byte was consumed (trailing garbage is an error too).
  void finish() const;
  std::size_t remaining() const { return in_.size() - pos_; }

 private:
  void need(std::size_t n) const;
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
};

}  // namespace twinstream::wire
