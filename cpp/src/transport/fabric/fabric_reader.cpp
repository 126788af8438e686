// Reader side of the fabric plane: its own RDM endpoint of the writer's provider; every
// piece of a read is an fi_read from the writer's registered segment straight into its
// destination (zero copies on this side), or through a registered bounce buffer (one
// copy) when the provider needs local buffers registered (FI_MR_LOCAL, e.g. verbs).
// A read's completion means its bytes are in local memory: fi_cq(3) completes reads
// only once the data has landed, which is the guarantee FI_DELIVERY_COMPLETE gives writes.
#include <poll.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>

#include "control/socket.hpp"
#include "core/log.hpp"
#include "transport/fabric/fabric_common.hpp"
#include "transport/fabric/fabric_writer.hpp"
#include "transport/registry.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::transport {
namespace {

constexpr std::size_t kBounceBytes = 8u << 20;
// Outstanding reads at once, at most (and at most the provider's transmit queue).
constexpr std::size_t kMaxInFlight = 64;

class FabricReader final : public DataPlaneReader {
 public:
  explicit FabricReader(const ReaderContext& ctx)
      : stream_(ctx.stream), timeout_(ctx.io_timeout), control_fd_(ctx.control_fd) {
    const auto& w = ctx.welcome;
    if (w.plane_addresses.empty() || w.plane_detail.empty()) {
      throw ProtocolError("stream '" + stream_ + "': the writer granted the fabric plane "
                          "without an endpoint address");
    }
    auto q = fabric::parse_detail(w.plane_detail);
    std::string why;
    // The writer's fabric (for tcp: its subnet) when this host is on it, else any of the
    // provider's: a remote reader's view of the fabric may be named differently.
    auto info = fabric::query_provider(q, &why);
    if (!info) {
      q.fabric_name.clear();
      info = fabric::query_provider(q, &why);
    }
    if (!info) {
      throw Unavailable("stream '" + stream_ + "': fabric provider '" + q.provider +
                        "' (the writer's) is unusable on this host: " + why +
                        " (usable here: " + fabric::usable_providers() +
                        "); set fabric_provider= (or FI_PROVIDER) to one both hosts have, or "
                        "use data_plane='tcp'");
    }
    ep_ = std::make_unique<fabric::Endpoint>(std::move(info), stream_, true);
    for (const auto& a : w.plane_addresses) {
      fi_addr_t addr = FI_ADDR_UNSPEC;
      const int n = fi_av_insert(ep_->av(), a.data(), 1, &addr, 0, nullptr);
      if (n != 1) {
        throw Unavailable("stream '" + stream_ + "': cannot address the writer's fabric "
                          "endpoint (provider " + ep_->provider() + "): " +
                          fabric::fi_error("fi_av_insert", n < 0 ? n : -FI_EINVAL));
      }
      writer_addrs_.push_back(addr);
    }
    in_flight_max_ = std::min<std::size_t>(kMaxInFlight, std::max<std::size_t>(1, ep_->info().tx_attr->size));
    max_msg_ = std::max<std::uint64_t>(ep_->info().ep_attr->max_msg_size, 4096);
    contexts_.resize(in_flight_max_);
    const char* force = std::getenv("TWINSTREAM_FABRIC_BOUNCE");  // tests the verbs path
    if (ep_->needs_local_mr() || (force && std::string(force) == "1")) open_bounce();
    detail_ = "provider " + ep_->provider();
  }

  std::string_view name() const override { return "fabric"; }

  void on_step(const wire::StepMeta& step) override {
    for (auto id : step.retired) remote_.erase(id);
    for (const auto& r : step.remote) {
      if (r.endpoint >= writer_addrs_.size()) {
        throw ProtocolError("stream '" + stream_ + "': writer named fabric endpoint " +
                            std::to_string(r.endpoint) + " of " +
                            std::to_string(writer_addrs_.size()));
      }
      remote_[r.id] = r;
    }
    for (const auto& s : step.segments) sizes_[s.id] = s.size;
  }

  std::shared_ptr<const std::byte> view(std::uint32_t, std::uint64_t, std::uint64_t) override {
    return nullptr;
  }

  void read(std::uint64_t step, std::span<const Copy> copies) override {
    if (!ep_) {
      throw ConnectionError("stream '" + stream_ + "': the fabric endpoint was closed by an "
                            "earlier failed read; reopen the reader");
    }
    if (bounce_) return read_bounced(step, copies);
    Batch batch(*this);
    for (const auto& c : copies) {
      const auto& r = remote(c);
      for (std::uint64_t done = 0; done < c.length;) {
        const auto n = std::min(c.length - done, max_msg_);
        batch.post(c.dst + done, n, nullptr, r, c.offset + done);
        done += n;
      }
    }
    batch.finish();
  }

 private:
  // Reads in flight, bounded; finish() waits for all of them.
  class Batch {
   public:
    explicit Batch(FabricReader& r) : r_(r), deadline_(net::deadline_after(r.timeout_)) {}
    void post(std::byte* dst, std::uint64_t len, void* desc, const wire::RemoteSegment& seg,
              std::uint64_t offset) {
      while (outstanding_ >= r_.in_flight_max_) reap(1);
      const auto spin_until = net::Clock::now() + std::chrono::microseconds(20);
      while (true) {
        auto* ctx = &r_.contexts_[next_++ % r_.in_flight_max_];
        const auto rc = fi_read(r_.ep_->ep(), dst, len, desc, r_.writer_addrs_[seg.endpoint],
                                seg.address + offset, seg.key, ctx);
        if (rc == 0) break;
        if (rc != -FI_EAGAIN) r_.fail(fabric::fi_error("fi_read", static_cast<int>(rc)));
        // Not accepted yet (queue full, or the connection to the writer is being set up):
        // completions and progress make room, as long as the writer is there.
        reap(0);
        if (net::Clock::now() >= spin_until) {
          check_deadline();
          r_.check_writer();
          sched_yield();
        }
      }
      ++outstanding_;
    }
    void finish() {
      while (outstanding_ > 0) reap(1);
    }

   private:
    // Takes completions; with `want` > 0 waits until at least one arrives.
    void reap(std::size_t want) {
      fi_cq_entry entries[16];
      const auto spin_until = net::Clock::now() + std::chrono::microseconds(20);
      while (true) {
        const auto n = fi_cq_read(r_.ep_->cq(), entries, 16);
        if (n > 0) {
          outstanding_ -= static_cast<std::size_t>(n);
          return;
        }
        if (n == -FI_EAVAIL) r_.completion_error();
        if (n != -FI_EAGAIN) r_.fail(fabric::fi_error("fi_cq_read", static_cast<int>(n)));
        if (want == 0) return;
        if (net::Clock::now() < spin_until) continue;
        check_deadline();
        r_.check_writer();
        if (r_.ep_->cq_waits()) {
          // Sleeps in the provider's wait object; a short bound keeps the deadline honest.
          const auto m = fi_cq_sread(r_.ep_->cq(), entries, 16, nullptr, 50);
          if (m > 0) {
            outstanding_ -= static_cast<std::size_t>(m);
            return;
          }
          if (m == -FI_EAVAIL) r_.completion_error();
          if (m != -FI_EAGAIN && m != -FI_ETIMEDOUT && m != -FI_EINTR) {
            r_.fail(fabric::fi_error("fi_cq_sread", static_cast<int>(m)));
          }
        } else {
          sched_yield();
        }
      }
    }
    void check_deadline() const {
      if (net::Clock::now() >= deadline_) {
        r_.fail("no completion within " + std::to_string(r_.timeout_) +
                " s (is the writer alive and reachable?)");
      }
    }
    FabricReader& r_;
    net::Deadline deadline_;
    std::size_t outstanding_ = 0;
    std::size_t next_ = 0;
  };

  const wire::RemoteSegment& remote(const Copy& c) const {
    auto it = remote_.find(c.segment);
    if (it == remote_.end()) {
      throw ConnectionError("stream '" + stream_ + "': the writer did not expose segment " +
                            std::to_string(c.segment) + " on fabric provider " +
                            ep_->provider() + " (its registration failed; see the writer's "
                            "log), or it was not announced");
    }
    return it->second;
  }

  // Through the registered bounce buffer, one buffer-full at a time: read, then copy out.
  void read_bounced(std::uint64_t, std::span<const Copy> copies) {
    struct Out {
      std::byte* dst;
      std::uint64_t at;
      std::uint64_t len;
    };
    std::vector<Out> pending;
    std::uint64_t used = 0;
    auto flush = [&](Batch& b) {
      b.finish();
      for (const auto& o : pending) std::memcpy(o.dst, bounce_.get() + o.at, o.len);
      pending.clear();
      used = 0;
    };
    Batch batch(*this);
    for (const auto& c : copies) {
      const auto& r = remote(c);
      for (std::uint64_t done = 0; done < c.length;) {
        if (used == kBounceBytes) flush(batch);
        const auto n = std::min({c.length - done, kBounceBytes - used, max_msg_});
        batch.post(bounce_.get() + used, n, fi_mr_desc(bounce_mr_.get()), r, c.offset + done);
        pending.push_back({c.dst + done, used, n});
        used += n;
        done += n;
      }
    }
    flush(batch);
  }

  void open_bounce() {
    bounce_.reset(static_cast<std::byte*>(std::aligned_alloc(4096, kBounceBytes)));
    if (!bounce_) throw std::bad_alloc();
    fid_mr* mr = nullptr;
    const int rc = fi_mr_reg(ep_->domain(), bounce_.get(), kBounceBytes, FI_READ, 0, 1, 0, &mr,
                             nullptr);
    if (rc != 0) {
      throw Unavailable("stream '" + stream_ + "': fabric provider " + ep_->provider() +
                        " cannot register a read buffer: " + fabric::fi_error("fi_mr_reg", rc));
    }
    bounce_mr_.reset(mr);
    if (ep_->info().domain_attr->mr_mode & FI_MR_ENDPOINT) {
      fi_mr_bind(mr, &ep_->ep()->fid, 0);
      fi_mr_enable(mr);
    }
  }

  // A read from a writer that died is never answered (no provider reports a dead RDM
  // peer promptly); its control connection tells at once.
  void check_writer() {
    if (control_fd_ < 0) return;
    pollfd p{control_fd_, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      fail("the writer closed its control connection (it exited or was killed)");
    }
  }

  [[noreturn]] void completion_error() {
    fi_cq_err_entry err{};
    fi_cq_readerr(ep_->cq(), &err, 0);
    const char* text = fi_cq_strerror(ep_->cq(), err.prov_errno, err.err_data, nullptr, 0);
    fail(std::string("a read failed: ") + fi_strerror(err.err) + " (" + (text ? text : "") + ")");
  }

  [[noreturn]] void fail(const std::string& what) {
    // The endpoint may still have reads in flight into memory the caller is about to
    // free; closing it cancels them before the exception unwinds.
    const std::string provider = ep_ ? ep_->provider() : "?";
    ep_.reset();
    throw ConnectionError("stream '" + stream_ + "': fabric read from the writer (provider " +
                          provider + ") failed: " + what +
                          "; the reader cannot continue on this stream: reopen it");
  }

  struct FreeDeleter {
    void operator()(std::byte* p) const { std::free(p); }
  };

  std::string stream_;
  double timeout_;
  int control_fd_;
  std::unique_ptr<fabric::Endpoint> ep_;
  std::vector<fi_addr_t> writer_addrs_;
  std::map<std::uint32_t, wire::RemoteSegment> remote_;
  std::map<std::uint32_t, std::uint64_t> sizes_;
  std::vector<fi_context2> contexts_;
  std::size_t in_flight_max_ = 1;
  std::uint64_t max_msg_ = 0;
  std::unique_ptr<std::byte, FreeDeleter> bounce_;
  fabric::Fid<fid_mr> bounce_mr_;
  std::string detail_;

 public:
  ~FabricReader() override {
    bounce_mr_.reset();  // before the endpoint and domain
    ep_.reset();
  }
};

// The provider order of fabric_provider=auto: RDMA NICs first. shm is never picked by auto
// (same host only: the shm data plane serves that better); tcp is the fallback.
constexpr const char* kAutoOrder[] = {"cxi", "verbs", "efa", "tcp"};

std::string default_provider(const ReaderOptions& opt) {
  if (!opt.fabric_provider.empty()) return opt.fabric_provider;
  const char* env = std::getenv("FI_PROVIDER");
  // A list or an exclusion ("tcp,shm", "^udp") is libfabric's filter: auto within it.
  if (env && *env && !std::strpbrk(env, ",^")) return env;
  return "auto";
}

PlaneChoice resolve(const std::string& stream, const ReaderOptions& opt) {
  const std::string wanted = default_provider(opt);
  if (wanted != "auto") {
    std::string why;
    if (!fabric::query_provider({wanted, "", ""}, &why)) {
      throw Unavailable("stream '" + stream + "': fabric provider '" + wanted +
                        "' is unusable on this host: " + why + " (usable here: " +
                        fabric::usable_providers() +
                        "); set fabric_provider= (or FI_PROVIDER) to one of those, use "
                        "fabric_provider='auto', or use data_plane='tcp'");
    }
    return {wanted, "provider " + wanted, ""};
  }
  std::string skipped;
  for (const char* p : kAutoOrder) {
    std::string why;
    if (fabric::query_provider({p, "", ""}, &why)) {
      PlaneChoice c{p, "provider " + std::string(p), ""};
      if (!skipped.empty()) {
        c.fallback = "fabric_provider=auto: " + skipped + "; using " + p;
        log::warn("stream '" + stream + "': " + c.fallback);
      }
      return c;
    }
    skipped += (skipped.empty() ? "" : "; ") + std::string(p) + " unusable (" + why + ")";
  }
  throw Unavailable("stream '" + stream + "': fabric_provider=auto found no usable provider (" +
                    skipped + "); install libfabric providers, or use data_plane='tcp'");
}

}  // namespace

Entry fabric_entry() {
  Entry e{"fabric", true, "",
          [](const ReaderContext& ctx) -> std::unique_ptr<DataPlaneReader> {
            return std::make_unique<FabricReader>(ctx);
          }};
  e.make_writer = [](const WriterContext& ctx,
                     const std::string& provider) -> std::unique_ptr<DataPlaneWriter> {
    return std::make_unique<fabric::FabricWriter>(ctx, provider);
  };
  e.resolve = resolve;
  return e;
}

}  // namespace twinstream::transport
