// Library-wide facts: version and the data planes this build knows.

#include "transport/registry.hpp"
#include "twinstream/twinstream.hpp"

namespace twinstream {

const char* version() { return TWINSTREAM_VERSION; }

std::vector<DataPlaneInfo> data_planes() {
  std::vector<DataPlaneInfo> out;
  for (const auto& entry : transport::registry()) {
    out.push_back({entry.name, entry.available, entry.unavailable_reason});
  }
  return out;
}

}  // namespace twinstream
