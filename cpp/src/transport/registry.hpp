#pragma once
// Data planes by name. A plane compiled out is still listed, with the reason, so that
// asking for it gives a message instead of "unknown".
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace twinstream::transport {

struct Entry {
  std::string name;
  bool available = false;
  std::string unavailable_reason;
  std::function<std::unique_ptr<DataPlaneReader>(const ReaderContext&)> make_reader;
};

/// Every plane this build knows, in preference order.
const std::vector<Entry>& registry();
/// The plane, or throws Unavailable (with the reason) / InvalidArgument (unknown name).
const Entry& find(const std::string& name);

// Each plane's folder defines its entry.
Entry inproc_entry();
Entry shm_entry();
Entry tcp_entry();
Entry mpi_entry();
Entry fabric_entry();

}  // namespace twinstream::transport
