// The mpi data plane (one-sided RMA) is not part of this build; it stays registered so
// that data_plane="mpi" explains itself.
#include "transport/registry.hpp"

namespace twinstream::transport {
Entry mpi_entry() {
  return {"mpi", false,
          "this twinstream was built without MPI (configure with TWINSTREAM_WITH_MPI=ON once "
          "the mpi plane ships); use shm or tcp",
          nullptr};
}
}  // namespace twinstream::transport
