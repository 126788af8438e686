// Wire format and message codecs: round trips of every message, and rejection (always
// with ProtocolError, never a crash, another exception or a huge allocation) of every
// kind of malformed input, plus a bounded deterministic fuzz loop.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <new>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include "core/messages.hpp"
#include "core/wire.hpp"
#include "twinstream/attribute.hpp"
#include "twinstream/dtype.hpp"
#include "twinstream/errors.hpp"

// ---------------------------------------------------------------------------------------
// Allocation watch: the decoders must never allocate in proportion to a count or length
// field they have not yet checked against the payload. Replacing the global operator new
// lets the tests measure the largest single allocation made while decoding.
namespace {
std::atomic<std::size_t> g_largest_alloc{0};
std::atomic<bool> g_watching{false};
void note_alloc(std::size_t n) {
  if (!g_watching.load(std::memory_order_relaxed)) return;
  auto cur = g_largest_alloc.load(std::memory_order_relaxed);
  while (n > cur && !g_largest_alloc.compare_exchange_weak(cur, n)) {
  }
}
}  // namespace

// GCC's -Wmismatched-new-delete does not know that these replace the global operators.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  note_alloc(n);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  note_alloc(n);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace twinstream::wire {
namespace {

using Bytes = std::vector<std::byte>;

/// Records the largest allocation made during its lifetime.
class AllocationWatch {
 public:
  AllocationWatch() {
    g_largest_alloc = 0;
    g_watching = true;
  }
  ~AllocationWatch() { g_watching = false; }
  std::size_t largest() const { return g_largest_alloc.load(); }
};

// ---------------------------------------------------------------------------------------
// Helpers

/// Payload of a complete frame, checking that its header is consistent.
Bytes payload_of(const Bytes& frame, MsgType type) {
  EXPECT_GE(frame.size(), kHeaderSize);
  const auto h = decode_header(frame);
  EXPECT_EQ(h.type, type);
  EXPECT_EQ(h.version, kProtocolVersion);
  EXPECT_EQ(h.length, frame.size() - kHeaderSize);
  return Bytes(frame.begin() + static_cast<std::ptrdiff_t>(kHeaderSize), frame.end());
}
/// Payload written so far by a hand-driven Encoder.
Bytes payload_of(Encoder& e) {
  const auto& f = e.finish();
  return Bytes(f.begin() + static_cast<std::ptrdiff_t>(kHeaderSize), f.end());
}

std::string hex(std::span<const std::byte> b) {
  std::ostringstream os;
  static const char* digits = "0123456789abcdef";
  for (auto x : b) {
    const auto v = static_cast<unsigned>(x);
    os << digits[v >> 4] << digits[v & 15];
  }
  return os.str();
}

void put_u32(Bytes& b, std::size_t at, std::uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
void put_u64(Bytes& b, std::size_t at, std::uint64_t v) { std::memcpy(b.data() + at, &v, 8); }

template <typename T>
Bytes raw_bytes(const std::vector<T>& v) {
  Bytes b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

/// Decodes `payload` as a message of `type`, re-encodes the result and returns that
/// payload. Throws whatever the decoder throws.
Bytes decode_reencode(MsgType type, std::span<const std::byte> p) {
  switch (type) {
    case MsgType::Hello: return payload_of(encode(decode_hello(p)), type);
    case MsgType::Welcome: return payload_of(encode(decode_welcome(p)), type);
    case MsgType::Error: return payload_of(encode(decode_error(p)), type);
    case MsgType::Announce: return payload_of(encode(decode_step(p)), type);
    case MsgType::Ack: return payload_of(encode(decode_ack(p)), type);
    case MsgType::ReadRequest: return payload_of(encode(decode_read_request(p)), type);
    case MsgType::ReadReply: return payload_of(encode(decode_read_reply(p)), type);
    default: break;
  }
  ADD_FAILURE() << "no decoder for " << msg_type_name(type);
  return {};
}

void expect_blocks_eq(const BlockMeta& a, const BlockMeta& b) {
  EXPECT_EQ(a.start, b.start);
  EXPECT_EQ(a.count, b.count);
  EXPECT_EQ(a.segment, b.segment);
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.nbytes, b.nbytes);
}

void expect_steps_eq(const StepMeta& a, const StepMeta& b) {
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.dropped, b.dropped);
  ASSERT_EQ(a.segments.size(), b.segments.size());
  for (std::size_t i = 0; i < a.segments.size(); ++i) {
    EXPECT_EQ(a.segments[i].id, b.segments[i].id);
    EXPECT_EQ(a.segments[i].size, b.segments[i].size);
  }
  EXPECT_EQ(a.retired, b.retired);
  ASSERT_EQ(a.variables.size(), b.variables.size());
  for (std::size_t i = 0; i < a.variables.size(); ++i) {
    const auto& va = a.variables[i];
    const auto& vb = b.variables[i];
    SCOPED_TRACE("variable " + va.name);
    EXPECT_EQ(va.name, vb.name);
    EXPECT_EQ(va.dtype, vb.dtype);
    EXPECT_EQ(va.kind, vb.kind);
    EXPECT_EQ(va.shape, vb.shape);
    ASSERT_EQ(va.blocks.size(), vb.blocks.size());
    for (std::size_t j = 0; j < va.blocks.size(); ++j) expect_blocks_eq(va.blocks[j], vb.blocks[j]);
  }
  EXPECT_EQ(a.attributes, b.attributes);
  EXPECT_EQ(a.stream_attributes.has_value(), b.stream_attributes.has_value());
  if (a.stream_attributes && b.stream_attributes) {
    EXPECT_EQ(*a.stream_attributes, *b.stream_attributes);
  }
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.source, b.source);
}

std::uint64_t elements(const Dims& d) {
  std::uint64_t n = 1;
  for (auto v : d) n *= v;
  return n;
}

BlockMeta block(Dims start, Dims count, std::uint32_t seg, std::uint64_t off, DType dt) {
  BlockMeta b;
  b.start = std::move(start);
  b.count = std::move(count);
  b.segment = seg;
  b.offset = off;
  b.nbytes = elements(b.count) * dtype_size(dt);  // what the decoder must derive
  return b;
}

Attributes all_kinds_attributes() {
  Attributes a;
  a["flag_true"] = true;
  a["flag_false"] = false;
  a["int_zero"] = std::int64_t{0};
  a["int_neg"] = std::int64_t{-1};
  a["int_min"] = std::numeric_limits<std::int64_t>::min();
  a["int_max"] = std::numeric_limits<std::int64_t>::max();
  a["dbl"] = 3.25;
  a["dbl_negzero"] = -0.0;
  a["dbl_inf"] = -std::numeric_limits<double>::infinity();
  a["dbl_tiny"] = std::numeric_limits<double>::denorm_min();
  a["str_empty"] = std::string();
  a["str"] = std::string("hello, w\xc3\xb6rld");
  a["str_nul"] = std::string("a\0b", 3);
  a[""] = std::string("empty name");
  ArrayAttribute f64;
  f64.dtype = DType::Float64;
  f64.shape = {2, 3};
  f64.bytes = raw_bytes(std::vector<double>{1, 2, 3, 4, 5, 6});
  a["arr_f64"] = f64;
  ArrayAttribute scalar;
  scalar.dtype = DType::Int32;
  scalar.shape = {};
  scalar.bytes = raw_bytes(std::vector<std::int32_t>{42});
  a["arr_scalar"] = scalar;
  ArrayAttribute empty;
  empty.dtype = DType::UInt16;
  empty.shape = {0, 4};
  a["arr_empty"] = empty;
  ArrayAttribute c64;
  c64.dtype = DType::Complex64;
  c64.shape = {2};
  c64.bytes = raw_bytes(std::vector<float>{1.f, -1.f, 2.f, -2.f});
  a["arr_c64"] = c64;
  ArrayAttribute b3;
  b3.dtype = DType::Bool;
  b3.shape = {1, 1, 3};
  b3.bytes = raw_bytes(std::vector<std::uint8_t>{1, 0, 1});
  a["arr_bool3d"] = b3;
  return a;
}

/// A step exercising ranks 0..3, several blocks per variable, several segments and every
/// dtype.
StepMeta rich_step() {
  StepMeta m;
  m.index = 12345678901ull;
  m.dropped = 3;
  m.segments = {{0, 1u << 20}, {1, 4096}, {7, 96}, {0xFFFFFFFFu, 1ull << 40}};
  m.retired = {2, 3, 0xFFFFFFFFu - 1};
  {
    VariableMeta v{"scalar", DType::Float64, {}, {}};
    v.blocks.push_back(block({}, {}, 7, 88, v.dtype));  // ends exactly at segment end
    m.variables.push_back(v);
  }
  {
    VariableMeta v{"vec", DType::Int32, {10}, {}};
    v.blocks.push_back(block({0}, {4}, 0, 0, v.dtype));
    v.blocks.push_back(block({4}, {6}, 1, 16, v.dtype));
    v.blocks.push_back(block({10}, {0}, 1, 4096, v.dtype));  // empty block at the end
    m.variables.push_back(v);
  }
  {
    VariableMeta v{"mat", DType::Complex128, {4, 6}, {}};
    v.blocks.push_back(block({0, 0}, {2, 6}, 0, 1024, v.dtype));
    v.blocks.push_back(block({2, 0}, {2, 3}, 0, 4096, v.dtype));
    v.blocks.push_back(block({2, 3}, {2, 3}, 0xFFFFFFFFu, 1ull << 39, v.dtype));
    m.variables.push_back(v);
  }
  {
    VariableMeta v{"cube", DType::UInt8, {2, 3, 4}, {}};
    v.blocks.push_back(block({0, 0, 0}, {2, 3, 4}, 7, 0, v.dtype));
    m.variables.push_back(v);
  }
  {
    VariableMeta v{"zero_extent", DType::Float32, {0, 5}, {}};
    v.blocks.push_back(block({0, 0}, {0, 5}, 1, 0, v.dtype));
    m.variables.push_back(v);
  }
  m.variables.push_back(VariableMeta{"no_blocks", DType::Bool, {3}, {}});
  {
    VariableMeta v{"atoms", DType::Float32, {5, 3}, {}, ArrayKind::Joined};
    v.blocks.push_back(block({0, 0}, {2, 3}, 1, 0, v.dtype));
    v.blocks.push_back(block({2, 0}, {0, 3}, 1, 64, v.dtype));  // a rank with no atoms
    v.blocks.push_back(block({2, 0}, {3, 3}, 1, 64, v.dtype));
    m.variables.push_back(v);
  }
  {
    VariableMeta v{"patches", DType::Int16, {4, 7}, {}, ArrayKind::Local};
    v.blocks.push_back(block({0, 0}, {4, 2}, 1, 128, v.dtype));
    v.blocks.push_back(block({0, 0}, {1, 7}, 1, 256, v.dtype));
    m.variables.push_back(v);
  }
  {
    VariableMeta v{"rank32", DType::Int8, Dims(kMaxRank, 1), {}};
    v.blocks.push_back(block(Dims(kMaxRank, 0), Dims(kMaxRank, 1), 1, 4095, v.dtype));
    m.variables.push_back(v);
  }
  for (std::uint8_t raw = 1; dtype_valid(raw); ++raw) {
    const auto dt = static_cast<DType>(raw);
    VariableMeta v{"dtype_" + std::string(dtype_name(dt)), dt, {5}, {}};
    v.blocks.push_back(block({1}, {3}, 0, 8192 + 64 * raw, dt));
    m.variables.push_back(v);
  }
  m.attributes = all_kinds_attributes();
  Attributes stream;
  stream["units"] = std::string("m/s");
  stream["version"] = std::int64_t{2};
  ArrayAttribute bounds;
  bounds.dtype = DType::Float32;
  bounds.shape = {2, 2};
  bounds.bytes = raw_bytes(std::vector<float>{0, 1, 0, 1});
  stream["bounds"] = bounds;
  m.stream_attributes = stream;
  m.flags = kRedelivered | kBatch;
  m.source = "run-07";
  return m;
}

StepMeta minimal_step() {
  StepMeta m;
  m.index = 0;
  return m;
}

StepMeta step_without_stream_attributes() {
  StepMeta m;
  m.index = 1;
  m.segments = {{3, 800}};
  VariableMeta v{"t", DType::Float64, {10, 10}, {}};
  v.blocks.push_back(block({0, 0}, {10, 10}, 3, 0, v.dtype));
  m.variables.push_back(v);
  m.attributes["time"] = 0.5;
  return m;
}

StepMeta step_with_empty_stream_attributes() {
  StepMeta m = step_without_stream_attributes();
  m.stream_attributes = Attributes{};
  return m;
}

Hello sample_hello() {
  Hello h;
  for (std::size_t i = 0; i < h.token.size(); ++i) h.token[i] = static_cast<std::uint8_t>(i * 7 + 1);
  h.role = Role::Data;
  h.reader_id = 0x0123456789abcdefull;
  h.group = "analysis";
  h.policy = "latest";
  h.data_plane = "shm";
  h.host_id = "node17:5e1b4d6f-boot";
  h.pid = 4242;
  h.prefetch = 7;  // not the default, so the round trip shows
  h.latest = true;
  h.shuffle.window = 9;
  h.shuffle.batch_size = 17;
  h.shuffle.seed = 0xfeedfacecafebeefull;
  h.shuffle.passes = 3;
  h.shuffle.variables = {"x", "labels"};
  return h;
}

Welcome sample_welcome() {
  Welcome w;
  w.reader_id = 9;
  w.data_plane = "tcp";
  w.shm_prefix = "/tws-1234-";
  w.writer_key = 0xdeadbeefcafef00dull;
  w.writer_pid = 77;
  w.group = "g-autogen-1";
  w.first_step = 41;
  return w;
}

ReadRequest sample_read_request() {
  ReadRequest r;
  r.step = 55;
  r.ranges = {{0, 0, 100}, {1, 1ull << 40, 1}, {0xFFFFFFFFu, UINT64_MAX, UINT64_MAX}};
  return r;
}

struct Sample {
  std::string name;
  MsgType type;
  Bytes payload;
};

/// One valid payload of every message kind (several for StepMeta).
std::vector<Sample> valid_samples() {
  std::vector<Sample> s;
  s.push_back({"hello", MsgType::Hello, payload_of(encode(sample_hello()), MsgType::Hello)});
  s.push_back({"hello_default", MsgType::Hello, payload_of(encode(Hello{}), MsgType::Hello)});
  s.push_back({"welcome", MsgType::Welcome, payload_of(encode(sample_welcome()), MsgType::Welcome)});
  s.push_back({"error", MsgType::Error,
               payload_of(encode(ErrorMsg{kBadToken, "bad token"}), MsgType::Error)});
  s.push_back({"step_rich", MsgType::Announce, payload_of(encode(rich_step()), MsgType::Announce)});
  s.push_back(
      {"step_minimal", MsgType::Announce, payload_of(encode(minimal_step()), MsgType::Announce)});
  s.push_back({"step_no_stream", MsgType::Announce,
               payload_of(encode(step_without_stream_attributes()), MsgType::Announce)});
  s.push_back({"step_empty_stream", MsgType::Announce,
               payload_of(encode(step_with_empty_stream_attributes()), MsgType::Announce)});
  s.push_back({"ack", MsgType::Ack, payload_of(encode(Ack{17}), MsgType::Ack)});
  s.push_back({"read_request", MsgType::ReadRequest,
               payload_of(encode(sample_read_request()), MsgType::ReadRequest)});
  s.push_back({"read_request_empty", MsgType::ReadRequest,
               payload_of(encode(ReadRequest{3, {}}), MsgType::ReadRequest)});
  s.push_back({"read_reply", MsgType::ReadReply,
               payload_of(encode(ReadReply{5, 1ull << 33}), MsgType::ReadReply)});
  return s;
}

// ---------------------------------------------------------------------------------------
// Hand-built StepMeta payloads: every field can be set to a value encode() would never
// produce, so the decoder's checks can be reached one at a time.

struct RawBlock {
  Dims start;
  Dims count;
  std::uint32_t segment = 0;
  std::uint64_t offset = 0;
};
struct RawVar {
  std::string name = "v";
  std::uint8_t dtype = static_cast<std::uint8_t>(DType::Float64);
  std::uint8_t kind = 0;  // ArrayKind
  Dims shape{10};
  std::vector<RawBlock> blocks{{{0}, {10}, 0, 0}};
  std::optional<std::uint32_t> nblocks;  // overrides the block count field
};
using Writer = std::function<void(Encoder&)>;
struct RawStep {
  std::uint64_t index = 1;
  std::uint64_t dropped = 0;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> segments{{0, 1024}};
  std::optional<std::uint32_t> nsegments;
  std::vector<std::uint32_t> retired;
  std::optional<std::uint32_t> nretired;
  std::vector<RawVar> variables{RawVar{}};
  std::optional<std::uint32_t> nvariables;
  Writer attributes = [](Encoder& e) { e.u32(0); };
  std::uint8_t has_stream = 0;
  Writer stream_attributes = [](Encoder& e) { e.u32(0); };
  std::uint32_t flags = 0;
  std::string source;
  Bytes trailing;

  Bytes payload() const {
    Encoder e(MsgType::Announce);
    e.u64(index);
    e.u64(dropped);
    e.u32(nsegments.value_or(static_cast<std::uint32_t>(segments.size())));
    for (const auto& [id, size] : segments) {
      e.u32(id);
      e.u64(size);
    }
    e.u32(nretired.value_or(static_cast<std::uint32_t>(retired.size())));
    for (auto id : retired) e.u32(id);
    e.u32(nvariables.value_or(static_cast<std::uint32_t>(variables.size())));
    for (const auto& v : variables) {
      e.str(v.name);
      e.u8(v.dtype);
      e.u8(v.kind);
      e.dims(v.shape);
      e.u32(v.nblocks.value_or(static_cast<std::uint32_t>(v.blocks.size())));
      for (const auto& b : v.blocks) {
        e.dims(b.start);
        e.dims(b.count);
        e.u32(b.segment);
        e.u64(b.offset);
      }
    }
    attributes(e);
    e.u8(has_stream);
    if (has_stream != 0) stream_attributes(e);
    e.u32(flags);
    e.str(source);
    if (!trailing.empty()) e.bytes(trailing);  // u64 length + bytes: plainly extra
    return payload_of(e);
  }
};

/// Attribute list of one attribute named `name` whose kind byte and value `body` writes.
Writer one_attribute(std::string name, Writer body) {
  return [name = std::move(name), body = std::move(body)](Encoder& e) {
    e.u32(1);
    e.str(name);
    body(e);
  };
}
/// Body of an array attribute with the given raw fields.
Writer array_body(std::uint8_t dtype, Dims shape, std::size_t nbytes) {
  return [=](Encoder& e) {
    e.u8(5);  // array kind
    e.u8(dtype);
    e.dims(shape);
    e.bytes(Bytes(nbytes, std::byte{0x5a}));
  };
}

/// Expects decode_step to throw ProtocolError on `p` and to allocate little doing it.
void expect_step_rejected(const Bytes& p, std::size_t alloc_limit = 1u << 20) {
  AllocationWatch watch;
  EXPECT_THROW(decode_step(p), ProtocolError) << "payload " << hex(p).substr(0, 400);
  EXPECT_LE(watch.largest(), alloc_limit);
}

TEST(WireAllocationWatch, SeesLargeAllocations) {
  // Guards the guard: the rejection tests rely on the watch noticing big allocations.
  AllocationWatch watch;
  std::vector<char> big(3u << 20, 'x');
  EXPECT_EQ(big[12345], 'x');
  EXPECT_GE(watch.largest(), 3u << 20);
}

// =======================================================================================
// Frame header

TEST(WireHeader, RoundTripsEveryType) {
  for (std::uint16_t t = 1; t <= static_cast<std::uint16_t>(MsgType::Bye); ++t) {
    for (std::uint32_t len : {0u, 1u, 1000u, kMaxFrame}) {
      std::array<std::byte, kHeaderSize> buf{};
      encode_header({kProtocolVersion, static_cast<MsgType>(t), len}, buf.data());
      const auto h = decode_header(buf);
      EXPECT_EQ(h.version, kProtocolVersion);
      EXPECT_EQ(static_cast<std::uint16_t>(h.type), t);
      EXPECT_EQ(h.length, len);
    }
  }
}

TEST(WireHeader, LayoutIsLittleEndianWithMagicFirst) {
  std::array<std::byte, kHeaderSize> buf{};
  encode_header({kProtocolVersion, MsgType::Ack, 0x01020304}, buf.data());
  const std::array<unsigned, kHeaderSize> want{'T', 'W', 'S', '1', kProtocolVersion, 0, 5, 0,
                                               4,   3,   2,   1,   0, 0, 0, 0};
  for (std::size_t i = 0; i < kHeaderSize; ++i) {
    EXPECT_EQ(static_cast<unsigned>(buf[i]), want[i]) << "byte " << i;
  }
}

TEST(WireHeader, VersionIsReportedNotRejected) {
  std::array<std::byte, kHeaderSize> buf{};
  encode_header({7, MsgType::Hello, 3}, buf.data());
  EXPECT_EQ(decode_header(buf).version, 7);
}

TEST(WireHeader, TruncatedHeaderRejected) {
  std::array<std::byte, kHeaderSize> buf{};
  encode_header({kProtocolVersion, MsgType::Heartbeat, 0}, buf.data());
  for (std::size_t n = 0; n < kHeaderSize; ++n) {
    EXPECT_THROW(decode_header(std::span<const std::byte>(buf.data(), n)), ProtocolError) << n;
  }
}

TEST(WireHeader, BadMagicRejected) {
  for (std::size_t i = 0; i < 4; ++i) {
    for (unsigned x : {0x00u, 0x01u, 0x80u, 0xffu}) {
      std::array<std::byte, kHeaderSize> buf{};
      encode_header({kProtocolVersion, MsgType::Ack, 8}, buf.data());
      buf[i] ^= std::byte(x == 0 ? 0x20 : x);
      EXPECT_THROW(decode_header(buf), ProtocolError) << "byte " << i;
    }
  }
  // Plausible foreign protocols.
  for (const char* text : {"GET / HTTP/1.1\r\n", "SSH-2.0-OpenSSH_", "TWS2............"}) {
    std::array<std::byte, kHeaderSize> buf{};
    std::memcpy(buf.data(), text, kHeaderSize);
    EXPECT_THROW(decode_header(buf), ProtocolError) << text;
  }
}

TEST(WireHeader, UnknownTypeRejected) {
  for (std::uint16_t t : {std::uint16_t{0}, std::uint16_t{12}, std::uint16_t{13},
                          std::uint16_t{0x100}, std::uint16_t{0xffff}}) {
    std::array<std::byte, kHeaderSize> buf{};
    encode_header({kProtocolVersion, MsgType::Ack, 8}, buf.data());
    std::memcpy(buf.data() + 6, &t, 2);
    EXPECT_THROW(decode_header(buf), ProtocolError) << "type " << t;
  }
}

TEST(WireHeader, AbsurdLengthRejected) {
  for (std::uint32_t len : {kMaxFrame + 1, kMaxFrame * 2, 0x80000000u, 0xffffffffu}) {
    std::array<std::byte, kHeaderSize> buf{};
    encode_header({kProtocolVersion, MsgType::Announce, len}, buf.data());
    EXPECT_THROW(decode_header(buf), ProtocolError) << "length " << len;
  }
}

TEST(WireHeader, ReservedBitsRejected) {
  for (std::size_t i = 12; i < 16; ++i) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      std::array<std::byte, kHeaderSize> buf{};
      encode_header({kProtocolVersion, MsgType::Ack, 8}, buf.data());
      buf[i] = std::byte(1u << bit);
      EXPECT_THROW(decode_header(buf), ProtocolError) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(WireHeader, MessageTypeNames) {
  EXPECT_EQ(msg_type_name(MsgType::Hello), "hello");
  EXPECT_EQ(msg_type_name(MsgType::Announce), "announce");
  EXPECT_EQ(msg_type_name(MsgType::ReadReply), "read-reply");
  EXPECT_EQ(msg_type_name(MsgType::Bye), "bye");
  EXPECT_EQ(msg_type_name(static_cast<MsgType>(99)), "unknown");
  for (std::uint16_t t = 1; t <= static_cast<std::uint16_t>(MsgType::Bye); ++t) {
    EXPECT_NE(msg_type_name(static_cast<MsgType>(t)), "unknown") << t;
  }
}

TEST(WireHeader, EmptyFrames) {
  for (auto t : {MsgType::End, MsgType::Heartbeat, MsgType::Bye}) {
    const auto frame = encode_empty(t);
    ASSERT_EQ(frame.size(), kHeaderSize);
    const auto h = decode_header(frame);
    EXPECT_EQ(h.type, t);
    EXPECT_EQ(h.length, 0u);
  }
}

TEST(WireHeader, EncoderRefusesOversizedMessage) {
  ErrorMsg m{kBadRequest, std::string(kMaxFrame, 'x')};  // + 8 bytes of fields: too big
  EXPECT_THROW(encode(m), InvalidArgument);
}

// =======================================================================================
// Decoder primitives

TEST(WireDecoder, PrimitivesRoundTrip) {
  Encoder e(MsgType::Heartbeat);
  e.u8(0xab);
  e.u16(0xbeef);
  e.u32(0xdeadbeef);
  e.u64(0x0123456789abcdefull);
  e.f64(-2.5);
  e.str("name");
  e.bytes(Bytes{std::byte{1}, std::byte{2}});
  e.dims({3, 4, 5});
  e.dims({});
  const auto p = payload_of(e);
  Decoder d(p);
  EXPECT_EQ(d.u8(), 0xab);
  EXPECT_EQ(d.u16(), 0xbeef);
  EXPECT_EQ(d.u32(), 0xdeadbeefu);
  EXPECT_EQ(d.u64(), 0x0123456789abcdefull);
  EXPECT_EQ(d.f64(), -2.5);
  EXPECT_EQ(d.str(), "name");
  EXPECT_EQ(d.bytes(2), (Bytes{std::byte{1}, std::byte{2}}));
  EXPECT_EQ(d.dims(), (Dims{3, 4, 5}));
  EXPECT_EQ(d.dims(), Dims{});
  EXPECT_EQ(d.remaining(), 0u);
  EXPECT_NO_THROW(d.finish());
  EXPECT_THROW(d.u8(), ProtocolError);
}

TEST(WireDecoder, ReadsPastEndRejected) {
  const Bytes three(3);
  EXPECT_THROW(Decoder(three).u32(), ProtocolError);
  EXPECT_THROW(Decoder(three).u64(), ProtocolError);
  EXPECT_THROW(Decoder(three).f64(), ProtocolError);
  EXPECT_THROW(Decoder(Bytes(1)).u16(), ProtocolError);
  EXPECT_THROW(Decoder(Bytes{}).u8(), ProtocolError);
}

TEST(WireDecoder, HugeLengthFieldsRejectedWithoutAllocating) {
  AllocationWatch watch;
  {
    Bytes p(4 + 8, std::byte{'x'});
    put_u32(p, 0, 0xffffffffu);
    EXPECT_THROW(Decoder(p).str(), ProtocolError);
    EXPECT_THROW(Decoder(p).str(std::numeric_limits<std::size_t>::max()), ProtocolError);
  }
  {
    Bytes p(8 + 8, std::byte{'x'});
    put_u64(p, 0, 1ull << 63);
    EXPECT_THROW(Decoder(p).bytes(kMaxAttributeBytes), ProtocolError);
    EXPECT_THROW(Decoder(p).bytes(std::numeric_limits<std::size_t>::max()), ProtocolError);
    put_u64(p, 0, UINT64_MAX);
    EXPECT_THROW(Decoder(p).bytes(std::numeric_limits<std::size_t>::max()), ProtocolError);
  }
  {
    Bytes p(4);
    put_u32(p, 0, 0x80000000u);
    EXPECT_THROW(Decoder(p).count(), ProtocolError);
    put_u32(p, 0, static_cast<std::uint32_t>(kMaxCount) + 1);
    EXPECT_THROW(Decoder(p).count(), ProtocolError);
    put_u32(p, 0, static_cast<std::uint32_t>(kMaxCount));
    EXPECT_EQ(Decoder(p).count(), kMaxCount);
    put_u32(p, 0, 11);
    EXPECT_THROW(Decoder(p).count(10), ProtocolError);
  }
  EXPECT_LE(watch.largest(), 4096u);
}

TEST(WireDecoder, StringLimits) {
  Encoder e(MsgType::Heartbeat);
  e.str(std::string(100, 'a'));
  const auto p = payload_of(e);
  EXPECT_EQ(Decoder(p).str(100).size(), 100u);
  EXPECT_THROW(Decoder(p).str(99), ProtocolError);
  Encoder big(MsgType::Heartbeat);
  big.str(std::string(kMaxString + 1, 'b'));
  EXPECT_THROW(Decoder(payload_of(big)).str(), ProtocolError);
}

TEST(WireDecoder, RankAbove32Rejected) {
  for (std::size_t rank : {kMaxRank + 1, std::size_t{100}, std::size_t{255}}) {
    Encoder e(MsgType::Heartbeat);
    e.dims(Dims(rank, 1));
    EXPECT_THROW(Decoder(payload_of(e)).dims(), ProtocolError) << rank;
  }
  Encoder ok(MsgType::Heartbeat);
  ok.dims(Dims(kMaxRank, 2));
  EXPECT_EQ(Decoder(payload_of(ok)).dims(), Dims(kMaxRank, 2));
}

TEST(WireDecoder, TrailingBytesRejected) {
  const Bytes p(5);
  Decoder d(p);
  d.u32();
  EXPECT_THROW(d.finish(), ProtocolError);
}

// =======================================================================================
// Round trips

TEST(WireRoundTrip, Hello) {
  const auto h = sample_hello();
  const auto frame = encode(h);
  const auto got = decode_hello(payload_of(frame, MsgType::Hello));
  EXPECT_EQ(got.version, h.version);
  EXPECT_EQ(got.token, h.token);
  EXPECT_EQ(got.role, h.role);
  EXPECT_EQ(got.reader_id, h.reader_id);
  EXPECT_EQ(got.group, h.group);
  EXPECT_EQ(got.policy, h.policy);
  EXPECT_EQ(got.data_plane, h.data_plane);
  EXPECT_EQ(got.host_id, h.host_id);
  EXPECT_EQ(got.pid, h.pid);
  EXPECT_EQ(got.prefetch, h.prefetch);
  EXPECT_EQ(got.latest, h.latest);
  EXPECT_EQ(got.shuffle, h.shuffle);

  Hello limits = h;
  limits.role = Role::Control;
  limits.group = std::string(256, 'g');
  limits.policy = std::string(64, 'p');
  limits.data_plane = std::string(64, 'd');
  limits.host_id = std::string(512, 'h');
  const auto got2 = decode_hello(payload_of(encode(limits), MsgType::Hello));
  EXPECT_EQ(got2.role, Role::Control);
  EXPECT_EQ(got2.group, limits.group);
  EXPECT_EQ(got2.host_id, limits.host_id);
}

TEST(WireRoundTrip, HelloWriterOpsIsTheLastTrailingField) {
  Hello h = sample_hello();
  const auto plain = encode(h);
  h.writer_ops = "x=cast(to=float16);y=log1p|cast(to=float32)";
  // Without a plane option: an empty one goes first, so that the writer_ops is the field
  // after it (4 bytes of length), then the writer_ops string.
  const auto with = encode(h);
  EXPECT_EQ(with.size(), plain.size() + 4 + 4 + h.writer_ops.size());
  auto got = decode_hello(payload_of(with, MsgType::Hello));
  EXPECT_EQ(got.plane_option, "");
  EXPECT_EQ(got.writer_ops, h.writer_ops);
  EXPECT_EQ(got.shuffle, h.shuffle);
  h.plane_option = "tcp";
  got = decode_hello(payload_of(encode(h), MsgType::Hello));
  EXPECT_EQ(got.plane_option, "tcp");
  EXPECT_EQ(got.writer_ops, h.writer_ops);
  // A hello without it decodes as before.
  EXPECT_EQ(decode_hello(payload_of(plain, MsgType::Hello)).writer_ops, "");
}

TEST(WireReject, HelloWriterOpsTruncatedOrEmpty) {
  Hello h = sample_hello();
  const auto base = payload_of(encode(h), MsgType::Hello).size();
  h.writer_ops = "x=cast(to=float16)";
  const Bytes full = payload_of(encode(h), MsgType::Hello);
  // Every cut inside the trailing fields is refused, except the one right after the
  // fixed fields (a hello without trailing fields).
  for (std::size_t n = base; n < full.size(); ++n) {
    const std::span<const std::byte> prefix(full.data(), n);
    if (n == base) {
      EXPECT_EQ(decode_hello(prefix).writer_ops, "");
    } else {
      EXPECT_THROW(decode_hello(prefix), ProtocolError) << "prefix of " << n << " bytes";
    }
  }
  // An empty plane option followed by nothing, or by an empty writer_ops, is not a hello
  // an encoder makes.
  Bytes empty_option(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(base));
  Bytes len0(4, std::byte{0});
  empty_option.insert(empty_option.end(), len0.begin(), len0.end());
  EXPECT_THROW(decode_hello(empty_option), ProtocolError);
  empty_option.insert(empty_option.end(), len0.begin(), len0.end());
  EXPECT_THROW(decode_hello(empty_option), ProtocolError);
  // Over its limit.
  h.writer_ops = std::string(kMaxWriterOpsBytes + 1, 'x');
  EXPECT_THROW(decode_hello(payload_of(encode(h), MsgType::Hello)), ProtocolError);
  h.writer_ops.pop_back();
  EXPECT_NO_THROW(decode_hello(payload_of(encode(h), MsgType::Hello)));
}

TEST(WireRoundTrip, HelloControlRingComesAfterTheOtherTrailingFields) {
  Hello h = sample_hello();
  const auto plain = payload_of(encode(h), MsgType::Hello);
  h.control_ring = "/ts-ctl-12-0123456789abcdef";
  // Alone: an empty plane option and an empty writer_ops go first.
  const auto with = payload_of(encode(h), MsgType::Hello);
  EXPECT_EQ(with.size(), plain.size() + 4 + 4 + 4 + h.control_ring.size());
  auto got = decode_hello(with);
  EXPECT_EQ(got.control_ring, h.control_ring);
  EXPECT_EQ(got.plane_option, "");
  EXPECT_EQ(got.writer_ops, "");
  h.plane_option = "tcp";
  h.writer_ops = "x=log1p";
  got = decode_hello(payload_of(encode(h), MsgType::Hello));
  EXPECT_EQ(got.control_ring, h.control_ring);
  EXPECT_EQ(got.plane_option, "tcp");
  EXPECT_EQ(got.writer_ops, "x=log1p");
  EXPECT_EQ(decode_hello(plain).control_ring, "");
  // An empty last field is not a hello an encoder makes; nor is a name over 64 bytes.
  Bytes empty_last = plain;
  for (int i = 0; i < 3; ++i) empty_last.insert(empty_last.end(), 4, std::byte{0});
  EXPECT_THROW(decode_hello(empty_last), ProtocolError);
  h.control_ring = "/" + std::string(64, 'x');
  EXPECT_THROW(decode_hello(payload_of(encode(h), MsgType::Hello)), ProtocolError);
}

TEST(WireRoundTrip, WelcomeControlRingFlag) {
  Welcome w = sample_welcome();
  w.control_ring = true;
  auto got = decode_welcome(payload_of(encode(w), MsgType::Welcome));
  EXPECT_TRUE(got.control_ring);
  EXPECT_TRUE(got.plane_detail.empty());
  w.plane_detail = "provider=tcp";
  w.plane_addresses = {"a", "b"};
  got = decode_welcome(payload_of(encode(w), MsgType::Welcome));
  EXPECT_TRUE(got.control_ring);
  EXPECT_EQ(got.plane_detail, "provider=tcp");
  EXPECT_EQ(got.plane_addresses.size(), 2u);
  w.control_ring = false;
  EXPECT_FALSE(decode_welcome(payload_of(encode(w), MsgType::Welcome)).control_ring);
  // Any flag byte but 1 is refused, and so is an empty plane section with no flag after.
  w.control_ring = true;
  w.plane_detail.clear();
  w.plane_addresses.clear();
  auto bad = payload_of(encode(w), MsgType::Welcome);
  bad.back() = std::byte{2};
  EXPECT_THROW(decode_welcome(bad), ProtocolError);
  bad.pop_back();
  EXPECT_THROW(decode_welcome(bad), ProtocolError);
}

TEST(WireRoundTrip, Welcome) {
  const auto w = sample_welcome();
  const auto got = decode_welcome(payload_of(encode(w), MsgType::Welcome));
  EXPECT_EQ(got.reader_id, w.reader_id);
  EXPECT_EQ(got.data_plane, w.data_plane);
  EXPECT_EQ(got.shm_prefix, w.shm_prefix);
  EXPECT_EQ(got.writer_key, w.writer_key);
  EXPECT_EQ(got.writer_pid, w.writer_pid);
  EXPECT_EQ(got.group, w.group);
  EXPECT_EQ(got.first_step, 41u);

  const auto empty = decode_welcome(payload_of(encode(Welcome{}), MsgType::Welcome));
  EXPECT_EQ(empty.reader_id, 0u);
  EXPECT_TRUE(empty.group.empty());
}

TEST(WireRoundTrip, Error) {
  for (std::uint32_t code : {0u, std::uint32_t{kBadToken}, std::uint32_t{kVersionMismatch},
                             std::uint32_t{kBadRequest}, std::uint32_t{kUnavailable}, 0xffffffffu}) {
    const ErrorMsg m{code, "refused: code " + std::to_string(code)};
    const auto got = decode_error(payload_of(encode(m), MsgType::Error));
    EXPECT_EQ(got.code, m.code);
    EXPECT_EQ(got.message, m.message);
  }
  const ErrorMsg longest{kBadRequest, std::string(kMaxString, 'z')};
  EXPECT_EQ(decode_error(payload_of(encode(longest), MsgType::Error)).message, longest.message);
}

TEST(WireRoundTrip, AckAndReadReply) {
  for (std::uint64_t v : {std::uint64_t{0}, std::uint64_t{1}, UINT64_MAX}) {
    EXPECT_EQ(decode_ack(payload_of(encode(Ack{v}), MsgType::Ack)).step, v);
    const auto r = decode_read_reply(payload_of(encode(ReadReply{v, ~v}), MsgType::ReadReply));
    EXPECT_EQ(r.step, v);
    EXPECT_EQ(r.total, ~v);
  }
}

TEST(WireRoundTrip, ReadRequest) {
  const auto r = sample_read_request();
  const auto got = decode_read_request(payload_of(encode(r), MsgType::ReadRequest));
  EXPECT_EQ(got.step, r.step);
  ASSERT_EQ(got.ranges.size(), r.ranges.size());
  for (std::size_t i = 0; i < r.ranges.size(); ++i) {
    EXPECT_EQ(got.ranges[i].segment, r.ranges[i].segment);
    EXPECT_EQ(got.ranges[i].offset, r.ranges[i].offset);
    EXPECT_EQ(got.ranges[i].length, r.ranges[i].length);
  }
  const auto none = decode_read_request(payload_of(encode(ReadRequest{9, {}}), MsgType::ReadRequest));
  EXPECT_EQ(none.step, 9u);
  EXPECT_TRUE(none.ranges.empty());

  ReadRequest many;
  many.step = 1;
  for (std::uint32_t i = 0; i < 1000; ++i) many.ranges.push_back({i % 3, i * 100ull, 100});
  const auto got_many = decode_read_request(payload_of(encode(many), MsgType::ReadRequest));
  ASSERT_EQ(got_many.ranges.size(), 1000u);
  EXPECT_EQ(got_many.ranges[999].offset, 99900u);
}

TEST(WireRoundTrip, StepWithEverything) {
  const auto m = rich_step();
  const auto frame = encode(m);
  const auto got = decode_step(payload_of(frame, MsgType::Announce));
  expect_steps_eq(got, m);
  // nbytes is derived by the decoder, not sent.
  EXPECT_EQ(got.variables[2].blocks[0].nbytes, 2u * 6u * 16u);
  EXPECT_EQ(got.variables[0].blocks[0].nbytes, 8u);  // rank 0: one element
  EXPECT_EQ(got.variables[4].blocks[0].nbytes, 0u);  // zero extent
  // Re-encoding the decoded step gives the same bytes.
  EXPECT_EQ(encode(got), frame);
}

TEST(WireRoundTrip, StepMinimal) {
  const auto m = minimal_step();
  const auto got = decode_step(payload_of(encode(m), MsgType::Announce));
  expect_steps_eq(got, m);
  EXPECT_TRUE(got.variables.empty());
  EXPECT_FALSE(got.stream_attributes.has_value());
}

TEST(WireRoundTrip, StepStreamAttributesAbsentVersusEmpty) {
  const auto absent = decode_step(
      payload_of(encode(step_without_stream_attributes()), MsgType::Announce));
  EXPECT_FALSE(absent.stream_attributes.has_value());
  expect_steps_eq(absent, step_without_stream_attributes());

  const auto empty = decode_step(
      payload_of(encode(step_with_empty_stream_attributes()), MsgType::Announce));
  ASSERT_TRUE(empty.stream_attributes.has_value());
  EXPECT_TRUE(empty.stream_attributes->empty());
}

TEST(WireRoundTrip, StepEachRankAndManyBlocks) {
  for (std::size_t rank = 0; rank <= 3; ++rank) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    StepMeta m;
    m.index = rank;
    m.segments = {{1, 1u << 20}, {2, 1u << 20}};
    VariableMeta v{"x", DType::Float32, Dims(rank, 4), {}};
    // Split the first axis in four blocks alternating between the segments; rank 0 gets
    // two (duplicate) blocks of its single element.
    const std::size_t nblocks = rank == 0 ? 2 : 4;
    for (std::size_t b = 0; b < nblocks; ++b) {
      Dims start(rank, 0), count(rank, 4);
      if (rank > 0) {
        start[0] = b;
        count[0] = 1;
      }
      v.blocks.push_back(block(start, count, 1 + static_cast<std::uint32_t>(b % 2), 4096 * b, v.dtype));
    }
    m.variables.push_back(v);
    VariableMeta w{"y" + std::to_string(rank), DType::Int64, Dims(rank, 2), {}};
    w.blocks.push_back(block(Dims(rank, 0), Dims(rank, 2), 2, 0, w.dtype));
    m.variables.push_back(w);
    m.attributes["rank"] = static_cast<std::int64_t>(rank);
    const auto got = decode_step(payload_of(encode(m), MsgType::Announce));
    expect_steps_eq(got, m);
  }
}

TEST(WireRoundTrip, AttributesAllKinds) {
  StepMeta m = minimal_step();
  m.attributes = all_kinds_attributes();
  m.stream_attributes = all_kinds_attributes();
  const auto got = decode_step(payload_of(encode(m), MsgType::Announce));
  EXPECT_EQ(got.attributes, m.attributes);
  ASSERT_TRUE(got.stream_attributes);
  EXPECT_EQ(*got.stream_attributes, *m.stream_attributes);
  // Spot-check types survived (not just equal values of another alternative).
  EXPECT_TRUE(std::holds_alternative<bool>(got.attributes.at("flag_false")));
  EXPECT_TRUE(std::holds_alternative<std::int64_t>(got.attributes.at("int_zero")));
  EXPECT_TRUE(std::holds_alternative<double>(got.attributes.at("dbl")));
  EXPECT_TRUE(std::signbit(std::get<double>(got.attributes.at("dbl_negzero"))));
  EXPECT_EQ(std::get<std::string>(got.attributes.at("str_nul")).size(), 3u);
  EXPECT_EQ(std::get<ArrayAttribute>(got.attributes.at("arr_f64")).shape, (Dims{2, 3}));
}

TEST(WireRoundTrip, AttributeSizeLimitsAccepted) {
  StepMeta m = minimal_step();
  m.attributes["big_string"] = std::string(kMaxAttributeBytes, 's');
  ArrayAttribute big;
  big.dtype = DType::UInt8;
  big.shape = {kMaxAttributeBytes};
  big.bytes.resize(kMaxAttributeBytes);
  m.attributes["big_array"] = big;
  const auto got = decode_step(payload_of(encode(m), MsgType::Announce));
  EXPECT_EQ(got.attributes, m.attributes);
}

TEST(WireRoundTrip, NaNAttributeKeepsItsBits) {
  StepMeta m = minimal_step();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  m.attributes["nan"] = nan;
  const auto got = decode_step(payload_of(encode(m), MsgType::Announce));
  const double v = std::get<double>(got.attributes.at("nan"));
  EXPECT_TRUE(std::isnan(v));
  EXPECT_EQ(std::memcmp(&v, &nan, sizeof v), 0);
}

TEST(WireRoundTrip, RawBuilderMatchesEncoder) {
  // The hand-built payloads of the rejection tests below use RawStep: check that its
  // default is a valid step laid out exactly as encode() lays it out.
  RawStep raw;
  StepMeta m;
  m.index = 1;
  m.segments = {{0, 1024}};
  VariableMeta v{"v", DType::Float64, {10}, {}};
  v.blocks.push_back(block({0}, {10}, 0, 0, v.dtype));
  m.variables.push_back(v);
  EXPECT_EQ(raw.payload(), payload_of(encode(m), MsgType::Announce));
  EXPECT_NO_THROW(decode_step(raw.payload()));
}

// =======================================================================================
// Rejection: generic

TEST(WireReject, EveryStrictPrefixOfEveryMessage) {
  for (const auto& s : valid_samples()) {
    SCOPED_TRACE(s.name);
    ASSERT_NO_THROW(decode_reencode(s.type, s.payload));
    for (std::size_t n = 0; n < s.payload.size(); ++n) {
      const std::span<const std::byte> prefix(s.payload.data(), n);
      AllocationWatch watch;
      EXPECT_THROW(decode_reencode(s.type, prefix), ProtocolError) << "prefix of " << n << " bytes";
      EXPECT_LE(watch.largest(), 2 * s.payload.size() + 4096);
    }
  }
}

TEST(WireReject, TrailingGarbageOnEveryMessage) {
  for (const auto& s : valid_samples()) {
    SCOPED_TRACE(s.name);
    for (std::size_t extra : {1u, 3u, 8u, 100u}) {
      Bytes p = s.payload;
      p.insert(p.end(), extra, std::byte{0});
      EXPECT_THROW(decode_reencode(s.type, p), ProtocolError) << extra << " extra bytes";
    }
  }
}

TEST(WireReject, EmptyPayloadOfEveryMessage) {
  for (auto t : {MsgType::Hello, MsgType::Welcome, MsgType::Error, MsgType::Announce,
                 MsgType::Ack, MsgType::ReadRequest, MsgType::ReadReply}) {
    EXPECT_THROW(decode_reencode(t, {}), ProtocolError) << msg_type_name(t);
  }
}

// =======================================================================================
// Rejection: Hello / Welcome / Error / Ack / ReadReply

TEST(WireReject, HelloFields) {
  const auto make = [](std::size_t token_len, std::uint8_t role, std::string group,
                       std::string policy, std::string plane, std::string host,
                       std::uint32_t prefetch = 1) {
    Encoder e(MsgType::Hello);
    e.u16(kProtocolVersion);
    e.bytes(Bytes(token_len, std::byte{1}));
    e.u8(role);
    e.u64(0);
    e.str(group);
    e.str(policy);
    e.str(plane);
    e.str(host);
    e.u32(1);
    e.u32(prefetch);
    e.u8(0);   // latest
    e.u32(4);  // shuffle: window, batch_size, seed, passes, variables
    e.u32(32);
    e.u64(0);
    e.u32(1);
    e.u32(0);
    return payload_of(e);
  };
  // Prefetch outside 1..64.
  EXPECT_NO_THROW(decode_hello(make(kTokenSize, 1, "g", "p", "auto", "h", 64)));
  EXPECT_THROW(decode_hello(make(kTokenSize, 1, "g", "p", "auto", "h", 0)), ProtocolError);
  EXPECT_THROW(decode_hello(make(kTokenSize, 1, "g", "p", "auto", "h", 65)), ProtocolError);
  EXPECT_NO_THROW(decode_hello(make(kTokenSize, 1, "g", "p", "auto", "h")));
  EXPECT_NO_THROW(decode_hello(make(kTokenSize, 2, "g", "p", "auto", "h")));
  // Token of the wrong length.
  EXPECT_THROW(decode_hello(make(0, 1, "g", "p", "auto", "h")), ProtocolError);
  EXPECT_THROW(decode_hello(make(kTokenSize - 1, 1, "g", "p", "auto", "h")), ProtocolError);
  EXPECT_THROW(decode_hello(make(kTokenSize + 1, 1, "g", "p", "auto", "h")), ProtocolError);
  // Unknown role.
  for (std::uint8_t role : {0, 3, 255}) {
    EXPECT_THROW(decode_hello(make(kTokenSize, role, "g", "p", "auto", "h")), ProtocolError);
  }
  // Strings over their limits.
  EXPECT_THROW(decode_hello(make(kTokenSize, 1, std::string(257, 'g'), "p", "a", "h")), ProtocolError);
  EXPECT_THROW(decode_hello(make(kTokenSize, 1, "g", std::string(65, 'p'), "a", "h")), ProtocolError);
  EXPECT_THROW(decode_hello(make(kTokenSize, 1, "g", "p", std::string(65, 'a'), "h")), ProtocolError);
  EXPECT_THROW(decode_hello(make(kTokenSize, 1, "g", "p", "a", std::string(513, 'h'))), ProtocolError);
  // Token length field of 2^63 with a tiny payload.
  Bytes p = make(kTokenSize, 1, "g", "p", "a", "h");
  put_u64(p, 2, 1ull << 63);
  AllocationWatch watch;
  EXPECT_THROW(decode_hello(p), ProtocolError);
  EXPECT_LE(watch.largest(), 4096u);
}

TEST(WireReject, HelloWithOtherVersionStopsAtTheVersion) {
  // By design the rest of a Hello of another version is not parsed: the handshake answers
  // it with a version-mismatch error. The version must still come through.
  Encoder e(MsgType::Hello);
  e.u16(kProtocolVersion + 1);
  e.str("anything the future protocol sends");
  const auto got = decode_hello(payload_of(e));
  EXPECT_EQ(got.version, kProtocolVersion + 1);
}

TEST(WireReject, WelcomeStringLimits) {
  auto w = sample_welcome();
  w.data_plane = std::string(65, 'd');
  EXPECT_THROW(decode_welcome(payload_of(encode(w), MsgType::Welcome)), ProtocolError);
  w = sample_welcome();
  w.shm_prefix = std::string(257, 's');
  EXPECT_THROW(decode_welcome(payload_of(encode(w), MsgType::Welcome)), ProtocolError);
  w = sample_welcome();
  w.group = std::string(257, 'g');
  EXPECT_THROW(decode_welcome(payload_of(encode(w), MsgType::Welcome)), ProtocolError);
}

TEST(WireReject, ErrorMessageLongerThanLimit) {
  const ErrorMsg m{kBadRequest, std::string(kMaxString + 1, 'e')};
  EXPECT_THROW(decode_error(payload_of(encode(m), MsgType::Error)), ProtocolError);
  // Length field of 4 GiB - 1 with a small payload.
  Bytes p = payload_of(encode(ErrorMsg{1, "short"}), MsgType::Error);
  put_u32(p, 4, 0xffffffffu);
  AllocationWatch watch;
  EXPECT_THROW(decode_error(p), ProtocolError);
  EXPECT_LE(watch.largest(), 4096u);
}

TEST(WireReject, FixedSizeMessagesWrongLength) {
  EXPECT_THROW(decode_ack(Bytes(7)), ProtocolError);
  EXPECT_THROW(decode_ack(Bytes(9)), ProtocolError);
  EXPECT_NO_THROW(decode_ack(Bytes(8)));
  EXPECT_THROW(decode_read_reply(Bytes(15)), ProtocolError);
  EXPECT_THROW(decode_read_reply(Bytes(17)), ProtocolError);
  EXPECT_NO_THROW(decode_read_reply(Bytes(16)));
}

// =======================================================================================
// Rejection: ReadRequest

Bytes read_request_payload(std::uint32_t count_field, std::size_t ranges_present,
                           std::size_t extra = 0) {
  Encoder e(MsgType::ReadRequest);
  e.u64(1);
  e.u32(count_field);
  for (std::size_t i = 0; i < ranges_present; ++i) {
    e.u32(0);
    e.u64(i * 10);
    e.u64(10);
  }
  for (std::size_t i = 0; i < extra; ++i) e.u8(0);
  return payload_of(e);
}

TEST(WireReject, ReadRequestCountExceedsPayload) {
  EXPECT_EQ(decode_read_request(read_request_payload(2, 2)).ranges.size(), 2u);
  EXPECT_THROW(decode_read_request(read_request_payload(2, 1)), ProtocolError);
  EXPECT_THROW(decode_read_request(read_request_payload(3, 2, 19)), ProtocolError);
  EXPECT_THROW(decode_read_request(read_request_payload(1, 0)), ProtocolError);
  // Fewer ranges than present: the rest is trailing garbage.
  EXPECT_THROW(decode_read_request(read_request_payload(1, 2)), ProtocolError);
  EXPECT_THROW(decode_read_request(read_request_payload(0, 1)), ProtocolError);
}

TEST(WireReject, ReadRequestAbsurdCountDoesNotAllocate) {
  for (std::uint32_t n : {static_cast<std::uint32_t>(kMaxCount), static_cast<std::uint32_t>(kMaxCount) + 1,
                          0x80000000u, 0xffffffffu}) {
    const auto p = read_request_payload(n, 1);
    AllocationWatch watch;
    EXPECT_THROW(decode_read_request(p), ProtocolError) << n;
    EXPECT_LE(watch.largest(), 4096u) << n;
  }
}

// =======================================================================================
// Rejection: StepMeta

TEST(WireRejectStep, BaseIsValid) {
  const auto m = decode_step(RawStep{}.payload());
  ASSERT_EQ(m.variables.size(), 1u);
  EXPECT_EQ(m.variables[0].blocks[0].nbytes, 80u);
}

TEST(WireRejectStep, TrailingGarbage) {
  RawStep s;
  s.trailing = Bytes(1);
  expect_step_rejected(s.payload());
}

TEST(WireRejectStep, BadArrayKind) {
  for (std::uint8_t kind : {3, 4, 255}) {
    RawStep s;
    s.variables[0].kind = kind;
    expect_step_rejected(s.payload());
  }
  for (std::uint8_t kind : {0, 1, 2}) {  // global, joined, local
    RawStep s;
    s.variables[0].kind = kind;
    EXPECT_EQ(static_cast<std::uint8_t>(decode_step(s.payload()).variables[0].kind), kind);
  }
  RawStep rank0;  // a joined array stacks along axis 0: it needs one
  rank0.variables[0].kind = 1;
  rank0.variables[0].shape = {};
  rank0.variables[0].blocks = {{{}, {}, 0, 0}};
  expect_step_rejected(rank0.payload());
}

TEST(WireRejectStep, BadVariableDtype) {
  for (std::uint8_t dt : {0, 17, 18, 100, 255}) {
    RawStep s;
    s.variables[0].dtype = dt;
    expect_step_rejected(s.payload());
  }
  for (std::uint8_t dt = 1; dt <= 16; ++dt) {  // every valid one is accepted
    RawStep s;
    s.variables[0].dtype = dt;
    s.segments = {{0, 10 * 32}};
    EXPECT_NO_THROW(decode_step(s.payload())) << int(dt);
  }
}

TEST(WireRejectStep, EmptyVariableName) {
  RawStep s;
  s.variables[0].name.clear();
  expect_step_rejected(s.payload());
}

TEST(WireRejectStep, VariableNameTooLong) {
  RawStep ok;
  ok.variables[0].name = std::string(4096, 'n');
  EXPECT_NO_THROW(decode_step(ok.payload()));
  RawStep s;
  s.variables[0].name = std::string(4097, 'n');
  expect_step_rejected(s.payload());
  // Length field claims 4 GiB.
  RawStep lie;
  Bytes p = lie.payload();
  // index, dropped, nseg, seg(12), nret, nvar -> name length at offset 8+8+4+12+4+4.
  put_u32(p, 40, 0xffffffffu);
  expect_step_rejected(p, 4096);
}

TEST(WireRejectStep, RankAbove32) {
  {
    RawStep s;  // variable shape of rank 33
    s.variables[0].shape = Dims(kMaxRank + 1, 1);
    s.variables[0].blocks.clear();
    expect_step_rejected(s.payload());
  }
  {
    RawStep s;  // block start and count of rank 33
    s.variables[0].blocks[0].start = Dims(kMaxRank + 1, 0);
    s.variables[0].blocks[0].count = Dims(kMaxRank + 1, 1);
    expect_step_rejected(s.payload());
  }
  {
    RawStep s;  // rank byte 255
    s.variables[0].shape = Dims(255, 1);
    s.variables[0].blocks.clear();
    expect_step_rejected(s.payload());
  }
}

TEST(WireRejectStep, BlockRankMismatch) {
  for (auto [start, count] : std::vector<std::pair<Dims, Dims>>{
           {{0, 0}, {10}}, {{0}, {10, 1}}, {{}, {}}, {{0, 0}, {1, 1}}}) {
    RawStep s;
    s.variables[0].blocks[0].start = start;
    s.variables[0].blocks[0].count = count;
    expect_step_rejected(s.payload());
  }
  RawStep scalar;  // rank-0 variable with a rank-1 block
  scalar.variables[0].shape = {};
  scalar.variables[0].blocks[0] = {{0}, {1}, 0, 0};
  expect_step_rejected(scalar.payload());
}

TEST(WireRejectStep, BlockOutsideShape) {
  const std::vector<std::pair<Dims, Dims>> bad{
      {{11}, {0}},                 // start beyond the end
      {{5}, {6}},                  // runs one past the end
      {{0}, {11}},                 // count larger than the shape
      {{1}, {UINT64_MAX}},         // start + count wraps around
      {{UINT64_MAX}, {2}},         // start far beyond
      {{UINT64_MAX - 5}, {10}},    // start + count wraps to a small value
  };
  for (const auto& [start, count] : bad) {
    RawStep s;
    s.variables[0].blocks[0].start = start;
    s.variables[0].blocks[0].count = count;
    expect_step_rejected(s.payload());
  }
  {
    RawStep s;  // second axis out of range in rank 2
    s.variables[0].shape = {4, 5};
    s.variables[0].blocks[0] = {{0, 3}, {4, 3}, 0, 0};
    expect_step_rejected(s.payload());
  }
  {
    RawStep s;  // a huge shape is fine, the block must still lie inside it
    s.variables[0].shape = {UINT64_MAX};
    s.variables[0].blocks[0] = {{UINT64_MAX - 1}, {2}, 0, 0};
    expect_step_rejected(s.payload());
    s.variables[0].blocks[0] = {{UINT64_MAX - 2}, {2}, 0, 0};
    EXPECT_NO_THROW(decode_step(s.payload()));
  }
  {
    RawStep s;  // boundary cases that are valid
    s.variables[0].blocks[0] = {{10}, {0}, 0, 0};
    EXPECT_NO_THROW(decode_step(s.payload()));
    s.variables[0].blocks[0] = {{9}, {1}, 0, 0};
    EXPECT_NO_THROW(decode_step(s.payload()));
  }
}

TEST(WireRejectStep, BlockPastSegmentEnd) {
  {
    RawStep s;  // 10 float64 = 80 bytes in a 79-byte segment
    s.segments = {{0, 79}};
    expect_step_rejected(s.payload());
    s.segments = {{0, 80}};
    EXPECT_NO_THROW(decode_step(s.payload()));
  }
  {
    RawStep s;  // offset pushes it past the end
    s.segments = {{0, 100}};
    s.variables[0].blocks[0].offset = 21;
    expect_step_rejected(s.payload());
    s.variables[0].blocks[0].offset = 20;
    EXPECT_NO_THROW(decode_step(s.payload()));
  }
  {
    RawStep s;  // offset beyond the segment, empty block
    s.segments = {{0, 100}};
    s.variables[0].blocks[0] = {{0}, {0}, 0, 101};
    expect_step_rejected(s.payload());
    s.variables[0].blocks[0].offset = 100;
    EXPECT_NO_THROW(decode_step(s.payload()));
  }
  {
    RawStep s;  // offset + nbytes wraps around 2^64
    s.segments = {{0, UINT64_MAX}};
    s.variables[0].blocks[0].offset = UINT64_MAX - 8;
    expect_step_rejected(s.payload());
    s.segments = {{0, 100}};
    expect_step_rejected(s.payload());
  }
  {
    RawStep s;  // second block of two is the bad one, in the second segment
    s.segments = {{0, 1000}, {1, 40}};
    s.variables[0].blocks = {{{0}, {5}, 0, 0}, {{5}, {5}, 1, 8}};
    expect_step_rejected(s.payload());
    s.variables[0].blocks[1].offset = 0;
    EXPECT_NO_THROW(decode_step(s.payload()));
  }
}

TEST(WireRejectStep, BlockInUnlistedSegment) {
  RawStep s;
  s.variables[0].blocks[0].segment = 1;
  expect_step_rejected(s.payload());
  RawStep none;
  none.segments.clear();
  expect_step_rejected(none.payload());
  RawStep retired_only;  // a retired segment is not a listed one
  retired_only.segments = {{1, 1000}};
  retired_only.retired = {0};
  expect_step_rejected(retired_only.payload());
}

TEST(WireRejectStep, DuplicateSegment) {
  RawStep s;
  s.segments = {{0, 1024}, {0, 1024}};
  expect_step_rejected(s.payload());
  s.segments = {{0, 1024}, {5, 10}, {0, 4096}};
  expect_step_rejected(s.payload());
}

TEST(WireRejectStep, BlockSizeOverflow) {
  const std::vector<std::pair<std::uint8_t, Dims>> cases{
      {static_cast<std::uint8_t>(DType::Float64), {1ull << 32, 1ull << 32}},  // 2^64 elements
      {static_cast<std::uint8_t>(DType::UInt8), {1ull << 33, 1ull << 31}},    // 2^64 bytes
      {static_cast<std::uint8_t>(DType::Float64), {1ull << 62}},  // 2^62 * 8 overflows
      {static_cast<std::uint8_t>(DType::ComplexLongDouble), {1ull << 60}},
      {static_cast<std::uint8_t>(DType::Int16), {UINT64_MAX, UINT64_MAX, UINT64_MAX}},
      {static_cast<std::uint8_t>(DType::Int8), {3, 1ull << 21, 1ull << 21, 1ull << 21}},
  };
  for (const auto& [dt, shape] : cases) {
    RawStep s;
    s.segments = {{0, UINT64_MAX}};
    s.variables[0].dtype = dt;
    s.variables[0].shape = shape;
    s.variables[0].blocks[0] = {Dims(shape.size(), 0), shape, 0, 0};
    expect_step_rejected(s.payload());
  }
  {
    RawStep s;  // no overflow but far bigger than the segment
    s.segments = {{0, 1ull << 40}};
    s.variables[0].shape = {1ull << 40};
    s.variables[0].blocks[0] = {{0}, {1ull << 40}, 0, 0};
    expect_step_rejected(s.payload());
  }
  {
    RawStep s;  // a zero axis makes the block empty even with a huge axis after it
    s.segments = {{0, 0}};
    s.variables[0].shape = {2, 0, UINT64_MAX};
    s.variables[0].blocks[0] = {{0, 0, 0}, {2, 0, UINT64_MAX}, 0, 0};
    const auto m = decode_step(s.payload());
    EXPECT_EQ(m.variables[0].blocks[0].nbytes, 0u);
  }
}

TEST(WireRejectStep, AbsurdListCounts) {
  for (std::uint32_t n : {(1u << 16) + 1, 0x80000000u, 0xffffffffu}) {
    SCOPED_TRACE("count " + std::to_string(n));
    {
      RawStep s;
      s.nsegments = n;
      expect_step_rejected(s.payload());
    }
    {
      RawStep s;
      s.nretired = n;
      expect_step_rejected(s.payload());
    }
    {
      RawStep s;
      s.nvariables = n;
      expect_step_rejected(s.payload());
    }
    {
      RawStep s;
      s.variables[0].nblocks = n;
      expect_step_rejected(s.payload());
    }
    {
      RawStep s;
      s.attributes = [n](Encoder& e) { e.u32(n); };
      expect_step_rejected(s.payload());
    }
    {
      RawStep s;
      s.has_stream = 1;
      s.stream_attributes = [n](Encoder& e) { e.u32(n); };
      expect_step_rejected(s.payload());
    }
  }
  // Counts within the limits but far more than the payload holds: truncation, and no
  // allocation in proportion to the count.
  for (std::uint32_t n : {1u << 16, static_cast<std::uint32_t>(kMaxCount)}) {
    SCOPED_TRACE("count " + std::to_string(n));
    RawStep a;
    a.nsegments = std::min<std::uint32_t>(n, 1u << 16);
    expect_step_rejected(a.payload(), 4096);
    RawStep b;
    b.nretired = std::min<std::uint32_t>(n, 1u << 16);
    expect_step_rejected(b.payload(), 4096);
    RawStep c;
    c.nvariables = std::min<std::uint32_t>(n, 1u << 16);
    expect_step_rejected(c.payload(), 4096);
    RawStep d;
    d.variables[0].nblocks = n;
    expect_step_rejected(d.payload(), 4096);
    RawStep e;
    e.attributes = [n](Encoder& enc) { enc.u32(std::min<std::uint32_t>(n, 1u << 16)); };
    expect_step_rejected(e.payload(), 4096);
  }
}

TEST(WireRejectStep, BadStreamAttributeFlag) {
  for (std::uint8_t flag : {2, 3, 128, 255}) {
    RawStep s;
    s.has_stream = flag;
    expect_step_rejected(s.payload());
  }
  RawStep s;
  s.has_stream = 1;
  EXPECT_TRUE(decode_step(s.payload()).stream_attributes.has_value());
}

// Attribute rejections are checked both as step attributes and as stream attributes.
void expect_attribute_rejected(const Writer& attrs, const std::string& what) {
  SCOPED_TRACE(what);
  RawStep step;
  step.attributes = attrs;
  expect_step_rejected(step.payload());
  RawStep stream;
  stream.has_stream = 1;
  stream.stream_attributes = attrs;
  expect_step_rejected(stream.payload());
}
void expect_attribute_accepted(const Writer& attrs, const std::string& what) {
  SCOPED_TRACE(what);
  RawStep step;
  step.attributes = attrs;
  EXPECT_NO_THROW(decode_step(step.payload()));
}

TEST(WireRejectStep, BadBoolAttribute) {
  for (std::uint8_t v : {0, 1}) {
    expect_attribute_accepted(one_attribute("b", [v](Encoder& e) { e.u8(1); e.u8(v); }), "bool ok");
  }
  for (std::uint8_t v : {2, 0x80, 0xff}) {
    expect_attribute_rejected(one_attribute("b", [v](Encoder& e) { e.u8(1); e.u8(v); }),
                              "bool " + std::to_string(v));
  }
}

TEST(WireRejectStep, UnknownAttributeKind) {
  for (std::uint8_t kind : {0, 6, 7, 255}) {
    expect_attribute_rejected(one_attribute("k", [kind](Encoder& e) { e.u8(kind); e.u64(0); }),
                              "kind " + std::to_string(kind));
  }
}

TEST(WireRejectStep, AttributeStringsTooLong) {
  expect_attribute_rejected(
      one_attribute(std::string(kMaxString + 1, 'a'), [](Encoder& e) { e.u8(2); e.u64(1); }),
      "attribute name");
  expect_attribute_rejected(one_attribute("s",
                                          [](Encoder& e) {
                                            e.u8(4);
                                            e.str(std::string(kMaxAttributeBytes + 1, 'v'));
                                          }),
                            "string value");
  expect_attribute_rejected(one_attribute("s",
                                          [](Encoder& e) {
                                            e.u8(4);
                                            e.u32(0xffffffffu);
                                            e.u32(0);
                                          }),
                            "string length field 4 GiB");
}

TEST(WireRejectStep, ArrayAttributeShapeMismatch) {
  const auto f64 = static_cast<std::uint8_t>(DType::Float64);
  const auto i32 = static_cast<std::uint8_t>(DType::Int32);
  const auto u8 = static_cast<std::uint8_t>(DType::UInt8);
  expect_attribute_accepted(one_attribute("a", array_body(f64, {3}, 24)), "3 doubles");
  expect_attribute_accepted(one_attribute("a", array_body(i32, {}, 4)), "int32 scalar");
  expect_attribute_accepted(one_attribute("a", array_body(u8, {0, 7}, 0)), "empty");

  expect_attribute_rejected(one_attribute("a", array_body(f64, {3}, 16)), "too few bytes");
  expect_attribute_rejected(one_attribute("a", array_body(f64, {3}, 32)), "too many bytes");
  expect_attribute_rejected(one_attribute("a", array_body(f64, {3}, 23)), "partial element");
  expect_attribute_rejected(one_attribute("a", array_body(i32, {}, 8)), "scalar with 2 elements");
  expect_attribute_rejected(one_attribute("a", array_body(i32, {}, 0)), "scalar with no bytes");
  expect_attribute_rejected(one_attribute("a", array_body(u8, {0, 7}, 7)), "empty with bytes");
  expect_attribute_rejected(one_attribute("a", array_body(u8, {1ull << 32, 1ull << 32}, 0)),
                            "shape overflowing 64 bits");
  expect_attribute_rejected(one_attribute("a", array_body(u8, {1ull << 40}, 0)), "huge shape");
  expect_attribute_rejected(
      one_attribute("a", array_body(u8, {UINT64_MAX, UINT64_MAX, UINT64_MAX}, 1)),
      "max shape");
  // 2^64 / 8 elements of 8 bytes: the element count fits, the byte count wraps to 0.
  expect_attribute_rejected(one_attribute("a", array_body(f64, {1ull << 61}, 0)),
                            "byte size wrapping to zero");
  expect_attribute_rejected(one_attribute("a", array_body(f64, {1ull << 30, 1ull << 31}, 0)),
                            "element count times size wrapping to zero");
}

TEST(WireRejectStep, ArrayAttributeBadFields) {
  expect_attribute_rejected(one_attribute("a", array_body(0, {1}, 1)), "dtype 0");
  expect_attribute_rejected(one_attribute("a", array_body(17, {1}, 1)), "dtype 17");
  expect_attribute_rejected(one_attribute("a", array_body(255, {1}, 1)), "dtype 255");
  expect_attribute_rejected(one_attribute("a", array_body(6, Dims(kMaxRank + 1, 1), 1)),
                            "rank 33");
  expect_attribute_rejected(
      one_attribute("a", array_body(6, {kMaxAttributeBytes + 1}, kMaxAttributeBytes + 1)),
      "more than the attribute byte limit");
  expect_attribute_rejected(one_attribute("a",
                                          [](Encoder& e) {
                                            e.u8(5);
                                            e.u8(6);
                                            e.dims({4});
                                            e.u64(1ull << 62);  // byte length field
                                            e.u32(0);
                                          }),
                            "byte length field 2^62");
}

// =======================================================================================
// Fuzz: random mutations of valid payloads. Decoding must succeed or throw ProtocolError,
// never crash, throw anything else, or allocate far beyond the payload size. A payload
// that decodes must re-encode to one that decodes to the same re-encoding (whatever the
// decoder accepts satisfies the invariants encode() relies on).

TEST(WireFuzz, MutatedPayloads) {
  const auto samples = valid_samples();
  std::mt19937_64 rng(0x7457533144524f57ull);
  auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  constexpr std::uint32_t kInteresting32[] = {0,          1,          2,          32,
                                              33,         255,        0x10000,    0x10001,
                                              0x100000,   0x7fffffff, 0x80000000, 0xffffffff};
  constexpr std::uint64_t kInteresting64[] = {0, 1, 8, 0xff, 1ull << 32, 1ull << 62,
                                              1ull << 63, UINT64_MAX, UINT64_MAX - 7};
  constexpr int kIterations = 20000;
  int accepted = 0, rejected = 0, failures = 0;
  for (int it = 0; it < kIterations && failures < 10; ++it) {
    const auto& s = samples[pick(samples.size())];
    Bytes p = s.payload;
    const int nmut = 1 + static_cast<int>(pick(4));
    for (int m = 0; m < nmut; ++m) {
      switch (pick(8)) {
        case 0:
        case 1:  // random byte
          if (!p.empty()) p[pick(p.size())] = std::byte(rng() & 0xff);
          break;
        case 2:  // bit flip
          if (!p.empty()) p[pick(p.size())] ^= std::byte(1u << pick(8));
          break;
        case 3:  // interesting 32-bit value at any offset
          if (p.size() >= 4) put_u32(p, pick(p.size() - 3), kInteresting32[pick(std::size(kInteresting32))]);
          break;
        case 4:  // interesting 64-bit value at any offset
          if (p.size() >= 8) put_u64(p, pick(p.size() - 7), kInteresting64[pick(std::size(kInteresting64))]);
          break;
        case 5:  // truncate
          if (!p.empty()) p.resize(pick(p.size()));
          break;
        case 6: {  // insert random bytes
          const auto at = pick(p.size() + 1);
          const auto n = 1 + pick(8);
          Bytes ins(n);
          for (auto& b : ins) b = std::byte(rng() & 0xff);
          p.insert(p.begin() + static_cast<std::ptrdiff_t>(at), ins.begin(), ins.end());
          break;
        }
        case 7: {  // delete a range
          if (p.empty()) break;
          const auto at = pick(p.size());
          const auto n = std::min(p.size() - at, 1 + pick(8));
          p.erase(p.begin() + static_cast<std::ptrdiff_t>(at),
                  p.begin() + static_cast<std::ptrdiff_t>(at + n));
          break;
        }
      }
    }
    try {
      Bytes again;
      {
        AllocationWatch watch;
        again = decode_reencode(s.type, p);
        if (watch.largest() > 64 * p.size() + 65536) {
          ADD_FAILURE() << s.name << ": allocation of " << watch.largest()
                        << " bytes decoding a " << p.size() << "-byte payload " << hex(p);
          ++failures;
        }
      }
      ++accepted;
      // Decoded values must re-encode into something the decoder accepts, and the second
      // round must be stable.
      const Bytes third = decode_reencode(s.type, again);
      if (third != again) {
        ADD_FAILURE() << s.name << ": re-encoding not stable for payload " << hex(p);
        ++failures;
      }
    } catch (const ProtocolError&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << s.name << ": " << typeid(e).name() << " (" << e.what()
                    << ") instead of ProtocolError for payload " << hex(p);
      ++failures;
    } catch (...) {
      ADD_FAILURE() << s.name << ": non-standard exception for payload " << hex(p);
      ++failures;
    }
  }
  // The loop must have exercised both outcomes.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 1000);
  RecordProperty("accepted", accepted);
  RecordProperty("rejected", rejected);
}

TEST(WireFuzz, MutatedHeaders) {
  std::mt19937_64 rng(12345);
  for (int it = 0; it < 5000; ++it) {
    std::array<std::byte, kHeaderSize> buf{};
    encode_header({kProtocolVersion, static_cast<MsgType>(1 + rng() % 10),
                   static_cast<std::uint32_t>(rng() % (kMaxFrame + 1))},
                  buf.data());
    const int nmut = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < nmut; ++m) buf[rng() % kHeaderSize] = std::byte(rng() & 0xff);
    try {
      const auto h = decode_header(buf);
      std::uint32_t magic, reserved;
      std::memcpy(&magic, buf.data(), 4);
      std::memcpy(&reserved, buf.data() + 12, 4);
      EXPECT_EQ(magic, kMagic);
      EXPECT_EQ(reserved, 0u);
      EXPECT_LE(h.length, kMaxFrame);
      EXPECT_GE(static_cast<int>(h.type), 1);
      EXPECT_LE(static_cast<int>(h.type), static_cast<int>(MsgType::Bye));
    } catch (const ProtocolError&) {
    }
  }
}

}  // namespace
}  // namespace twinstream::wire
