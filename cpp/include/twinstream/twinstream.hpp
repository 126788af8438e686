#pragma once
/// Everything a simulation needs: #include <twinstream/twinstream.hpp>,
/// link twinstream::twinstream.
#include "twinstream/attribute.hpp"
#include "twinstream/dtype.hpp"
#include "twinstream/errors.hpp"
#include "twinstream/options.hpp"
#include "twinstream/reader.hpp"
#include "twinstream/selection.hpp"
#include "twinstream/writer.hpp"

namespace twinstream {
/// Library version, "major.minor.patch".
const char* version();
/// Names of data planes with availability and, if unavailable, why.
struct DataPlaneInfo {
  std::string name;
  bool available;
  std::string reason;
};
std::vector<DataPlaneInfo> data_planes();
}  // namespace twinstream
