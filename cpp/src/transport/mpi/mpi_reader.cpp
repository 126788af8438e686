// Reader side of the mpi plane: its pair communicator and dynamic window with the writer,
// one passive-target epoch (MPI_Win_lock_all) for its whole life, and every piece of a read
// an MPI_Rget straight into its destination (no copy on this side). An Rget's request
// completes when its bytes are in local memory.
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <map>

#include "control/socket.hpp"
#include "core/log.hpp"
#include "transport/mpi/mpi_pairing.hpp"
#include "transport/mpi/mpi_runtime.hpp"
#include "transport/mpi/mpi_writer.hpp"
#include "transport/registry.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::transport {
namespace {

constexpr std::uint64_t kMaxPiece = 1u << 30;  // Rget counts are ints

using mpi::field;

class MpiReader final : public DataPlaneReader {
 public:
  explicit MpiReader(const ReaderContext& ctx)
      : stream_(ctx.stream), timeout_(ctx.io_timeout), control_fd_(ctx.control_fd) {
    const auto& detail = ctx.welcome.plane_detail;
    int rc = MPI_SUCCESS;
    if (field(detail, "mode") == "world") {
      MPI_Group world_group = MPI_GROUP_NULL, two = MPI_GROUP_NULL;
      MPI_Comm_group(MPI_COMM_WORLD, &world_group);
      const int ranks[2] = {std::stoi(field(detail, "writer_rank")), mpi::world_rank()};
      MPI_Group_incl(world_group, 2, ranks, &two);
      rc = MPI_Comm_create_group(MPI_COMM_WORLD, two, std::stoi(field(detail, "tag")), &pair_);
      MPI_Group_free(&two);
      MPI_Group_free(&world_group);
    } else if (field(detail, "mode") == "port") {
      MPI_Comm inter = MPI_COMM_NULL;
      rc = MPI_Comm_connect(field(detail, "port").c_str(), MPI_INFO_NULL, 0, MPI_COMM_SELF, &inter);
      if (rc == MPI_SUCCESS) rc = MPI_Intercomm_merge(inter, 1, &pair_);
    } else {
      throw ProtocolError("stream '" + stream_ + "': the writer granted the mpi plane with "
                          "an unknown pairing '" + detail + "'");
    }
    check(rc, "pairing with the writer (MPI_Comm_connect / MPI_Comm_create_group)");
    MPI_Comm_set_errhandler(pair_, MPI_ERRORS_RETURN);
    const std::uint64_t id = ctx.welcome.reader_id;
    check(MPI_Send(&id, 1, MPI_UINT64_T, 0, mpi::kIdTag, pair_), "MPI_Send");
    check(MPI_Win_create_dynamic(MPI_INFO_NULL, pair_, &win_), "MPI_Win_create_dynamic");
    check(MPI_Barrier(pair_), "MPI_Barrier");
    check(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_), "MPI_Win_lock_all");
  }
  ~MpiReader() override { release(); }
  void on_end() override { release(); }

  std::string_view name() const override { return "mpi"; }
  void on_step(const wire::StepMeta& step) override {
    for (auto id : step.retired) remote_.erase(id);
    for (const auto& r : step.remote) remote_[r.id] = r;
  }
  std::shared_ptr<const std::byte> view(std::uint32_t, std::uint64_t, std::uint64_t) override {
    return nullptr;
  }

  void read(std::uint64_t step, std::span<const Copy> copies) override {
    finish_read(start_read(step, copies));
  }

  // Every Rget completes on its own (the writer's progress agent serves it): a read of the
  // next step can be under way while this thread does other work.
  bool reads_in_background() const override { return true; }

  std::uint64_t start_read(std::uint64_t, std::span<const Copy> copies) override {
    if (!healthy_) {
      throw ConnectionError("stream '" + stream_ + "': an earlier mpi read failed; reopen the reader");
    }
    if (released_) {
      throw ProtocolError("stream '" + stream_ + "': mpi read after the end of the stream");
    }
    const auto ticket = ++last_ticket_;
    auto& requests = pending_[ticket];
    for (const auto& c : copies) {
      auto it = remote_.find(c.segment);
      if (it == remote_.end()) {
        throw ProtocolError("stream '" + stream_ + "': segment " + std::to_string(c.segment) +
                            " has no mpi address from the writer");
      }
      for (std::uint64_t done = 0; done < c.length;) {
        const auto n = std::min(c.length - done, kMaxPiece);
        MPI_Request req = MPI_REQUEST_NULL;
        check(MPI_Rget(c.dst + done, static_cast<int>(n), MPI_BYTE, 0,
                       static_cast<MPI_Aint>(it->second.address + c.offset + done),
                       static_cast<int>(n), MPI_BYTE, win_, &req),
              "MPI_Rget");
        requests.push_back(req);
        done += n;
      }
    }
    return ticket;
  }

  void finish_read(std::uint64_t ticket) override {
    auto it = pending_.find(ticket);
    if (it == pending_.end()) return;
    auto& requests = it->second;
    // MPI_Waitall cannot be bounded: test, and give up when the writer's control
    // connection closes or the deadline passes.
    const auto deadline = net::deadline_after(timeout_);
    const auto spin_until = net::Clock::now() + std::chrono::microseconds(50);
    while (true) {
      // A burst of progress calls between the checks below: each is a round of MPICH's
      // progress engine, which moves the read along (a poll and a yield per call halve it).
      for (int i = 0; i < 64; ++i) {
        int done = 0;
        check(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done,
                          MPI_STATUSES_IGNORE),
              "MPI_Testall");
        if (done) {
          pending_.erase(it);
          return;
        }
      }
      const auto now = net::Clock::now();
      if (now < spin_until) continue;
      if (now >= deadline) fail("no data within " + std::to_string(timeout_) + " s");
      pollfd p{control_fd_, POLLRDHUP, 0};
      if (control_fd_ >= 0 && ::poll(&p, 1, 0) > 0 &&
          (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
        fail("the writer closed its control connection (it exited or was killed)");
      }
      sched_yield();
    }
  }

 private:
  // Ends the epoch and frees the window together with the writer (mpi_pairing.hpp), once:
  // at the end of the stream, or when the reader closes before it. After a failed read the
  // writer may be gone, and everything is left as it is.
  void release() {
    if (released_ || win_ == MPI_WIN_NULL) return;
    // Reads still under way (a step read ahead, then not taken) land first.
    while (healthy_ && !pending_.empty()) {
      try {
        finish_read(pending_.begin()->first);
      } catch (const Error&) {
        // healthy_ is false now: the window stays as it is
      }
    }
    released_ = true;
    if (!healthy_) {
      mpi::note_window_left_open();
      return;
    }
    MPI_Win_unlock_all(win_);
    free_window();
  }
  // Gives up, leaving the window open, when the writer does not answer in time. The
  // communicator stays: freeing it is collective too and costs MPICH nothing at finalize.
  void free_window() {
    int bye = 1, ack = 0;
    MPI_Request sent = MPI_REQUEST_NULL, answer = MPI_REQUEST_NULL;
    if (MPI_Isend(&bye, 1, MPI_INT, 0, mpi::kByeTag, pair_, &sent) != MPI_SUCCESS) return;
    MPI_Irecv(&ack, 1, MPI_INT, 0, mpi::kByeAckTag, pair_, &answer);
    const auto deadline = net::deadline_after(mpi::kTeardownWait);
    int acked = 0;
    while (!acked && net::Clock::now() < deadline) {
      if (MPI_Test(&answer, &acked, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
      if (!acked) sched_yield();
    }
    if (!acked) {
      log::info("stream '" + stream_ + "': the writer did not answer the mpi teardown within " +
                std::to_string(mpi::kTeardownWait) + " s; the window stays open");
      mpi::note_window_left_open();
      MPI_Cancel(&answer);
      MPI_Request_free(&answer);
      MPI_Request_free(&sent);
      return;
    }
    MPI_Wait(&sent, MPI_STATUS_IGNORE);
    if (MPI_Send(&bye, 1, MPI_INT, 0, mpi::kCommitTag, pair_) != MPI_SUCCESS) return;
    MPI_Win_free(&win_);
  }
  void check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) fail(std::string(what) + " failed: " + mpi::error_text(rc));
  }
  [[noreturn]] void fail(const std::string& what) {
    healthy_ = false;
    throw ConnectionError("stream '" + stream_ + "': mpi data plane: " + what +
                          "; reopen the reader (or use data_plane='tcp')");
  }

  std::string stream_;
  double timeout_;
  int control_fd_;
  MPI_Comm pair_ = MPI_COMM_NULL;
  MPI_Win win_ = MPI_WIN_NULL;
  bool healthy_ = true;
  bool released_ = false;
  std::map<std::uint32_t, wire::RemoteSegment> remote_;
  std::map<std::uint64_t, std::vector<MPI_Request>> pending_;  // reads started, by ticket
  std::uint64_t last_ticket_ = 0;
};

PlaneChoice resolve(const std::string& stream, const ReaderOptions&) {
  mpi::ensure_initialized(stream);
  // Inside an MPMD launch the writer may be in this MPI_COMM_WORLD: say who we are, and the
  // writer pairs through it if so (else through a port). The tag tells apart the readers
  // of one process.
  static std::atomic<int> seq{0};
  const int tag = seq.fetch_add(1) % 32768;
  std::string option = "|pid=" + std::to_string(::getpid());
  if (mpi::launched_by_mpiexec()) {
    option += ";world=" + mpi::world_identity() + ";rank=" + std::to_string(mpi::world_rank()) +
              ";tag=" + std::to_string(tag);
  }
  return {option, "rank " + std::to_string(mpi::world_rank()), ""};
}

}  // namespace

Entry mpi_entry() {
  Entry e{"mpi", true, "",
          [](const ReaderContext& ctx) -> std::unique_ptr<DataPlaneReader> {
            return std::make_unique<MpiReader>(ctx);
          }};
  e.make_writer = [](const WriterContext& ctx,
                     const std::string&) -> std::unique_ptr<DataPlaneWriter> {
    return std::make_unique<mpi::MpiWriter>(ctx);
  };
  e.resolve = resolve;
  e.on_writer_open = [](const WriterContext& ctx) {
    if (!mpi::launched_by_mpiexec()) return;
    try {
      mpi::ensure_initialized(ctx.stream);
    } catch (const Unavailable& e) {
      // The writer works without the mpi plane; a reader asking for it gets this reason.
      log::info(e.what());
    }
  };
  return e;
}

}  // namespace twinstream::transport
