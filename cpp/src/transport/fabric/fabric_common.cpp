#include "transport/fabric/fabric_common.hpp"

#include <cstring>
#include <set>

#include "twinstream/errors.hpp"

namespace twinstream::fabric {

std::string fi_error(const char* call, int rc) {
  return std::string(call) + " failed: " + fi_strerror(rc < 0 ? -rc : rc);
}

namespace {
// What we ask every provider for. mr_mode lists the registration rules this plane follows
// (it registers its memory, sends provider keys and virtual addresses, binds MRs to the
// endpoint where asked); a provider needing more (FI_MR_RAW keys, FI_MR_HMEM) is not offered.
Info rma_hints(const ProviderQuery& q) {
  Info hints(fi_allocinfo());
  hints->ep_attr->type = FI_EP_RDM;
  hints->caps = FI_RMA | FI_READ | FI_REMOTE_READ;
  hints->mode = FI_CONTEXT | FI_CONTEXT2;
  hints->domain_attr->mr_mode =
      FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
  hints->domain_attr->threading = FI_THREAD_DOMAIN;
  hints->addr_format = FI_FORMAT_UNSPEC;
  if (!q.provider.empty()) hints->fabric_attr->prov_name = ::strdup(q.provider.c_str());
  if (!q.fabric_name.empty()) hints->fabric_attr->name = ::strdup(q.fabric_name.c_str());
  return hints;
}
}  // namespace

Info query_provider(const ProviderQuery& q, std::string* why) {
  auto hints = rma_hints(q);
  fi_info* list = nullptr;
  const char* node = q.node.empty() ? nullptr : q.node.c_str();
  int rc = fi_getinfo(kApiVersion, node, nullptr, node ? FI_SOURCE : 0, hints.get(), &list);
  if (rc != 0 || !list) {
    if (why) *why = fi_error("fi_getinfo", rc != 0 ? rc : -FI_ENODATA);
    return nullptr;
  }
  Info all(list);
  // Prefer the provider itself over layered variants ("tcp" over "tcp;ofi_rxm"): the core
  // provider does RMA natively, a utility layer adds a hop.
  fi_info* pick = list;
  for (fi_info* i = list; i; i = i->next) {
    if (q.provider == i->fabric_attr->prov_name) {
      pick = i;
      break;
    }
  }
  if (pick->domain_attr->mr_key_size > sizeof(std::uint64_t)) {
    if (why) *why = "its memory keys are larger than 64 bits (FI_MR_RAW), which this plane does not carry";
    return nullptr;
  }
  return Info(fi_dupinfo(pick));
}

Endpoint::Endpoint(Info info, const std::string& stream, bool wait_object)
    : info_(std::move(info)) {
  const std::string who = "stream '" + stream + "': fabric provider '" + provider() + "'";
  auto check = [&](int rc, const char* call) {
    if (rc != 0) {
      throw Unavailable(who + ": " + fi_error(call, rc) +
                        "; check `fi_info -p " + provider() +
                        "`, choose another provider with fabric_provider= (or FI_PROVIDER), "
                        "or use data_plane='tcp'");
    }
  };
  fid_fabric* fab = nullptr;
  check(fi_fabric(info_->fabric_attr, &fab, nullptr), "fi_fabric");
  fabric_.reset(fab);
  fid_domain* dom = nullptr;
  check(fi_domain(fabric_.get(), info_.get(), &dom, nullptr), "fi_domain");
  domain_.reset(dom);

  fi_cq_attr cq_attr{};
  cq_attr.format = FI_CQ_FORMAT_CONTEXT;
  cq_attr.wait_obj = wait_object ? FI_WAIT_UNSPEC : FI_WAIT_NONE;
  fid_cq* cq = nullptr;
  int rc = fi_cq_open(domain_.get(), &cq_attr, &cq, nullptr);
  if (rc != 0 && wait_object) {
    // Not every provider has wait objects: then completions are polled.
    cq_attr.wait_obj = FI_WAIT_NONE;
    rc = fi_cq_open(domain_.get(), &cq_attr, &cq, nullptr);
  }
  check(rc, "fi_cq_open");
  cq_.reset(cq);
  cq_waits_ = cq_attr.wait_obj != FI_WAIT_NONE;

  fi_av_attr av_attr{};
  av_attr.type = FI_AV_TABLE;
  fid_av* av = nullptr;
  check(fi_av_open(domain_.get(), &av_attr, &av, nullptr), "fi_av_open");
  av_.reset(av);

  fid_ep* ep = nullptr;
  check(fi_endpoint(domain_.get(), info_.get(), &ep, nullptr), "fi_endpoint");
  ep_.reset(ep);
  check(fi_ep_bind(ep_.get(), &av_->fid, 0), "fi_ep_bind(av)");
  check(fi_ep_bind(ep_.get(), &cq_->fid, FI_TRANSMIT | FI_RECV), "fi_ep_bind(cq)");
  check(fi_enable(ep_.get()), "fi_enable");
}

Endpoint::~Endpoint() {
  // Members close in reverse order: endpoint, address vector, queue, domain, fabric.
}

int Endpoint::cq_wait_fd() const {
  if (!cq_waits_) return -1;
  int fd = -1;
  if (fi_control(&cq_->fid, FI_GETWAIT, &fd) != 0) return -1;
  return fd;
}

bool Endpoint::manual_progress() const {
  return info_->domain_attr->data_progress != FI_PROGRESS_AUTO;
}

bool Endpoint::needs_local_mr() const {
  return (info_->domain_attr->mr_mode & FI_MR_LOCAL) != 0;
}

std::string Endpoint::address() const {
  std::string out(256, '\0');
  std::size_t len = out.size();
  int rc = fi_getname(&ep_->fid, out.data(), &len);
  if (rc == -FI_ETOOSMALL) {
    out.resize(len);
    rc = fi_getname(&ep_->fid, out.data(), &len);
  }
  if (rc != 0) throw Error(fi_error("fi_getname", rc));
  out.resize(len);
  return out;
}

std::string format_detail(const std::string& provider, const std::string& fabric_name) {
  return "provider=" + provider + ";fabric=" + fabric_name;
}

ProviderQuery parse_detail(const std::string& detail) {
  ProviderQuery q;
  std::size_t pos = 0;
  while (pos < detail.size()) {
    auto end = detail.find(';', pos);
    if (end == std::string::npos) end = detail.size();
    const auto item = detail.substr(pos, end - pos);
    const auto eq = item.find('=');
    if (eq != std::string::npos) {
      const auto key = item.substr(0, eq);
      if (key == "provider") q.provider = item.substr(eq + 1);
      if (key == "fabric") q.fabric_name = item.substr(eq + 1);
    }
    pos = end + 1;
  }
  return q;
}

std::string usable_providers() {
  auto hints = rma_hints({});
  fi_info* list = nullptr;
  if (fi_getinfo(kApiVersion, nullptr, nullptr, 0, hints.get(), &list) != 0 || !list) return "none";
  Info all(list);
  std::set<std::string> names;
  for (fi_info* i = list; i; i = i->next) {
    const std::string n = i->fabric_attr->prov_name;
    if (n.find(';') == std::string::npos) names.insert(n);  // core providers only
  }
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

}  // namespace twinstream::fabric
