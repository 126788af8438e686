#include "twinstream/selection.hpp"

#include <algorithm>

#include "twinstream/errors.hpp"

namespace twinstream {

std::uint64_t element_count(const Dims& shape) {
  std::uint64_t n = 1;
  for (auto d : shape) {
    if (d != 0 && n > UINT64_MAX / d) {
      throw InvalidArgument("array shape " + dims_to_string(shape) + " overflows 64 bits");
    }
    n *= d;
  }
  return n;
}

std::string_view kind_name(ArrayKind kind) {
  switch (kind) {
    case ArrayKind::Global: return "global";
    case ArrayKind::Joined: return "joined";
    case ArrayKind::Local: return "local";
  }
  return "?";
}

Overlap intersect(const Box& a, const Box& b) {
  Overlap out;
  const auto rank = a.start.size();
  out.box.start.resize(rank);
  out.box.count.resize(rank);
  out.empty = false;
  for (std::size_t d = 0; d < rank; ++d) {
    const auto lo = std::max(a.start[d], b.start[d]);
    const auto hi = std::min(a.start[d] + a.count[d], b.start[d] + b.count[d]);
    if (hi <= lo) {
      out.empty = true;
      out.box.count[d] = 0;
    } else {
      out.box.count[d] = hi - lo;
    }
    out.box.start[d] = lo;
  }
  return out;
}

std::string dims_to_string(const Dims& d) {
  std::string s = "(";
  for (std::size_t i = 0; i < d.size(); ++i) {
    s += std::to_string(d[i]);
    if (i + 1 < d.size() || d.size() == 1) s += ",";
    if (i + 1 < d.size()) s += " ";
  }
  return s + ")";
}

}  // namespace twinstream
