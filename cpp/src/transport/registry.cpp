#include "transport/registry.hpp"

#include "twinstream/errors.hpp"

namespace twinstream::transport {

const std::vector<Entry>& registry() {
  // Built explicitly rather than by static registrars: a static library drops objects
  // nothing references, and the registrations with them.
  static const std::vector<Entry> entries{inproc_entry(), shm_entry(), tcp_entry(),
                                          mpi_entry(), fabric_entry()};
  return entries;
}

PlaneChoice resolve_reader_plane(const std::string& stream, const ReaderOptions& opts) {
  if (opts.data_plane == "auto") return {};
  const auto& e = find(opts.data_plane);
  return e.resolve ? e.resolve(stream, opts) : PlaneChoice{};
}

const Entry& find(const std::string& name) {
  std::string known;
  for (const auto& e : registry()) {
    if (e.name == name) {
      if (!e.available) {
        throw Unavailable("data plane '" + name + "' is unavailable: " + e.unavailable_reason);
      }
      return e;
    }
    known += (known.empty() ? "" : ", ") + e.name;
  }
  throw InvalidArgument("unknown data plane '" + name + "'; known: " + known);
}

}  // namespace twinstream::transport
