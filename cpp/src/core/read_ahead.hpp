#pragma once
// Reading the next step ahead (option preload; ADIOS2's SST calls it PreloadMode) on the
// planes whose reads run in the background (mpi). While the reader works on step N, the
// pieces it read of step N-1 are read of step N+1, announced but not yet begun, into a
// buffer of its own. A read of step N+1 that asks for those pieces is then served from
// memory (one memcpy, or none for get() of a whole block), and the transfer has
// overlapped the reader's other work (its loop, the acknowledgement, the next
// announcement) instead of following it. Pieces nobody asks for are counted as unused;
// the next step reads ahead what this one read.
// A piece is remembered by where it lies in its block (variable, block number, offset),
// so it carries over to a step whose block has the same size.
// Used by one thread (the reader's).
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/buffer_pool.hpp"
#include "core/messages.hpp"
#include "transport/transport.hpp"

namespace twinstream {

/// How many announced steps are read ahead of the held one (when announced in time). The
/// code takes any depth. Measured on one host under the one-node RMA settings, 1 MiB
/// steps: at depth 2, 5 of 8 launches ran at a third of the speed (2.5-3 GB/s, the
/// writer's progress thread copying all the time but slowly); at depth 1, 0 of 8 in the
/// next series (7-10 GB/s), though that slow mode still came in some later launches.
constexpr std::size_t kPreloadDepth = 1;

class ReadAhead {
 public:
  /// Buffers come from `buffers` (page-aligned, recycled).
  ReadAhead(transport::DataPlaneReader& plane, std::shared_ptr<BufferPool> buffers);
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  /// The k-th step announced after the held one (k = 1, 2, ...), if its announcement is
  /// already here; nullptr if not.
  using Peek = std::function<const wire::StepMeta*(std::size_t k)>;
  /// Reads `copies` of the held step `held`: the pieces read ahead from memory, the others
  /// through the plane. Starts reading the next announced steps ahead first (up to
  /// kPreloadDepth), so the plane is busy with them while this thread copies.
  void read(const wire::StepMeta& held, std::span<const transport::Copy> copies, const Peek& peek);
  /// The piece of the held step at exactly (segment, offset, length), if it was read
  /// ahead: landed, in memory the pointer owns (zero copy). Else nullptr, and the caller
  /// reads it. Starts reading ahead as read() does.
  std::shared_ptr<const std::byte> view(const wire::StepMeta& held, std::uint32_t segment,
                                        std::uint64_t offset, std::uint64_t length,
                                        const Peek& peek);
  /// A step begins: what was read ahead for it becomes the held step's.
  void begin_step(std::uint64_t index);
  /// The held step ends: its reads still under way land first (the writer may reuse its
  /// memory once it is acknowledged).
  void end_step();

  /// Waits for every read under way (before the reader says goodbye: the writer frees a
  /// step's memory once its reader has left, announced steps included).
  void land_all();
  /// After a failed land_all: reads may still land in this reader's buffers after it is
  /// gone (the writer hung, or MPI delivers late), so those buffers are kept until the
  /// process exits instead of freed.
  void abandon();

  std::uint64_t served_bytes() const { return served_; }
  std::uint64_t unused_bytes() const { return unused_; }

 private:
  // Where a piece lies in its step, independent of the step's memory.
  struct Piece {
    std::string variable;
    std::uint32_t block = 0;
    std::uint64_t block_bytes = 0;  // the block's size, which the next step's must match
    std::uint64_t offset = 0;       // in the block
    std::uint64_t length = 0;
    auto key() const { return std::tie(variable, block, offset, length); }
    bool operator<(const Piece& o) const { return key() < o.key(); }
  };
  struct Where {
    std::uint32_t segment;
    std::uint64_t offset;
    std::uint64_t length;
    bool operator==(const Where&) const = default;
  };
  struct WhereHash {
    std::size_t operator()(const Where& w) const {
      return std::hash<std::uint64_t>()(w.offset * 31 + w.segment) ^ (w.length << 1);
    }
  };
  // One step's reads ahead: into `buffer`, served by exact (segment, offset, length).
  struct Batch {
    bool active = false;
    std::uint64_t step = 0;
    std::uint64_t ticket = 0;
    bool landed = false;
    // Shared with the arrays view() hands out: the pool has it back once none is left.
    std::shared_ptr<std::byte> buffer;
    struct At {
      std::uint64_t offset;  // in buffer
      bool used;
    };
    std::unordered_map<Where, At, WhereHash> pieces;
    std::uint64_t bytes = 0;
    std::uint64_t used = 0;  // bytes of pieces asked for (each counted once)
  };
  // Learns what the held step reads, and starts reading the next steps ahead.
  void prepare(const wire::StepMeta& held, std::span<const transport::Copy> copies,
               const Peek& peek);
  void learn(const wire::StepMeta& held, std::span<const transport::Copy> copies);
  // Starts reading `next` ahead with what the step before the held one read (or, before
  // that is known, what the held one has read so far); false if nothing applies.
  bool start(const wire::StepMeta& next);
  void land(Batch& b);
  void retire(Batch& b);
  // Takes a piece of the held step: its place in held_.buffer, counted.
  const std::byte* take(Batch::At& at, std::uint64_t length);
  // Memory that reads may still land in after this reader has given up on them: kept until
  // the process exits rather than freed (or reused by the buffer pool).
  static void keep_forever(std::shared_ptr<std::byte> buffer);

  transport::DataPlaneReader& plane_;
  std::shared_ptr<BufferPool> buffers_;
  Batch held_;
  std::deque<Batch> ahead_;  // for the steps announced after the held one, in order
  std::set<Piece> learned_before_;  // what the step before the held one read
  std::set<Piece> learned_;         // what the held step has read so far
  std::size_t tried_ = 0;           // steps after the held one looked at for reading ahead
  // The held step's blocks by place in memory, to name the pieces it reads.
  struct Located {
    std::uint32_t segment;
    std::uint64_t begin;
    std::uint64_t end;
    std::uint32_t variable;
    std::uint32_t block;
  };
  std::vector<Located> blocks_;
  std::uint64_t blocks_of_ = UINT64_MAX;  // the step blocks_ is for
  std::uint64_t served_ = 0;
  std::uint64_t unused_ = 0;
};

}  // namespace twinstream
