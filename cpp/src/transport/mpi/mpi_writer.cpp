#include "transport/mpi/mpi_writer.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>

#include "core/log.hpp"
#include "transport/mpi/mpi_pairing.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::mpi {

namespace {
// How long the agent drives progress without pause after a step is handed to an mpi
// reader: a read of a large step is many progress rounds on the target's side.
constexpr auto kEagerAfterStep = std::chrono::milliseconds(500);
constexpr auto kTeardown = std::chrono::milliseconds(static_cast<int>(kTeardownWait * 1000));
constexpr auto kCommit = std::chrono::milliseconds(static_cast<int>(kCommitWait * 1000));
}  // namespace

MpiWriter::MpiWriter(const transport::WriterContext& ctx) : stream_(ctx.stream) {
  ensure_initialized(stream_);
  identity_ = world_identity();
  rank_ = world_rank();
  agent_ = std::thread([this] { agent(); });
}

MpiWriter::~MpiWriter() { close(); }

void MpiWriter::add_segment(const std::shared_ptr<Segment>& s) {
  std::lock_guard lock(mu_);
  if (segments_.contains(s->id())) return;
  segments_[s->id()] = s;
  for (auto& [reader, w] : windows_) {
    const int rc = MPI_Win_attach(w.win, s->data(), static_cast<MPI_Aint>(s->size()));
    if (rc != MPI_SUCCESS) throw Error("MPI_Win_attach failed: " + error_text(rc));
  }
}

void MpiWriter::remove_segment(std::uint32_t id) {
  std::lock_guard lock(mu_);
  auto it = segments_.find(id);
  if (it == segments_.end()) return;
  for (auto& [reader, w] : windows_) MPI_Win_detach(w.win, it->second->data());
  segments_.erase(it);
}

transport::PlaneGrant MpiWriter::admit(std::uint64_t reader, const std::string& option) {
  std::lock_guard lock(mu_);
  Pairing job;
  job.reader = reader;
  const auto mine = option.substr(option.find('|') + 1);
  if (field(mine, "pid") == std::to_string(::getpid())) {
    // MPI cannot connect a process to itself (and the inproc plane serves it better).
    throw Unavailable("stream '" + stream_ + "': data_plane='mpi' cannot serve a reader in "
                      "the writer's own process; use data_plane='inproc'");
  }
  if (!field(mine, "world").empty() && field(mine, "world") == identity_) {
    // Both in one MPMD launch: a communicator of the two out of MPI_COMM_WORLD.
    job.world = true;
    job.reader_rank = std::stoi(field(mine, "rank"));
    job.tag = std::stoi(field(mine, "tag"));
    jobs_.push_back(job);
    cv_.notify_all();
    return {"mode=world;writer_rank=" + std::to_string(rank_) + ";tag=" + std::to_string(job.tag),
            {}};
  }
  // One port per reader: connects to one port that race each other fail in MPICH, and a
  // reader that dies before connecting then blocks nobody else's pairing.
  char port[MPI_MAX_PORT_NAME] = {};
  const int rc = MPI_Open_port(MPI_INFO_NULL, port);
  if (rc != MPI_SUCCESS) {
    throw Unavailable("stream '" + stream_ + "': the writer cannot open an MPI port: " +
                      error_text(rc) + "; launch the writer with mpiexec (MPICH singletons "
                      "cannot accept), set MPIR_CVAR_CH4_NETMOD=ofi, or use data_plane='tcp'");
  }
  job.port = port;
  jobs_.push_back(job);
  cv_.notify_all();
  return {"mode=port;port=" + job.port, {}};
}

bool MpiWriter::describe(std::uint64_t, std::uint32_t id, wire::RemoteSegment& out) {
  std::lock_guard lock(mu_);
  auto it = segments_.find(id);
  if (it == segments_.end()) return false;
  MPI_Aint address = 0;
  MPI_Get_address(it->second->data(), &address);
  out = {id, 0, static_cast<std::uint64_t>(address), 0};
  ++kicks_;  // reads are coming: drive progress eagerly
  cv_.notify_all();
  return true;
}

void MpiWriter::reader_left(std::uint64_t reader) {
  // Freeing a window or a communicator is collective, and the reader may be dead: they
  // are left as they are (a few hundred bytes per departed reader).
  std::lock_guard lock(mu_);
  auto it = windows_.find(reader);
  if (it != windows_.end() && it->second.live) {
    it->second.live = false;
    it->second.left = Clock::now();
  }
  holding_.erase(reader);
}

void MpiWriter::steps_held(std::uint64_t reader, std::size_t held) {
  std::lock_guard lock(mu_);
  if (held == 0) {
    holding_.erase(reader);
  } else if (holding_.insert(reader).second) {
    ++kicks_;  // reads are coming: drive progress eagerly
    cv_.notify_all();
  }
}

void MpiWriter::tear_down_windows() {
  std::vector<std::pair<std::uint64_t, Window>> open;
  {
    std::lock_guard lock(mu_);
    for (const auto& [reader, w] : windows_) {
      if (!w.abandoned) open.emplace_back(reader, w);
    }
  }
  const auto now = Clock::now();
  for (auto& [reader, w] : open) {
    int flag = 0;
    if (!w.acked) {
      MPI_Iprobe(1, kByeTag, w.pair, &flag, MPI_STATUS_IGNORE);
      if (flag) {
        int bye = 0;
        MPI_Recv(&bye, 1, MPI_INT, 1, kByeTag, w.pair, MPI_STATUS_IGNORE);
        MPI_Send(&bye, 1, MPI_INT, 1, kByeAckTag, w.pair);
        std::lock_guard lock(mu_);
        auto& mine = windows_.at(reader);
        mine.acked = true;
        mine.commit_by = now + kCommit;
      } else if (!w.live && now > w.left + kTeardown) {
        // Left without a Bye on this communicator: it died, or it closed in a way that
        // could not free the window. Stop asking.
        abandon(reader);
      }
      continue;
    }
    MPI_Iprobe(1, kCommitTag, w.pair, &flag, MPI_STATUS_IGNORE);
    if (!flag) {
      if (now > w.commit_by) {
        abandon(reader);
      }
      continue;
    }
    int commit = 0;
    MPI_Recv(&commit, 1, MPI_INT, 1, kCommitTag, w.pair, MPI_STATUS_IGNORE);
    std::vector<std::shared_ptr<Segment>> attached;
    {
      // Out of the map first, so that add_segment/remove_segment no longer touch it; the
      // segments stay alive until they are detached below.
      std::lock_guard lock(mu_);
      windows_.erase(reader);
      for (const auto& [id, s] : segments_) attached.push_back(s);
    }
    for (const auto& s : attached) MPI_Win_detach(w.win, s->data());
    MPI_Win win = w.win;
    const int rc = MPI_Win_free(&win);
    if (rc != MPI_SUCCESS) {
      log::warn("stream '" + stream_ + "': freeing mpi reader " + std::to_string(reader) +
                "'s window failed: " + error_text(rc));
    }
    std::lock_guard lock(mu_);
    cv_.notify_all();
  }
}

void MpiWriter::abandon(std::uint64_t reader) {
  note_window_left_open();
  std::lock_guard lock(mu_);
  windows_.at(reader).abandoned = true;
  cv_.notify_all();
}

bool MpiWriter::windows_settled(Clock::time_point now) const {
  for (const auto& [reader, w] : windows_) {
    if (w.abandoned) continue;
    if (w.acked) return false;                 // the reader's Commit is on its way
    if (w.live) return false;                  // it may close any moment
    if (now <= w.left + kTeardown) return false;  // its Bye may be on its way
  }
  return true;
}

bool MpiWriter::pair_one(const Pairing& job) {
  MPI_Comm pair = MPI_COMM_NULL;
  int rc = MPI_SUCCESS;
  if (job.world) {
    MPI_Group world_group = MPI_GROUP_NULL, two = MPI_GROUP_NULL;
    MPI_Comm_group(MPI_COMM_WORLD, &world_group);
    const int ranks[2] = {rank_, job.reader_rank};
    MPI_Group_incl(world_group, 2, ranks, &two);
    rc = MPI_Comm_create_group(MPI_COMM_WORLD, two, job.tag, &pair);
    MPI_Group_free(&two);
    MPI_Group_free(&world_group);
  } else {
    MPI_Comm inter = MPI_COMM_NULL;
    rc = MPI_Comm_accept(job.port.c_str(), MPI_INFO_NULL, 0, MPI_COMM_SELF, &inter);
    MPI_Close_port(job.port.c_str());
    {
      std::lock_guard lock(mu_);
      accepting_ = false;
      accepting_port_.clear();
      if (stop_) return false;
    }
    if (rc == MPI_SUCCESS) rc = MPI_Intercomm_merge(inter, 0, &pair);
  }
  if (rc != MPI_SUCCESS) {
    log::warn("stream '" + stream_ + "': pairing an mpi reader failed: " + error_text(rc));
    return true;
  }
  MPI_Comm_set_errhandler(pair, MPI_ERRORS_RETURN);
  // Accepts are matched in connect order, not admission order: the reader says who it is.
  std::uint64_t reader = 0;
  rc = MPI_Recv(&reader, 1, MPI_UINT64_T, 1, kIdTag, pair, MPI_STATUS_IGNORE);
  MPI_Win win = MPI_WIN_NULL;
  if (rc == MPI_SUCCESS) rc = MPI_Win_create_dynamic(MPI_INFO_NULL, pair, &win);
  if (rc != MPI_SUCCESS) {
    log::warn("stream '" + stream_ + "': setting up an mpi reader's window failed: " +
              error_text(rc));
    return true;
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, s] : segments_) {
      MPI_Win_attach(win, s->data(), static_cast<MPI_Aint>(s->size()));
    }
    Window w;
    w.pair = pair;
    w.win = win;
    windows_[reader] = w;
  }
  // After this the reader knows every segment that exists now is attached; later ones are
  // attached before any step that uses them is announced.
  MPI_Barrier(pair);
  log::info("stream '" + stream_ + "': mpi reader " + std::to_string(reader) + " paired (" +
            (job.world ? "same launch" : "port") + ")");
  return true;
}

void MpiWriter::agent() {
  std::uint64_t seen = 0;
  auto eager_until = std::chrono::steady_clock::now();
  auto pause = std::chrono::microseconds(20);
  while (true) {
    std::optional<Pairing> job;
    bool have_windows = false;
    bool reading = false;
    std::vector<MPI_Comm> pairs;
    {
      std::unique_lock lock(mu_);
      if (stop_) return;
      if (!jobs_.empty()) {
        job = jobs_.front();
        jobs_.pop_front();
        accepting_ = !job->world;
        accepting_port_ = job->port;
      }
      have_windows = !windows_.empty();
      reading = !holding_.empty();
      for (const auto& [id, w] : windows_) {
        if (w.live) pairs.push_back(w.pair);
      }
      if (kicks_ != seen) {
        seen = kicks_;
        eager_until = std::chrono::steady_clock::now() + kEagerAfterStep;
        pause = std::chrono::microseconds(20);
      }
      if (!job && !have_windows) {
        cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        continue;
      }
    }
    if (job) {
      if (!pair_one(*job)) return;
      continue;
    }
    tear_down_windows();
    // Passive-target reads are served inside MPI's progress engine: poke it. Eagerly
    // while a reader holds steps (only then does it read them), for at most
    // kEagerAfterStep after a step was handed out; else with a growing pause (to 1 ms)
    // that a new step cuts. A spinning agent takes a core from the simulation and from the
    // readers on its node: at 4 KiB steps, spinning between steps too cost 60 us a step.
    int flag = 0;
    for (auto c : pairs) MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c, &flag, MPI_STATUS_IGNORE);
    if (reading && std::chrono::steady_clock::now() < eager_until) {
      for (int i = 0; i < 256; ++i) {
        for (auto c : pairs) MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c, &flag, MPI_STATUS_IGNORE);
      }
      sched_yield();
      continue;
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, pause, [&] { return stop_ || kicks_ != seen || !jobs_.empty(); });
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

void MpiWriter::close() {
  bool accepting = false;
  std::string port;
  {
    std::unique_lock lock(mu_);
    if (stop_ && !agent_.joinable()) return;
    // Readers that close now free their windows with the agent: give them a moment. The
    // stream has ended for them, so a reader still open after this keeps its window (and
    // MPICH over libfabric's shm provider then cannot finalize this process cleanly). A
    // reader the agent has answered is waited for until its Commit or the agent's deadline.
    if (agent_.joinable()) {
      const auto give_up = Clock::now() + kTeardown;
      while (!windows_settled(Clock::now())) {
        const bool answered = std::any_of(windows_.begin(), windows_.end(), [](const auto& w) {
          return w.second.acked && !w.second.abandoned;
        });
        if (!answered && Clock::now() >= give_up) break;
        cv_.wait_for(lock, std::chrono::milliseconds(20));
      }
    }
    stop_ = true;
    accepting = accepting_;
    port = accepting_port_;
  }
  cv_.notify_all();
  if (accepting) {
    // The agent waits in MPI_Comm_accept for a reader that never connected (it died):
    // a connect of our own ends that wait (MPICH answers it with an error, which is fine).
    MPI_Comm inter = MPI_COMM_NULL;
    MPI_Comm_connect(port.c_str(), MPI_INFO_NULL, 0, MPI_COMM_SELF, &inter);
  }
  if (agent_.joinable()) agent_.join();
  std::lock_guard lock(mu_);
  if (!windows_.empty()) note_window_left_open();  // freed windows left the map
  for (auto& [reader, w] : windows_) {
    for (const auto& [id, s] : segments_) MPI_Win_detach(w.win, s->data());
  }
  segments_.clear();
  for (const auto& job : jobs_) {
    if (!job.port.empty()) MPI_Close_port(job.port.c_str());
  }
  jobs_.clear();
}

}  // namespace twinstream::mpi
