// The libfabric data plane is not part of this build; it stays registered so that
// data_plane="fabric" explains itself.
#include "transport/registry.hpp"

namespace twinstream::transport {
Entry fabric_entry() {
  return {"fabric", false,
          "this twinstream was built without libfabric (configure with "
          "TWINSTREAM_WITH_FABRIC=ON once the fabric plane ships); use shm or tcp",
          nullptr};
}
}  // namespace twinstream::transport
