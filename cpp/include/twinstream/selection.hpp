#pragma once
/// Shapes and box selections of n-d arrays (C order, element units).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace twinstream {

using Dims = std::vector<std::uint64_t>;

/// Highest rank an array may have (numpy's limit).
inline constexpr std::size_t kMaxRank = 32;

/// How the blocks of a variable make up what readers see. Wire values: append only.
enum class ArrayKind : std::uint8_t {
  Global = 0,  ///< each block placed by its start/count inside one global shape
  Joined = 1,  ///< blocks stacked along axis 0 in rank order; the length is their sum
  Local = 2,   ///< independent blocks (any shapes), read one at a time by index
};

/// "global", "joined" or "local".
std::string_view kind_name(ArrayKind kind);

/// A box of a global array: `count[d]` elements from `start[d]` on each axis.
struct Box {
  Dims start;
  Dims count;
  bool operator==(const Box&) const = default;
};

/// Number of elements in `shape` (1 for rank 0); throws InvalidArgument on overflow.
std::uint64_t element_count(const Dims& shape);

/// Intersection of two boxes of the same rank; empty() tells whether they overlap.
struct Overlap {
  Box box;
  bool empty = true;
};
Overlap intersect(const Box& a, const Box& b);

/// "(3, 4)" style rendering for error messages.
std::string dims_to_string(const Dims& d);

}  // namespace twinstream
