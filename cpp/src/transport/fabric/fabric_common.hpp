#pragma once
// What the fabric plane's reader and writer sides share: opening a libfabric endpoint for
// RMA reads (FI_EP_RDM, FI_RMA) with a chosen provider, owning its objects, and error text
// that names the provider, libfabric's reason and what to set.
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include <memory>
#include <string>
#include <vector>

namespace twinstream::fabric {

/// libfabric API version we ask for (that of the headers we build against).
inline constexpr std::uint32_t kApiVersion = FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION);

/// "fi_xxx failed: <libfabric's text>".
std::string fi_error(const char* call, int rc);

/// Closes a libfabric object (fid_*) when it goes.
template <typename T>
struct FidCloser {
  void operator()(T* p) const {
    if (p) fi_close(&p->fid);
  }
};
template <typename T>
using Fid = std::unique_ptr<T, FidCloser<T>>;

struct InfoFree {
  void operator()(fi_info* p) const { fi_freeinfo(p); }
};
using Info = std::unique_ptr<fi_info, InfoFree>;

/// Where to look for a provider.
struct ProviderQuery {
  std::string provider;     // libfabric provider name: tcp, shm, cxi, verbs, efa
  std::string node;         // address to bind (writer, IP providers); empty: any
  std::string fabric_name;  // restrict to this fabric (the writer's); empty: any
};

/// fi_getinfo for RMA reads with the provider; nullptr and `why` (libfabric's reason) if
/// it has none usable here.
Info query_provider(const ProviderQuery& q, std::string* why);

/// An enabled RDM endpoint with its fabric, domain, address vector and completion queue.
class Endpoint {
 public:
  /// Opens the endpoint `info` describes. Throws Unavailable naming the provider.
  Endpoint(Info info, const std::string& stream, bool wait_object);
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  const fi_info& info() const { return *info_; }
  std::string provider() const { return info_->fabric_attr->prov_name; }
  std::string fabric_name() const { return info_->fabric_attr->name; }
  fid_fabric* fabric() const { return fabric_.get(); }
  fid_domain* domain() const { return domain_.get(); }
  fid_ep* ep() const { return ep_.get(); }
  fid_cq* cq() const { return cq_.get(); }
  fid_av* av() const { return av_.get(); }
  /// Whether the CQ was opened with a wait object (fi_cq_sread works).
  bool cq_waits() const { return cq_waits_; }
  /// The CQ's wait file descriptor (poll it after fi_trywait says so), or -1.
  int cq_wait_fd() const;
  /// Whether the application must drive progress (fi_cq_read) for peers' RMA to advance.
  bool manual_progress() const;
  /// fi_getname: the bytes a peer inserts into its address vector.
  std::string address() const;
  /// Whether local buffers must be registered (FI_MR_LOCAL).
  bool needs_local_mr() const;

 private:
  Info info_;
  Fid<fid_fabric> fabric_;
  Fid<fid_domain> domain_;
  Fid<fid_cq> cq_;
  Fid<fid_av> av_;
  Fid<fid_ep> ep_;
  bool cq_waits_ = false;
};

/// "provider=tcp;fabric=127.0.0.1/32" and back (the Welcome's plane detail).
std::string format_detail(const std::string& provider, const std::string& fabric_name);
ProviderQuery parse_detail(const std::string& detail);

/// Providers that can do RMA reads on this host, for messages ("tcp, shm").
std::string usable_providers();

}  // namespace twinstream::fabric
