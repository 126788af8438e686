#include "core/wire.hpp"

#include <bit>
#include <cstring>

#include "twinstream/errors.hpp"

namespace twinstream::wire {
namespace {
static_assert(std::endian::native == std::endian::little,
              "twinstream's wire format is little-endian; add byte swaps for this host");

template <typename T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
enum AttrKind : std::uint8_t { kBool = 1, kInt = 2, kFloat = 3, kString = 4, kArray = 5 };
}  // namespace

std::string_view msg_type_name(MsgType t) {
  switch (t) {
    case MsgType::Hello: return "hello";
    case MsgType::Welcome: return "welcome";
    case MsgType::Error: return "error";
    case MsgType::Announce: return "announce";
    case MsgType::Ack: return "ack";
    case MsgType::End: return "end";
    case MsgType::Heartbeat: return "heartbeat";
    case MsgType::ReadRequest: return "read-request";
    case MsgType::ReadReply: return "read-reply";
    case MsgType::Bye: return "bye";
    case MsgType::Doorbell: return "doorbell";
  }
  return "unknown";
}

void encode_header(const FrameHeader& h, std::byte* out) {
  const std::uint32_t magic = kMagic;
  const auto type = static_cast<std::uint16_t>(h.type);
  const std::uint32_t reserved = 0;
  std::memcpy(out, &magic, 4);
  std::memcpy(out + 4, &h.version, 2);
  std::memcpy(out + 6, &type, 2);
  std::memcpy(out + 8, &h.length, 4);
  std::memcpy(out + 12, &reserved, 4);
}

FrameHeader decode_header(std::span<const std::byte> in) {
  if (in.size() < kHeaderSize) throw ProtocolError("truncated frame header");
  if (load<std::uint32_t>(in.data()) != kMagic) {
    throw ProtocolError("bad magic: the peer is not speaking the twinstream protocol");
  }
  FrameHeader h;
  h.version = load<std::uint16_t>(in.data() + 4);
  const auto type = load<std::uint16_t>(in.data() + 6);
  if (type < 1 || type > static_cast<std::uint16_t>(MsgType::Doorbell)) {
    throw ProtocolError("unknown message type " + std::to_string(type));
  }
  h.type = static_cast<MsgType>(type);
  h.length = load<std::uint32_t>(in.data() + 8);
  if (h.length > kMaxFrame) {
    throw ProtocolError("frame of " + std::to_string(h.length) + " bytes exceeds the " +
                        std::to_string(kMaxFrame) + "-byte limit");
  }
  if (load<std::uint32_t>(in.data() + 12) != 0) throw ProtocolError("reserved header bits set");
  return h;
}

Encoder::Encoder(MsgType type) : type_(type) { buf_.resize(kHeaderSize); }
void Encoder::raw(const void* p, std::size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  buf_.insert(buf_.end(), b, b + n);
}
void Encoder::u8(std::uint8_t v) { raw(&v, 1); }
void Encoder::u16(std::uint16_t v) { raw(&v, 2); }
void Encoder::u32(std::uint32_t v) { raw(&v, 4); }
void Encoder::u64(std::uint64_t v) { raw(&v, 8); }
void Encoder::f64(double v) { raw(&v, 8); }
void Encoder::str(std::string_view s) {
  u32(static_cast<std::uint32_t>(s.size()));
  raw(s.data(), s.size());
}
void Encoder::bytes(std::span<const std::byte> b) {
  u64(b.size());
  raw(b.data(), b.size());
}
void Encoder::dims(const Dims& d) {
  u8(static_cast<std::uint8_t>(d.size()));
  for (auto v : d) u64(v);
}
void Encoder::attributes(const Attributes& attrs) {
  u32(static_cast<std::uint32_t>(attrs.size()));
  for (const auto& [name, value] : attrs) {
    str(name);
    std::visit(
        [this](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, bool>) {
            u8(kBool);
            u8(v ? 1 : 0);
          } else if constexpr (std::is_same_v<T, std::int64_t>) {
            u8(kInt);
            u64(static_cast<std::uint64_t>(v));
          } else if constexpr (std::is_same_v<T, double>) {
            u8(kFloat);
            f64(v);
          } else if constexpr (std::is_same_v<T, std::string>) {
            u8(kString);
            str(v);
          } else {
            u8(kArray);
            u8(static_cast<std::uint8_t>(v.dtype));
            dims(v.shape);
            bytes(v.bytes);
          }
        },
        value);
  }
}
std::vector<std::byte>& Encoder::finish() {
  const auto len = buf_.size() - kHeaderSize;
  if (len > kMaxFrame) {
    throw InvalidArgument("message of " + std::to_string(len) +
                          " bytes is larger than a twinstream frame may be (" +
                          std::to_string(kMaxFrame) + "); use fewer blocks or attributes");
  }
  encode_header({kProtocolVersion, type_, static_cast<std::uint32_t>(len)}, buf_.data());
  return buf_;
}

void Decoder::need(std::size_t n) const {
  if (n > in_.size() - pos_) {
    throw ProtocolError("truncated message: needed " + std::to_string(n) + " bytes at offset " +
                        std::to_string(pos_) + ", have " + std::to_string(in_.size() - pos_));
  }
}
std::uint8_t Decoder::u8() {
  need(1);
  return load<std::uint8_t>(in_.data() + pos_++);
}
std::uint16_t Decoder::u16() {
  need(2);
  auto v = load<std::uint16_t>(in_.data() + pos_);
  pos_ += 2;
  return v;
}
std::uint32_t Decoder::u32() {
  need(4);
  auto v = load<std::uint32_t>(in_.data() + pos_);
  pos_ += 4;
  return v;
}
std::uint64_t Decoder::u64() {
  need(8);
  auto v = load<std::uint64_t>(in_.data() + pos_);
  pos_ += 8;
  return v;
}
double Decoder::f64() {
  need(8);
  auto v = load<double>(in_.data() + pos_);
  pos_ += 8;
  return v;
}
std::string Decoder::str(std::size_t max) {
  const auto n = u32();
  if (n > max) throw ProtocolError("string of " + std::to_string(n) + " bytes exceeds limit");
  need(n);
  std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
  pos_ += n;
  return s;
}
std::vector<std::byte> Decoder::bytes(std::size_t max) {
  const auto n = u64();
  if (n > max) throw ProtocolError("byte string of " + std::to_string(n) + " exceeds limit");
  need(n);
  std::vector<std::byte> b(in_.begin() + pos_, in_.begin() + pos_ + n);
  pos_ += n;
  return b;
}
std::size_t Decoder::count(std::size_t max) {
  const auto n = u32();
  if (n > max) throw ProtocolError("list of " + std::to_string(n) + " entries exceeds limit");
  return n;
}
Dims Decoder::dims() {
  const auto rank = u8();
  if (rank > kMaxRank) throw ProtocolError("rank " + std::to_string(rank) + " exceeds 32");
  Dims d(rank);
  for (auto& v : d) v = u64();
  return d;
}
Attributes Decoder::attributes() {
  Attributes out;
  const auto n = count(1u << 16);
  for (std::size_t i = 0; i < n; ++i) {
    auto name = str();
    const auto kind = u8();
    switch (kind) {
      case kBool: {
        const auto b = u8();
        if (b > 1) throw ProtocolError("bool attribute '" + name + "' is neither 0 nor 1");
        out[name] = b == 1;
        break;
      }
      case kInt: out[name] = static_cast<std::int64_t>(u64()); break;
      case kFloat: out[name] = f64(); break;
      case kString: out[name] = str(kMaxAttributeBytes); break;
      case kArray: {
        ArrayAttribute a;
        const auto dt = u8();
        if (!dtype_valid(dt)) throw ProtocolError("attribute '" + name + "' has a bad dtype");
        a.dtype = static_cast<DType>(dt);
        a.shape = dims();
        a.bytes = bytes(kMaxAttributeBytes);
        std::uint64_t n_el = 1;
        for (auto d : a.shape) {
          if (d != 0 && n_el > kMaxAttributeBytes / d) {
            throw ProtocolError("attribute '" + name + "' shape is too large");
          }
          n_el *= d;
        }
        if (n_el * dtype_size(a.dtype) != a.bytes.size()) {
          throw ProtocolError("attribute '" + name + "' size does not match its shape");
        }
        out[name] = std::move(a);
        break;
      }
      default: throw ProtocolError("attribute '" + name + "' has unknown kind");
    }
  }
  return out;
}
void Decoder::finish() const {
  if (pos_ != in_.size()) {
    throw ProtocolError(std::to_string(in_.size() - pos_) + " unexpected trailing bytes");
  }
}

}  // namespace twinstream::wire
