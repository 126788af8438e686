// Reader: one source (the writer), or for a fan-in stream one source per ensemble member,
// merged fairly. Every wait bounded; one thread.
#include "twinstream/reader.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "core/contact.hpp"
#include "core/log.hpp"
#include "core/reader_ops.hpp"
#include "core/writer_job.hpp"
#include "transport/registry.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {
namespace {
void add_counters(ReaderStats& into, const ReaderStats& s) {
  into.steps += s.steps;
  into.dropped += s.dropped;
  into.redelivered += s.redelivered;
  into.bytes += s.bytes;
  into.preload_bytes += s.preload_bytes;
  into.preload_unused_bytes += s.preload_unused_bytes;
}
}  // namespace

class Reader::Impl {
 public:
  Impl(std::string name, ReaderOptions opt);
  ~Impl() { close(); }

  StepStatus begin_step(double timeout);
  WriterJob& current(const std::string& what);
  // Runs a read of the current step; in a fan-in stream a member that fails mid-step is
  // marked failed (the others go on) before the error reaches the caller.
  template <typename F>
  auto read(const std::string& what, F&& f) {
    auto& s = current(what);
    try {
      return f(s);
    } catch (const ConnectionError& e) {
      if (!fan_in_) throw;
      for (auto& m : members_) {
        if (m.source.get() != &s) continue;
        m.state = "failed";
        m.error = "member '" + s.member() + "': " + e.what();
        failed_in_step_ = std::move(m.source);  // kept until end_step
        failed_in_step_->remove_dead_writers_memory(0.5);
        break;
      }
      log::warn("stream '" + name_ + "': member '" + s.member() +
                "' failed while its step was read; the other members go on");
      throw ConnectionError(std::string(e.what()) +
                            " (ensemble member '" + s.member() + "' failed; the other members "
                            "go on: catch this error and continue with the next step)");
    }
  }
  const WriterJob* last() const { return last_; }
  std::uint64_t first_step() const;
  void start_at(std::uint64_t index) { floor_ = index; }
  void end_step();
  void close();
  ReaderStats stats() const;
  std::vector<SourceInfo> sources() const;

  const std::string name_;
  const ReaderOptions opt_;
  ReaderOps ops_{name_, opt_};  // reader-placed pipelines, the reader cache

 private:
  void open_fan_in(net::Deadline deadline);
  // Connects to members whose contact file appeared since the last look.
  void discover();
  StepStatus begin_fan_in(net::Deadline deadline);
  void fail(std::size_t i, const std::string& why);
  // Waits (bounded by `deadline`, at most a quarter second) for the rendezvous directory
  // to change: inotify, or a short pause where there is none.
  void wait_for_directory(net::Deadline deadline);
  void drain_notify();
  // A source that is gone: its counters stay in stats().
  void retire(WriterJob& s);

  std::string dir_;
  transport::PlaneChoice choice_;  // the data-plane option, resolved on this host
  std::shared_ptr<BufferPool> buffers_ = std::make_shared<BufferPool>();
  bool fan_in_ = false;
  struct Member {
    std::string name;
    std::unique_ptr<WriterJob> source;  // null once ended or failed
    std::string state = "live";            // live, ended, failed
    std::string error;
    std::uint64_t steps = 0;
  };
  std::vector<Member> members_;
  std::size_t next_ = 0;  // fair merge: where the next scan starts
  WriterJob* in_step_ = nullptr;
  std::unique_ptr<WriterJob> failed_in_step_;  // a member that failed during its step
  WriterJob* last_ = nullptr;
  std::uint64_t floor_ = 0;  // start_at: lower steps are acknowledged unread
  ReaderStats retired_;  // counters of sources that are gone
  net::Fd notify_;
  bool closed_ = false;
};

Reader::Impl::Impl(std::string name, ReaderOptions opt)
    : name_(std::move(name)), opt_(std::move(opt)) {
  validate_stream_name(name_);
  dir_ = rendezvous_dir(opt_.dir);
  const double open_timeout = opt_.open_timeout >= 0 ? opt_.open_timeout : opt_.timeout;
  const auto deadline = net::deadline_after(open_timeout);
  const auto plain = contact_path(dir_, name_);
  // Before waiting for a writer: a plane unusable on this host says so at once, with this
  // host's reason (fabric: the provider), and the mpi plane initializes MPI, which in a
  // launch of writer and readers together every process must do before any may go on.
  choice_ = transport::resolve_reader_plane(name_, opt_);
  // A fan-in stream has member contact files `<name>@<member>.twin` instead of one
  // `<name>.twin`. Wait for either (inotify, with a slow re-check for file systems without
  // it); members=N asks for fan-in outright.
  notify_ = net::Fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  const auto events = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE;
  if (notify_.valid() && ::inotify_add_watch(notify_.get(), dir_.c_str(), events) < 0) {
    notify_.reset();
  }
  while (opt_.members == 0) {
    if (::access(plain.c_str(), F_OK) == 0) break;
    if (!list_members(dir_, name_).empty()) {
      fan_in_ = true;
      break;
    }
    if (net::Clock::now() >= deadline) break;  // the single-writer path reports the timeout
    wait_for_directory(deadline);
  }
  if (opt_.members > 0) fan_in_ = true;
  if (fan_in_) {
    open_fan_in(deadline);
    return;
  }
  notify_.reset();
  Member m;
  m.source =
      std::make_unique<WriterJob>(name_, "", plain, opt_, choice_, buffers_, deadline, true);
  members_.push_back(std::move(m));
}

void Reader::Impl::open_fan_in(net::Deadline deadline) {
  while (true) {
    // Open once a member is there: the others may start later (members=N keeps the
    // stream open until N have come and gone).
    discover();
    if (!members_.empty()) return;
    if (net::Clock::now() >= deadline) {
      throw TimeoutError("stream '" + name_ + "': no ensemble member appeared before "
                         "open_timeout; start the members' writers (ts.open(name, 'w', "
                         "member=...)) or check dir= (looked for " +
                         member_contact_path(dir_, name_, "*") + ")");
    }
    wait_for_directory(deadline);
  }
}

void Reader::Impl::drain_notify() {
  char events[4096];
  while (::read(notify_.get(), events, sizeof events) > 0) {
  }
}

void Reader::Impl::wait_for_directory(net::Deadline deadline) {
  const auto recheck = std::min(deadline, net::deadline_after(notify_.valid() ? 0.25 : 0.05));
  if (!notify_.valid()) {
    ::poll(nullptr, 0, net::poll_timeout_ms(recheck));  // bounded pause, then look again
  } else if (net::wait_readable(notify_.get(), recheck) == net::IoStatus::Ok) {
    drain_notify();
  }
}

void Reader::Impl::retire(WriterJob& s) {
  add_counters(retired_, s.stats());
  if (last_ == &s) last_ = nullptr;
}

void Reader::Impl::discover() {
  for (const auto& name : list_members(dir_, name_)) {
    if (std::any_of(members_.begin(), members_.end(),
                    [&](const Member& m) { return m.name == name; })) {
      continue;
    }
    Member m;
    m.name = name;
    try {
      m.source = std::make_unique<WriterJob>(name_, name, member_contact_path(dir_, name_, name),
                                             opt_, choice_, buffers_, net::deadline_after(5.0),
                                             false);
    } catch (const InvalidArgument&) {
      throw;  // refused (a bad option): the same for every member
    } catch (const Error& e) {
      // A member whose writer already died: its substream ends with this error.
      m.state = "failed";
      m.error = e.what();
      log::warn("stream '" + name_ + "': member '" + name + "' failed: " + m.error);
    }
    members_.push_back(std::move(m));
  }
}

void Reader::Impl::fail(std::size_t i, const std::string& why) {
  auto& m = members_[i];
  m.state = "failed";
  m.error = why;
  log::warn("stream '" + name_ + "': member '" + m.name + "' failed; its substream ends (" + why +
            "); the other members go on");
  m.source->remove_dead_writers_memory(0.5);
  retire(*m.source);
  m.source.reset();
}

StepStatus Reader::Impl::begin_step(double timeout) {
  if (closed_) throw InvalidArgument("stream '" + name_ + "': begin_step on a closed reader");
  if (in_step_) {
    throw InvalidArgument("stream '" + name_ + "': begin_step called twice; call end_step first");
  }
  const auto deadline = net::deadline_after(timeout);
  if (!fan_in_) {
    auto& s = *members_.front().source;
    while (true) {
      const auto st = s.begin_step(deadline);
      if (st == StepStatus::Ok && s.index() < floor_) {
        s.end_step();  // before the step this reader job agreed to start at
        continue;
      }
      if (st == StepStatus::Ok) {
        in_step_ = last_ = &s;
        ops_.begin_step();
      }
      return st;
    }
  }
  return begin_fan_in(deadline);
}

// Fair merge: members are scanned round-robin from the one after the last served, so a
// member with steps always waiting cannot starve the others.
StepStatus Reader::Impl::begin_fan_in(net::Deadline deadline) {
  const auto check_every = std::chrono::milliseconds(250);
  while (true) {
    discover();
    const std::size_t n = members_.size();
    bool live = false;
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = (next_ + k) % n;
      auto& m = members_[i];
      if (!m.source) continue;
      StepStatus st;
      try {
        st = m.source->begin_step(net::Clock::now());  // only what has arrived
      } catch (const ConnectionError& e) {
        fail(i, e.what());
        continue;
      }
      if (st == StepStatus::EndOfStream) {
        m.state = "ended";
        retire(*m.source);
        m.source.reset();
        continue;
      }
      live = true;
      if (st == StepStatus::Ok) {
        m.steps++;
        next_ = (i + 1) % n;
        in_step_ = last_ = m.source.get();
        ops_.begin_step();
        return StepStatus::Ok;
      }
    }
    // Every member seen has ended (or failed), and as many as were asked for have come.
    if (!live && n >= std::max<std::uint32_t>(opt_.members, 1)) {
      discover();
      if (members_.size() == n) return StepStatus::EndOfStream;
      continue;
    }
    if (net::Clock::now() >= deadline) return StepStatus::NotReady;
    // Sleep until a member's connection or the directory (a new member) stirs; wake now
    // and then regardless, so that a silent member is noticed (heartbeat_timeout).
    std::vector<pollfd> fds;
    for (const auto& m : members_) {
      if (!m.source) continue;
      for (int fd : m.source->fds()) fds.push_back({fd, POLLIN, 0});
    }
    if (notify_.valid()) fds.push_back({notify_.get(), POLLIN, 0});
    const auto wake = std::min(deadline, net::Clock::now() + check_every);
    ::poll(fds.data(), fds.size(), net::poll_timeout_ms(wake));
    if (notify_.valid()) drain_notify();
  }
}

WriterJob& Reader::Impl::current(const std::string& what) {
  if (!in_step_) {
    throw InvalidArgument("stream '" + name_ + "': " + what +
                          " outside a step; call begin_step first");
  }
  return *in_step_;
}

void Reader::Impl::end_step() {
  auto& s = current("end_step");
  in_step_ = nullptr;
  ops_.end_step();
  if (failed_in_step_ && failed_in_step_.get() == &s) {
    // Nobody to acknowledge to: the member is gone.
    retire(s);
    failed_in_step_.reset();
    return;
  }
  try {
    s.end_step();
  } catch (const ConnectionError& e) {
    if (!fan_in_) throw;
    // The step was read; only its member is gone. Its substream ends here.
    for (std::size_t i = 0; i < members_.size(); ++i) {
      if (members_[i].source.get() == &s) fail(i, e.what());
    }
  }
}

void Reader::Impl::close() {
  if (closed_) return;
  closed_ = true;
  in_step_ = nullptr;
  for (auto& m : members_) {
    if (m.source) m.source->close();
  }
}

std::uint64_t Reader::Impl::first_step() const {
  if (fan_in_) {
    throw InvalidArgument("stream '" + name_ + "': a fan-in stream's members number their steps "
                          "each on its own; a reader job cannot agree on a first step");
  }
  const auto& s = members_.front().source;
  return s ? s->first_step() : 0;
}

ReaderStats Reader::Impl::stats() const {
  ReaderStats out = retired_;
  ops_.add_stats(out);
  for (const auto& m : members_) {
    if (!m.source) continue;
    const auto& s = m.source->stats();
    add_counters(out, s);
    if (out.data_plane.empty()) {
      out.data_plane = s.data_plane;
      out.data_plane_detail = s.data_plane_detail;
      out.data_plane_fallback = s.data_plane_fallback;
      out.control = s.control;
    } else if (out.data_plane != s.data_plane) {
      out.data_plane = "mixed";
    }
    if (out.control != s.control) out.control = "mixed";
  }
  return out;
}

std::vector<SourceInfo> Reader::Impl::sources() const {
  std::vector<SourceInfo> out;
  for (const auto& m : members_) {
    out.push_back({m.name, m.state, m.error,
                   m.source ? m.source->stats().steps : m.steps});
  }
  return out;
}

namespace {
const std::string kNoSource;
const std::vector<VariableInfo> kNoVariables;
const Attributes kNoAttributes;
}  // namespace

Reader::Reader(std::string name, const ReaderOptions& options)
    : impl_(std::make_unique<Impl>(std::move(name), options)) {}
Reader::Reader(std::string name, const Options& options)
    : Reader(std::move(name), parse_reader_options(options)) {}
Reader::~Reader() = default;
StepStatus Reader::begin_step(std::chrono::duration<double> timeout) {
  return impl_->begin_step(timeout.count());
}
StepStatus Reader::begin_step() { return impl_->begin_step(impl_->opt_.timeout); }
std::uint64_t Reader::step_index() const { return impl_->last() ? impl_->last()->index() : 0; }
bool Reader::step_redelivered() const {
  return impl_->last() && (impl_->last()->flags() & wire::kRedelivered) != 0;
}
bool Reader::step_is_batch() const {
  return impl_->last() && (impl_->last()->flags() & wire::kBatch) != 0;
}
const std::string& Reader::step_source() const {
  return impl_->last() ? impl_->last()->source() : kNoSource;
}
const std::vector<VariableInfo>& Reader::variables() const {
  return impl_->last() ? impl_->ops_.variables(*impl_->last()) : kNoVariables;
}
const VariableInfo* Reader::find(std::string_view name) const {
  for (const auto& v : variables()) {
    if (v.name == name) return &v;
  }
  return nullptr;
}
const Attributes& Reader::step_attributes() const {
  return impl_->last() ? impl_->last()->step_attributes() : kNoAttributes;
}
const Attributes& Reader::stream_attributes() const {
  return impl_->last() ? impl_->last()->stream_attributes() : kNoAttributes;
}
namespace {
std::string get_of(std::string_view name) { return "get('" + std::string(name) + "')"; }
}  // namespace
ConstView Reader::get(std::string_view name) {
  return impl_->read(get_of(name),
                     [&](WriterJob& s) { return impl_->ops_.get(s, name, nullptr); });
}
ConstView Reader::get(std::string_view name, const Box& sel) {
  return impl_->read(get_of(name), [&](WriterJob& s) { return impl_->ops_.get(s, name, &sel); });
}
void Reader::get_into(std::string_view name, const Box& sel, void* dst, std::size_t dst_bytes) {
  impl_->read(get_of(name),
              [&](WriterJob& s) { impl_->ops_.get_into(s, name, sel, dst, dst_bytes); });
}
ConstView Reader::get_block(std::string_view name, std::size_t index) {
  return impl_->read(get_of(name), [&](WriterJob& s) { return s.get_block(name, index); });
}
std::uint64_t Reader::first_step() const { return impl_->first_step(); }
void Reader::start_at(std::uint64_t index) { impl_->start_at(index); }
void Reader::end_step() { impl_->end_step(); }
void Reader::close() { impl_->close(); }
const std::string& Reader::name() const { return impl_->name_; }
ReaderStats Reader::stats() const { return impl_->stats(); }
std::vector<SourceInfo> Reader::sources() const { return impl_->sources(); }
ReaderOps& reader_ops(Reader& r) { return r.impl_->ops_; }

}  // namespace twinstream
