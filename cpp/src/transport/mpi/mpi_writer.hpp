#pragma once
// Writer side of the mpi plane: every reader gets a two-process communicator with the
// writer (MPI_Comm_create_group inside one MPMD launch, MPI_Comm_accept on a port between
// separate launches) and a dynamic RMA window on it, to which every segment is attached
// once (segments are reused step after step). Readers MPI_Rget under a passive-target
// epoch they open once. A progress agent thread pairs readers, drives MPI's progress for
// the reads it serves and frees a departing reader's window with it (MPI_Win_free is
// collective, so both sides must agree first; see mpi_pairing.hpp).
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "transport/mpi/mpi_runtime.hpp"
#include "transport/writer_plane.hpp"

namespace twinstream::mpi {

class MpiWriter final : public transport::DataPlaneWriter {
 public:
  MpiWriter(const transport::WriterContext& ctx);
  ~MpiWriter() override;

  std::string_view name() const override { return "mpi"; }
  void add_segment(const std::shared_ptr<Segment>& s) override;
  void remove_segment(std::uint32_t id) override;
  transport::PlaneGrant admit(std::uint64_t reader, const std::string& option) override;
  bool describe(std::uint64_t reader, std::uint32_t id, wire::RemoteSegment& out) override;
  void reader_left(std::uint64_t reader) override;
  void steps_held(std::uint64_t reader, std::size_t held) override;
  void close() override;

 private:
  struct Pairing {
    std::uint64_t reader = 0;
    bool world = false;
    int reader_rank = 0;  // world mode
    int tag = 0;          // world mode
    std::string port;     // port mode: opened for this reader alone
  };
  using Clock = std::chrono::steady_clock;
  struct Window {
    MPI_Comm pair = MPI_COMM_NULL;
    MPI_Win win = MPI_WIN_NULL;
    bool live = true;        // its reader is still a reader of the stream
    Clock::time_point left;  // when it stopped being one
    bool acked = false;      // the reader asked to free the window and was answered
    Clock::time_point commit_by;
    bool abandoned = false;  // left without freeing it (died, or too late): never freed
  };
  void agent();
  bool pair_one(const Pairing& job);  // false: stopped
  // One round of the window teardown handshake with departing readers (agent thread).
  void tear_down_windows();
  void abandon(std::uint64_t reader);
  // Whether no window still waits for its reader's half of the teardown.
  bool windows_settled(Clock::time_point now) const;

  std::string stream_;
  std::string identity_;
  int rank_ = 0;
  std::string accepting_port_;  // the port the agent waits on in MPI_Comm_accept

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pairing> jobs_;
  bool stop_ = false;
  bool accepting_ = false;
  std::uint64_t kicks_ = 0;
  std::set<std::uint64_t> holding_;  // readers that hold steps: only they read
  std::map<std::uint32_t, std::shared_ptr<Segment>> segments_;
  std::map<std::uint64_t, Window> windows_;
  std::thread agent_;
};

}  // namespace twinstream::mpi
