#pragma once
// Writer internals. Two threads touch a writer: the user's thread (begin_step .. end_step)
// and the service thread (accepts readers, handshakes, acks, heartbeats), plus one tcp
// server thread per tcp reader. `mu_` guards everything both sides touch.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "control/connection.hpp"
#include "control/control_ring.hpp"
#include "control/socket.hpp"
#include "core/batches.hpp"
#include "core/contact.hpp"
#include "core/reader_group.hpp"
#include "core/segment.hpp"
#include "core/step_queue.hpp"
#include "core/writer_cache.hpp"
#include "ops/pipeline.hpp"
#include "transport/tcp/tcp_server.hpp"
#include "transport/writer_plane.hpp"
#include "twinstream/writer.hpp"

namespace twinstream {

class Writer::Impl final : public transport::StepAccess {
 public:
  Impl(std::string name, WriterOptions options);
  ~Impl() override;

  void begin_step();
  void put(std::string_view name, DType dtype, const Dims& shape, const Dims& start,
           const Dims& count, const void* data);
  void put_block(std::string_view name, ArrayKind kind, DType dtype, const Dims& count,
                 const void* data);
  std::span<std::byte> reserve(std::string_view name, DType dtype, const Dims& shape,
                               const Dims& start, const Dims& count);
  std::shared_ptr<std::byte> reserve_shared(std::string_view name, DType dtype, const Dims& shape,
                                            const Dims& start, const Dims& count);
  void abort_step();
  void set_step_attribute(std::string_view name, AttributeValue value);
  void set_attribute(std::string_view name, AttributeValue value);
  void define(std::string_view name, std::string_view pipeline, Placement placement,
              std::optional<DType> dtype, const Dims& shape);
  void end_step();
  void close();
  WriterStats stats() const;

  std::vector<std::shared_ptr<Segment>> held_segments(ReaderId reader,
                                                      std::uint64_t step) override;

  const std::string name_;
  const WriterOptions opt_;
  std::string contact_path_;
  std::string address_;

 private:
  // A connected reader as the writer sees it.
  struct Peer {
    ReaderId id = 0;
    net::Fd fd;
    std::string who;    // for log lines: "reader 3 (pid 123, 127.0.0.1:5555)"
    std::string plane;
    net::FrameAssembler in;
    std::vector<std::byte> out;  // frames not yet accepted by the socket (or the ring)
    std::size_t out_pos = 0;
    // Same-host control path (control/control_ring.hpp): once set, every frame to the
    // reader goes through it, and its acknowledgements come through it.
    std::optional<net::ControlRing> ring;
    net::FrameAssembler ring_in;
    std::deque<std::uint64_t> held;  // steps handed and not yet acknowledged, oldest first
    std::uint32_t prefetch = 1;      // how many it may hold at once
    GroupId group = 0;
    bool latest = false;             // takes the newest step, holds one at a time
    bool shuffle = false;            // member of a shuffle group: gets batches
    std::uint64_t last_take = 0;     // when it was last handed a step (pump order)
    std::uint64_t dropped = 0;
    std::uint64_t attrs_sent = 0;    // stream-attribute version it has
    std::uint64_t retired_sent = 0;  // retired-segment sequence it has
    bool end_sent = false;
    bool dead = false;
    std::string dead_reason;
    net::Clock::time_point last_send{};
    // Pipelines it asked the writer to run (reader option writer_ops), and what it holds
    // of their results, by step: cache entries it pins, or segments of its own.
    std::vector<std::pair<std::string, ops::Pipeline>> writer_ops;
    struct Served {
      std::optional<WriterCacheKey> key;  // empty: an uncached result, only this reader's
      std::shared_ptr<Segment> segment;
    };
    std::map<std::uint64_t, std::vector<Served>> served;
  };
  // A connection that has not finished its handshake.
  struct Pending {
    net::Fd fd;
    net::FrameAssembler in;
    net::Deadline deadline;
    std::string who;
  };

  // Step building (user thread only).
  wire::VariableMeta& variable_for(std::string_view name, ArrayKind kind, DType dtype,
                                   const Dims& shape, const Dims& start, const Dims& count);
  std::shared_ptr<Segment> new_segment(std::size_t min_size);
  // Step memory for a new block of `name`, and the segment it lies in.
  struct Block {
    std::span<std::byte> bytes;
    std::uint32_t segment = 0;
  };
  // Joined and local blocks pass their own count as `shape` (start zero): they are placed
  // here (joined: after this rank's earlier blocks) and grow the variable's shape.
  Block add_block(std::string_view name, ArrayKind kind, DType dtype, const Dims& shape,
                  const Dims& start, const Dims& count);

  // Pre-processing (writer_ops.cpp, user thread only). A variable's pipeline, where it
  // runs, the running statistics it keeps and the input it was last checked against.
  struct Definition {
    ops::Pipeline pipeline;
    Placement placement = Placement::Writer;
    ops::PipelineState state;
    std::optional<std::pair<DType, Dims>> checked;
  };
  // Checks the pipeline of `name` (if any) against a put's dtype and global shape.
  void check_definition(std::string_view name, DType dtype, const Dims& shape);
  // Runs the pipelines of the step's defined variables (end_step, before publishing).
  void run_definitions();

  // Pipelines readers ask the writer to run (writer_requests.cpp, under mu_).
  // Replaces the requested variables of `m` (an announcement of `s` to `p`) with their
  // outputs, from the cache or computed now.
  void serve_writer_ops(Peer& p, const QueuedStep& s, wire::StepMeta& m);
  std::shared_ptr<const WriterCacheResult> compute_request(const QueuedStep& s,
                                                           const wire::VariableMeta& v,
                                                           const ops::Pipeline& pipeline);
  // The reader is done with `step` (acknowledged, or left): unpins what it was served.
  void release_served(Peer& p, std::uint64_t step);
  // Drops cache entries (and running-statistics records) of steps the queue released.
  void drop_released_entries();
  // A segment for a result, registered like step memory (shm name, planes, tcp server).
  std::shared_ptr<Segment> result_segment(std::size_t size);
  // Segments no reader will be handed again: readers are told to unmap them.
  void retire(const std::vector<std::shared_ptr<Segment>>& segments);
  // The global array of `v` in `storage`, or a view of the step memory when one block
  // covers it (parts no block covers are zeros, as a reader would see them).
  static const void* assemble(const SegmentDirectory& segments, const wire::VariableMeta& v,
                              ops::Tensor& storage);

  // Delivery (under mu_).
  void send(Peer& p, const std::vector<std::byte>& frame);
  // Moves what is queued for `p` through its ring or its socket, as far as it goes now.
  void flush(Peer& p);
  void flush_socket(Peer& p);
  void flush_ring(Peer& p);
  // Control rings: what readers acknowledged there, handled now.
  void read_ring(Peer& p);
  void read_rings();
  // Whether `p` should ring when it acknowledges: the writer waits on its acknowledgements
  // (it holds all it may, the user's thread waits for room, or the stream is closing).
  void want_acks(Peer& p);
  // Steps `p` may hold at once (handed ahead of its end_step).
  std::uint32_t credit(const Peer& p) const;
  void pump(Peer& p);
  void pump_all();
  wire::StepMeta announcement(Peer& p, const QueuedStep& s);
  wire::StepMeta batch_announcement(Peer& p, const Batch& b);
  // Per-reader parts of an announcement: stream attributes if they changed, segments
  // the reader may unmap.
  void announce_common(Peer& p, wire::StepMeta& m, const QueuedStep& newest_source);
  // Offers a published step to the shuffle groups; returns those that keep it.
  std::vector<std::pair<GroupId, std::uint64_t>> shuffle_claims(QueuedStep& s);
  void count_dropped(const StepQueue::Dropped& d);
  void handle_frame(Peer& p, const net::Frame& f);
  void remove_reader(ReaderId id, const std::string& reason);
  void reap_dead();
  void release(std::unique_ptr<Slot> slot);
  void wake();

  // Service thread (writer_service.cpp).
  void serve();
  void accept_new();
  void handshake(Pending& c, const net::Frame& f);  // may move c.fd away
  void refuse(Pending& c, std::uint32_t code, const std::string& message);
  void send_heartbeats();

  wire::Token token_{};
  std::string shm_prefix_;
  std::uint64_t writer_key_ = 0;
  net::Fd listen_;
  net::Fd wake_fd_;
  std::shared_ptr<SegmentDirectory> segments_ = std::make_shared<SegmentDirectory>();
  std::atomic<std::uint32_t> next_segment_id_{1};  // user and service threads
  std::unique_ptr<transport::TcpServer> tcp_;
  std::unique_ptr<transport::WriterPlanes> planes_;  // RMA planes (fabric, mpi), opened on demand

  mutable std::mutex mu_;
  std::condition_variable cv_;
  StepQueue queue_;
  ReaderGroups groups_;
  std::map<GroupId, SampleSignature> signatures_;  // shuffle groups' sampled variables
  std::map<ReaderId, Peer> readers_;
  std::vector<Pending> pending_;
  std::vector<std::unique_ptr<Slot>> free_slots_;
  Attributes stream_attrs_;
  std::uint64_t stream_attrs_version_ = 0;
  std::shared_ptr<const Attributes> stream_snapshot_;  // what steps carry
  std::uint64_t snapshot_version_ = 0;
  std::deque<std::pair<std::uint64_t, std::uint32_t>> retired_log_;  // (sequence, segment)
  std::uint64_t retired_seq_ = 0;
  ReaderId next_reader_id_ = 1;
  std::uint64_t takes_ = 0;  // hand-outs so far (orders Peer::last_take)
  bool closing_ = false;
  bool user_waits_ = false;  // begin_step waits for room in the queue
  bool stop_ = false;
  bool closed_ = false;
  WriterStats stats_;
  WriterCache cache_{opt_.cache_bytes};
  // Running statistics of requested pipelines, per (variable, pipeline key): folded in
  // once per step, on the step's first miss; what each step published is kept while the
  // step is queued, so that a recompute after an eviction gives the same bytes.
  struct RequestState {
    ops::PipelineState state;
    std::map<std::uint64_t, Attributes> published;
  };
  std::map<std::pair<std::string, std::string>, RequestState> request_states_;

  bool in_step_ = false;
  bool first_step_ = true;
  std::uint64_t next_index_ = 0;
  std::unique_ptr<Slot> slot_;
  std::vector<wire::VariableMeta> vars_;
  Attributes step_attrs_;
  std::map<std::string, Definition, std::less<>> definitions_;
  double ops_seconds_ = 0, ops_last_seconds_ = 0;  // under mu_ (stats() reads them)
  std::uint64_t ops_steps_ = 0;
  std::uint64_t ops_unpublished_bytes_ = 0;  // inputs replaced by outputs in this step

  std::thread service_;
};

}  // namespace twinstream
