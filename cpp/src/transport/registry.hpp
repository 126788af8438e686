#pragma once
// Data planes by name. A plane compiled out is still listed, with the reason, so that
// asking for it gives a message instead of "unknown".
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "transport/transport.hpp"
#include "transport/writer_plane.hpp"
#include "twinstream/options.hpp"

namespace twinstream::transport {

struct Entry {
  std::string name;
  bool available = false;
  std::string unavailable_reason;
  std::function<std::unique_ptr<DataPlaneReader>(const ReaderContext&)> make_reader;
  // RMA planes (fabric, mpi) only. The writer side, one per resolved option (fabric: one
  // per provider).
  std::function<std::unique_ptr<DataPlaneWriter>(const WriterContext&, const std::string&)>
      make_writer = nullptr;
  // Resolves the reader's plane options on the reader's host before its hello (fabric:
  // picks and probes the provider), so that a plane unusable here fails with this host's
  // reason. Throws Unavailable.
  std::function<PlaneChoice(const std::string& stream, const ReaderOptions&)> resolve = nullptr;
  // Called when a writer opens (mpi: inside an mpiexec launch every process must
  // initialize MPI before any can, so the writer does it now rather than on demand).
  std::function<void(const WriterContext&)> on_writer_open = nullptr;
};

/// Every plane this build knows, in preference order.
const std::vector<Entry>& registry();
/// The reader-side choice for `opts.data_plane`: empty for planes without options.
PlaneChoice resolve_reader_plane(const std::string& stream, const ReaderOptions& opts);

/// The plane, or throws Unavailable (with the reason) / InvalidArgument (unknown name).
const Entry& find(const std::string& name);

// Each plane's folder defines its entry.
Entry inproc_entry();
Entry shm_entry();
Entry tcp_entry();
Entry mpi_entry();
Entry fabric_entry();

}  // namespace twinstream::transport
