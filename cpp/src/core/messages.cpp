#include "core/messages.hpp"

#include <algorithm>
#include <cstring>
#include <map>

#include "twinstream/errors.hpp"

namespace twinstream::wire {
namespace {
// Multiplies with an overflow check; wire values are untrusted.
std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const char* what) {
  if (b != 0 && a > UINT64_MAX / b) throw ProtocolError(std::string(what) + " overflows");
  return a * b;
}
}  // namespace

std::vector<std::byte> encode(const Hello& m) {
  Encoder e(MsgType::Hello);
  e.u16(m.version);
  e.bytes({reinterpret_cast<const std::byte*>(m.token.data()), m.token.size()});
  e.u8(static_cast<std::uint8_t>(m.role));
  e.u64(m.reader_id);
  e.str(m.group);
  e.str(m.policy);
  e.str(m.data_plane);
  e.str(m.host_id);
  e.u32(m.pid);
  e.u32(m.prefetch);
  e.u8(m.latest ? 1 : 0);
  e.u32(m.shuffle.window);
  e.u32(m.shuffle.batch_size);
  e.u64(m.shuffle.seed);
  e.u32(m.shuffle.passes);
  e.u32(static_cast<std::uint32_t>(m.shuffle.variables.size()));
  for (const auto& v : m.shuffle.variables) e.str(v);
  // Trailing fields: each is sent when it or a later one is set; the last one sent is
  // never empty (an empty one at the end is bytes that do not belong).
  const bool ring = !m.control_ring.empty();
  if (!m.plane_option.empty() || !m.writer_ops.empty() || ring) e.str(m.plane_option);
  if (!m.writer_ops.empty() || ring) e.str(m.writer_ops);
  if (ring) e.str(m.control_ring);
  return std::move(e.finish());
}

Hello decode_hello(std::span<const std::byte> p) {
  Decoder d(p);
  Hello m;
  m.version = d.u16();
  if (m.version != kProtocolVersion) return m;  // the handshake reports the mismatch
  auto token = d.bytes(kTokenSize);
  if (token.size() != kTokenSize) throw ProtocolError("access token has the wrong length");
  std::memcpy(m.token.data(), token.data(), kTokenSize);
  const auto role = d.u8();
  if (role != 1 && role != 2) throw ProtocolError("unknown connection role");
  m.role = static_cast<Role>(role);
  m.reader_id = d.u64();
  m.group = d.str(256);
  m.policy = d.str(64);
  m.data_plane = d.str(64);
  m.host_id = d.str(512);
  m.pid = d.u32();
  m.prefetch = d.u32();
  if (m.prefetch < 1 || m.prefetch > 64) throw ProtocolError("prefetch must be 1 to 64");
  const auto latest = d.u8();
  if (latest > 1) throw ProtocolError("bad latest flag");
  m.latest = latest == 1;
  m.shuffle.window = d.u32();
  m.shuffle.batch_size = d.u32();
  m.shuffle.seed = d.u64();
  m.shuffle.passes = d.u32();
  if (m.shuffle.window == 0 || m.shuffle.window > 4096 || m.shuffle.batch_size == 0 ||
      m.shuffle.batch_size > 65536 || m.shuffle.passes == 0 || m.shuffle.passes > 1024) {
    throw ProtocolError("shuffle parameters out of range");
  }
  const auto nvars = d.count(1024);
  for (std::size_t i = 0; i < nvars; ++i) m.shuffle.variables.push_back(d.str(4096));
  // Trailing fields, in order, each sent when it or a later one is set: the last one
  // sent is never empty.
  const std::string* last = nullptr;
  if (d.remaining() > 0) last = &(m.plane_option = d.str(256));
  if (d.remaining() > 0) last = &(m.writer_ops = d.str(kMaxWriterOpsBytes));
  if (d.remaining() > 0) last = &(m.control_ring = d.str(64));
  if (last && last->empty()) throw ProtocolError("empty last trailing field in hello");
  d.finish();
  return m;
}

std::vector<std::byte> encode(const Welcome& m) {
  Encoder e(MsgType::Welcome);
  e.u64(m.reader_id);
  e.str(m.data_plane);
  e.str(m.shm_prefix);
  e.u64(m.writer_key);
  e.u32(m.writer_pid);
  e.str(m.group);
  e.u64(m.first_step);
  if (!m.plane_detail.empty() || m.control_ring) {
    e.str(m.plane_detail);
    e.u32(static_cast<std::uint32_t>(m.plane_addresses.size()));
    for (const auto& a : m.plane_addresses) e.str(a);
  }
  if (m.control_ring) e.u8(1);
  return std::move(e.finish());
}

Welcome decode_welcome(std::span<const std::byte> p) {
  Decoder d(p);
  Welcome m;
  m.reader_id = d.u64();
  m.data_plane = d.str(64);
  m.shm_prefix = d.str(256);
  m.writer_key = d.u64();
  m.writer_pid = d.u32();
  m.group = d.str(256);
  m.first_step = d.u64();
  if (d.remaining() > 0) {
    m.plane_detail = d.str(4096);
    const auto n = d.count(1024);
    for (std::size_t i = 0; i < n; ++i) m.plane_addresses.push_back(d.str(4096));
    if (d.remaining() > 0) {
      if (d.u8() != 1) throw ProtocolError("bad control ring flag in welcome");
      m.control_ring = true;
    } else if (m.plane_detail.empty()) {
      throw ProtocolError("empty trailing plane detail in welcome");
    }
  }
  d.finish();
  return m;
}

std::vector<std::byte> encode(const ErrorMsg& m) {
  Encoder e(MsgType::Error);
  e.u32(m.code);
  e.str(m.message);
  return std::move(e.finish());
}

ErrorMsg decode_error(std::span<const std::byte> p) {
  Decoder d(p);
  ErrorMsg m;
  m.code = d.u32();
  m.message = d.str();
  d.finish();
  return m;
}

std::vector<std::byte> encode(const StepMeta& m) {
  Encoder e(MsgType::Announce);
  e.u64(m.index);
  e.u64(m.dropped);
  e.u32(static_cast<std::uint32_t>(m.segments.size()));
  for (const auto& s : m.segments) {
    e.u32(s.id);
    e.u64(s.size);
  }
  e.u32(static_cast<std::uint32_t>(m.retired.size()));
  for (auto id : m.retired) e.u32(id);
  e.u32(static_cast<std::uint32_t>(m.variables.size()));
  for (const auto& v : m.variables) {
    e.str(v.name);
    e.u8(static_cast<std::uint8_t>(v.dtype));
    e.u8(static_cast<std::uint8_t>(v.kind));
    e.dims(v.shape);
    e.u32(static_cast<std::uint32_t>(v.blocks.size()));
    for (const auto& b : v.blocks) {
      e.dims(b.start);
      e.dims(b.count);
      e.u32(b.segment);
      e.u64(b.offset);
    }
  }
  e.attributes(m.attributes);
  e.u8(m.stream_attributes ? 1 : 0);
  if (m.stream_attributes) e.attributes(*m.stream_attributes);
  e.u32(m.flags);
  e.str(m.source);
  if (!m.remote.empty()) {
    e.u32(static_cast<std::uint32_t>(m.remote.size()));
    for (const auto& r : m.remote) {
      e.u32(r.id);
      e.u32(r.endpoint);
      e.u64(r.address);
      e.u64(r.key);
    }
  }
  return std::move(e.finish());
}

StepMeta decode_step(std::span<const std::byte> p) {
  Decoder d(p);
  StepMeta m;
  m.index = d.u64();
  m.dropped = d.u64();
  std::map<std::uint32_t, std::uint64_t> seg_size;
  const auto nseg = d.count(1u << 16);
  for (std::size_t i = 0; i < nseg; ++i) {
    SegmentInfo s;
    s.id = d.u32();
    s.size = d.u64();
    if (!seg_size.emplace(s.id, s.size).second) throw ProtocolError("segment listed twice");
    m.segments.push_back(s);
  }
  const auto nret = d.count(1u << 16);
  for (std::size_t i = 0; i < nret; ++i) m.retired.push_back(d.u32());
  const auto nvar = d.count(1u << 16);
  for (std::size_t i = 0; i < nvar; ++i) {
    VariableMeta v;
    v.name = d.str(4096);
    if (v.name.empty()) throw ProtocolError("variable with an empty name");
    const auto dt = d.u8();
    if (!dtype_valid(dt)) throw ProtocolError("variable '" + v.name + "' has a bad dtype");
    v.dtype = static_cast<DType>(dt);
    const auto kind = d.u8();
    if (kind > static_cast<std::uint8_t>(ArrayKind::Local)) {
      throw ProtocolError("variable '" + v.name + "' has an unknown array kind");
    }
    v.kind = static_cast<ArrayKind>(kind);
    v.shape = d.dims();
    if (v.kind == ArrayKind::Joined && v.shape.empty()) {
      throw ProtocolError("joined variable '" + v.name + "' has rank 0");
    }
    const auto elem = dtype_size(v.dtype);
    const auto nblk = d.count();
    for (std::size_t j = 0; j < nblk; ++j) {
      BlockMeta b;
      b.start = d.dims();
      b.count = d.dims();
      b.segment = d.u32();
      b.offset = d.u64();
      if (b.start.size() != v.shape.size() || b.count.size() != v.shape.size()) {
        throw ProtocolError("block of '" + v.name + "' has the wrong rank");
      }
      std::uint64_t n = elem;
      for (std::size_t k = 0; k < v.shape.size(); ++k) {
        if (b.start[k] > v.shape[k] || b.count[k] > v.shape[k] - b.start[k]) {
          throw ProtocolError("block of '" + v.name + "' lies outside its global shape");
        }
        n = checked_mul(n, b.count[k], "block size");
      }
      b.nbytes = n;
      auto it = seg_size.find(b.segment);
      if (it == seg_size.end()) throw ProtocolError("block refers to an unlisted segment");
      if (b.offset > it->second || b.nbytes > it->second - b.offset) {
        throw ProtocolError("block of '" + v.name + "' runs past the end of its segment");
      }
      v.blocks.push_back(std::move(b));
    }
    m.variables.push_back(std::move(v));
  }
  m.attributes = d.attributes();
  const auto has_stream = d.u8();
  if (has_stream > 1) throw ProtocolError("bad stream-attribute flag");
  if (has_stream) m.stream_attributes = d.attributes();
  m.flags = d.u32();
  if (m.flags & ~std::uint32_t{kRedelivered | kBatch}) throw ProtocolError("unknown step flags");
  m.source = d.str(128);
  if (d.remaining() > 0) {
    const auto nremote = d.count(1u << 16);
    if (nremote == 0) throw ProtocolError("empty trailing remote-key list in a step");
    for (std::size_t i = 0; i < nremote; ++i) {
      RemoteSegment r;
      r.id = d.u32();
      r.endpoint = d.u32();
      r.address = d.u64();
      r.key = d.u64();
      if (!seg_size.contains(r.id)) throw ProtocolError("remote key for an unlisted segment");
      m.remote.push_back(r);
    }
  }
  d.finish();
  return m;
}

std::vector<std::byte> encode(const Ack& m) {
  Encoder e(MsgType::Ack);
  e.u64(m.step);
  return std::move(e.finish());
}

Ack decode_ack(std::span<const std::byte> p) {
  Decoder d(p);
  Ack m{d.u64()};
  d.finish();
  return m;
}

std::vector<std::byte> encode(const ReadRequest& m) {
  Encoder e(MsgType::ReadRequest);
  e.u64(m.step);
  e.u32(static_cast<std::uint32_t>(m.ranges.size()));
  for (const auto& r : m.ranges) {
    e.u32(r.segment);
    e.u64(r.offset);
    e.u64(r.length);
  }
  return std::move(e.finish());
}

ReadRequest decode_read_request(std::span<const std::byte> p) {
  Decoder d(p);
  ReadRequest m;
  m.step = d.u64();
  const auto n = d.count();
  // Each range is 20 bytes on the wire: refuse counts the payload cannot hold.
  if (n > d.remaining() / 20) throw ProtocolError("read request lists more ranges than it holds");
  m.ranges.resize(n);
  for (auto& r : m.ranges) {
    r.segment = d.u32();
    r.offset = d.u64();
    r.length = d.u64();
  }
  d.finish();
  return m;
}

std::vector<std::byte> encode(const ReadReply& m) {
  Encoder e(MsgType::ReadReply);
  e.u64(m.step);
  e.u64(m.total);
  return std::move(e.finish());
}

ReadReply decode_read_reply(std::span<const std::byte> p) {
  Decoder d(p);
  ReadReply m;
  m.step = d.u64();
  m.total = d.u64();
  d.finish();
  return m;
}

std::vector<std::byte> encode_empty(MsgType type) {
  Encoder e(type);
  return std::move(e.finish());
}

}  // namespace twinstream::wire
