#include "transport/fabric/fabric_writer.hpp"

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::fabric {

namespace {
// IP-based providers bind the interface the writer's control port binds, so that a writer
// told to stay on loopback stays there. Others address NICs by their own names.
bool binds_ip(const std::string& provider) { return provider == "tcp" || provider == "verbs"; }
bool wildcard(const std::string& host) { return host.empty() || host == "0.0.0.0" || host == "::"; }
}  // namespace

FabricWriter::FabricWriter(const transport::WriterContext& ctx, const std::string& provider)
    : stream_(ctx.stream), stop_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  ProviderQuery q{provider, "", ""};
  if (binds_ip(provider) && !wildcard(ctx.host)) q.node = ctx.host;
  std::string why;
  auto info = query_provider(q, &why);
  if (!info && !q.node.empty()) {
    q.node.clear();
    info = query_provider(q, &why);
  }
  if (!info) {
    throw Unavailable("stream '" + stream_ + "': the writer cannot open fabric provider '" +
                      provider + "' on its host: " + why + " (usable there: " +
                      usable_providers() + "); set fabric_provider= (or FI_PROVIDER) on the "
                      "reader to one of those, or use data_plane='tcp'");
  }
  ep_ = std::make_unique<Endpoint>(std::move(info), stream_, true);
  address_ = ep_->address();
  // A target serves peers' reads only while someone drives its provider: libfabric's tcp
  // provider says FI_PROGRESS_AUTO yet moves RMA data from inside fi_cq_read, shm is
  // FI_PROGRESS_MANUAL. So the writer always runs a progress agent: on the CQ's wait fd
  // where the provider has one (no CPU while idle), polling with back-off otherwise.
  progress_ = std::thread([this] { progress(); });
  log::info("stream '" + stream_ + "': fabric endpoint open, provider " + ep_->provider() +
            " on " + ep_->fabric_name() +
            (ep_->cq_wait_fd() >= 0 ? " (progress on its wait fd)" : " (progress by polling)"));
}

FabricWriter::~FabricWriter() { close(); }

void FabricWriter::add_segment(const std::shared_ptr<Segment>& s) {
  std::lock_guard lock(mu_);
  if (!ep_ || regs_.contains(s->id())) return;
  const auto& info = ep_->info();
  const auto mr_mode = info.domain_attr->mr_mode;
  fid_mr* mr = nullptr;
  // The requested key is only used by providers that let us choose (no FI_MR_PROV_KEY);
  // segment ids are unique within this writer, hence within this domain.
  int rc = fi_mr_reg(ep_->domain(), s->data(), s->size(), FI_REMOTE_READ, 0, s->id(), 0, &mr,
                     nullptr);
  if (rc != 0) throw Error(fi_error("fi_mr_reg", rc));
  Registration r;
  r.mr.reset(mr);
  if (mr_mode & FI_MR_ENDPOINT) {
    rc = fi_mr_bind(mr, &ep_->ep()->fid, 0);
    if (rc == 0) rc = fi_mr_enable(mr);
    if (rc != 0) throw Error(fi_error("fi_mr_bind/enable", rc));
  }
  r.segment = s;
  r.key = fi_mr_key(mr);
  r.address = (mr_mode & FI_MR_VIRT_ADDR) ? reinterpret_cast<std::uint64_t>(s->data()) : 0;
  regs_.emplace(s->id(), std::move(r));
}

void FabricWriter::remove_segment(std::uint32_t id) {
  std::lock_guard lock(mu_);
  regs_.erase(id);
}

transport::PlaneGrant FabricWriter::admit(std::uint64_t, const std::string&) {
  return {format_detail(ep_->provider(), ep_->fabric_name()), {address_}};
}

bool FabricWriter::describe(std::uint64_t, std::uint32_t id, wire::RemoteSegment& out) {
  {
    std::lock_guard lock(mu_);
    auto it = regs_.find(id);
    if (it == regs_.end()) return false;
    out = {id, 0, it->second.address, it->second.key};
  }
  // A step is on its way to a reader: its reads follow soon, so poll eagerly again.
  kicks_.fetch_add(1, std::memory_order_relaxed);
  idle_cv_.notify_one();
  return true;
}

void FabricWriter::progress() {
  const int wait_fd = ep_->cq_wait_fd();
  if (wait_fd >= 0) return progress_on_fd(wait_fd);
  progress_polling();
}

void FabricWriter::progress_on_fd(int wait_fd) {
  // Event driven: the provider's wait fd becomes readable when it has progress to make
  // (for tcp, data on its sockets); fi_trywait says whether sleeping on it is safe now.
  fi_cq_entry entries[16];
  fid* cq_fid = nullptr;
  while (true) {
    bool sleep = false;
    {
      std::lock_guard lock(mu_);
      if (!ep_) return;
      drain(entries);
      cq_fid = &ep_->cq()->fid;
      sleep = fi_trywait(ep_->fabric(), &cq_fid, 1) == FI_SUCCESS;
    }
    if (stop_flag_.load()) return;
    if (sleep) {
      pollfd fds[2] = {{wait_fd, POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
      ::poll(fds, 2, 100);
      if (fds[1].revents) return;
    }
  }
}

void FabricWriter::drain(fi_cq_entry* entries) {
  const auto n = fi_cq_read(ep_->cq(), entries, 16);
  if (n == -FI_EAVAIL) {
    fi_cq_err_entry err{};
    fi_cq_readerr(ep_->cq(), &err, 0);
    log::debug("stream '" + stream_ + "': fabric completion error on the writer: " +
               fi_cq_strerror(ep_->cq(), err.prov_errno, err.err_data, nullptr, 0));
  }
}

void FabricWriter::progress_polling() {
  // Agent loop: do work; idle by yielding for 200 ms after a step was handed to a fabric
  // reader (its reads follow; a large read is many progress rounds), then by sleeping with
  // a growing pause (10 us to 1 ms) that the next handed step cuts short. A target cannot
  // see the reads it serves (they make no completion here), so activity is "a step was
  // handed".
  fi_cq_entry entries[16];
  std::uint64_t seen = kicks_.load();
  auto eager_until = std::chrono::steady_clock::now();
  auto pause = std::chrono::microseconds(10);
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (!ep_) return;
      drain(entries);
    }
    const auto kicks = kicks_.load(std::memory_order_relaxed);
    if (kicks != seen) {
      seen = kicks;
      eager_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      pause = std::chrono::microseconds(10);
    }
    if (std::chrono::steady_clock::now() < eager_until) {
      sched_yield();  // a reader is likely reading: answer within microseconds
      continue;
    }
    std::unique_lock lock(idle_mu_);
    if (stop_) return;
    idle_cv_.wait_for(lock, pause, [&] { return stop_ || kicks_.load() != seen; });
    if (stop_) return;
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

void FabricWriter::close() {
  {
    std::lock_guard lock(idle_mu_);
    stop_ = true;
  }
  stop_flag_.store(true);
  const std::uint64_t one = 1;
  [[maybe_unused]] auto w = ::write(stop_fd_.get(), &one, sizeof one);
  idle_cv_.notify_all();
  if (progress_.joinable()) progress_.join();
  std::lock_guard lock(mu_);
  regs_.clear();  // memory regions close before the endpoint and domain
  ep_.reset();
}

}  // namespace twinstream::fabric
