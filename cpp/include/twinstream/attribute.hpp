#pragma once
/// Small typed metadata attached to a stream or to one step.
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "twinstream/dtype.hpp"
#include "twinstream/selection.hpp"

namespace twinstream {

/// A small n-d array attribute (e.g. box bounds, per-channel means); at most 1 MiB.
struct ArrayAttribute {
  DType dtype = DType::Float64;
  Dims shape;
  std::vector<std::byte> bytes;
  bool operator==(const ArrayAttribute&) const = default;
};

using AttributeValue = std::variant<bool, std::int64_t, double, std::string, ArrayAttribute>;
using Attributes = std::map<std::string, AttributeValue, std::less<>>;

/// Largest encoded attribute value accepted (writer side and from the wire).
inline constexpr std::size_t kMaxAttributeBytes = 1u << 20;

}  // namespace twinstream
