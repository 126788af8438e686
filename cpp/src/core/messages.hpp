#pragma once
// The messages of the control and data connections, with their encoders and validating
// decoders. Layout of each payload is the order of the fields below.
//
// Trailing sections: fields marked "trailing" come after everything else and are encoded
// only when a reader uses a plane that needs them (fabric, mpi). Decoders read them only
// when bytes remain, so a message without them is the same bytes as before they existed
// and version 1 peers that never use those planes are unaffected.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/wire.hpp"
#include "twinstream/attribute.hpp"
#include "twinstream/dtype.hpp"
#include "twinstream/options.hpp"
#include "twinstream/selection.hpp"

namespace twinstream::wire {

using Token = std::array<std::uint8_t, kTokenSize>;

/// Longest Hello::writer_ops text (the writer reads a hello of at most 8 KiB).
inline constexpr std::size_t kMaxWriterOpsBytes = 4096;

enum class Role : std::uint8_t { Control = 1, Data = 2 };

/// First frame of every connection, reader -> writer.
struct Hello {
  std::uint16_t version = kProtocolVersion;
  Token token{};
  Role role = Role::Control;
  std::uint64_t reader_id = 0;   // data connections: the id the writer gave in Welcome
  std::string group;
  std::string policy;
  std::string data_plane;        // requested: auto, inproc, shm, tcp
  std::string host_id;           // hostname + boot id: tells "same host"
  std::uint32_t pid = 0;
  std::uint32_t prefetch = 1;    // steps the writer may hand ahead of end_step
  bool latest = false;           // always the newest step; older ones are skipped
  ShuffleOptions shuffle;        // policy shuffle: the group's parameters
  // Trailing: what the reader resolved for its plane (fabric: the provider it opened).
  std::string plane_option;
  // Trailing, after plane_option (then sent even when empty): the pipelines the reader
  // asks the writer to run for it, "var=<pipeline key>;var2=<key>" (reader option
  // writer_ops).
  std::string writer_ops;
  // Trailing, after writer_ops (then sent even when empty): the control ring this
  // same-host reader created (control/control_ring.hpp); empty: the socket only.
  std::string control_ring;
};

/// Writer's answer to a control Hello.
struct Welcome {
  std::uint64_t reader_id = 0;
  std::string data_plane;        // granted
  std::string shm_prefix;        // name prefix of the writer's shared-memory segments
  std::uint64_t writer_key = 0;  // identifies the writer inside one process (inproc)
  std::uint32_t writer_pid = 0;
  std::string group;             // the group joined (a generated name if none was asked)
  std::uint64_t first_step = 0;  // the oldest step this reader will be offered (a reader
                                 // job's ranks start together at the latest of theirs)
  // Trailing, for the RMA planes: text the plane reads (fabric: "provider=tcp;fabric=..."),
  // and the address of each writer endpoint a RemoteSegment can name (fabric: fi_getname
  // bytes). One endpoint today; a multi-rank writer lists one per rank.
  std::string plane_detail;
  std::vector<std::string> plane_addresses;
  // Trailing, after the plane detail (then sent even when empty): the writer mapped the
  // reader's control ring and sends every frame after this one through it.
  bool control_ring = false;
};

/// A refusal or failure; the sender closes the connection after it.
struct ErrorMsg {
  std::uint32_t code = 0;
  std::string message;
};
enum ErrorCode : std::uint32_t {
  kBadToken = 1,
  kVersionMismatch = 2,
  kBadRequest = 3,
  kUnavailable = 4,
  kPlaneUnavailable = 5,  // the data plane asked for cannot be opened on the writer's side
};

/// Where one block's bytes are in the writer's memory.
struct BlockMeta {
  Dims start;
  Dims count;
  std::uint32_t segment = 0;
  std::uint64_t offset = 0;
  std::uint64_t nbytes = 0;  // derived: elements * dtype size
};
struct VariableMeta {
  std::string name;
  DType dtype = DType::Float64;
  Dims shape;
  std::vector<BlockMeta> blocks;
  ArrayKind kind = ArrayKind::Global;  // Joined: shape[0] sums this writer's blocks;
                                       // Local: shape is the blocks' elementwise maximum
};
struct SegmentInfo {
  std::uint32_t id = 0;
  std::uint64_t size = 0;
};
/// How an RMA plane reaches a segment: the writer endpoint that exposes it (index into
/// Welcome::plane_addresses), the remote address of its first byte and the remote key.
struct RemoteSegment {
  std::uint32_t id = 0;
  std::uint32_t endpoint = 0;
  std::uint64_t address = 0;
  std::uint64_t key = 0;
};

/// StepMeta::flags bits.
enum StepFlags : std::uint32_t {
  kRedelivered = 1u << 0,  // handed before to a group member that left without end_step
  kBatch = 1u << 1,        // a shuffle batch: index is the batch number in the group
};

/// A step handed to one reader.
struct StepMeta {
  std::uint64_t index = 0;
  std::uint64_t dropped = 0;        // steps dropped for this reader so far
  std::vector<VariableMeta> variables;
  Attributes attributes;
  std::optional<Attributes> stream_attributes;  // present when they changed
  std::vector<SegmentInfo> segments;  // every segment a block refers to
  std::vector<std::uint32_t> retired; // segments the reader may unmap
  std::uint32_t flags = 0;            // StepFlags
  std::string source;                 // the ensemble member that wrote it (fan-in)
  // Trailing, for the RMA planes: how to reach each listed segment.
  std::vector<RemoteSegment> remote;
};

struct Ack {
  std::uint64_t step = 0;
};

/// A byte range of a writer segment.
struct Range {
  std::uint32_t segment = 0;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};
/// Data connection: pull these ranges of a held step. The reply is a ReadReply header
/// followed by the ranges' bytes back to back.
struct ReadRequest {
  std::uint64_t step = 0;
  std::vector<Range> ranges;
};
struct ReadReply {
  std::uint64_t step = 0;
  std::uint64_t total = 0;
};

std::vector<std::byte> encode(const Hello& m);
std::vector<std::byte> encode(const Welcome& m);
std::vector<std::byte> encode(const ErrorMsg& m);
std::vector<std::byte> encode(const StepMeta& m);
std::vector<std::byte> encode(const Ack& m);
std::vector<std::byte> encode(const ReadRequest& m);
std::vector<std::byte> encode(const ReadReply& m);
/// Frames with an empty payload (End, Heartbeat, Bye).
std::vector<std::byte> encode_empty(MsgType type);

// Decoders take the payload (header stripped) and validate everything they can.
Hello decode_hello(std::span<const std::byte> payload);
Welcome decode_welcome(std::span<const std::byte> payload);
ErrorMsg decode_error(std::span<const std::byte> payload);
StepMeta decode_step(std::span<const std::byte> payload);
Ack decode_ack(std::span<const std::byte> payload);
ReadRequest decode_read_request(std::span<const std::byte> payload);
ReadReply decode_read_reply(std::span<const std::byte> payload);

}  // namespace twinstream::wire
