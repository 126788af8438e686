// Conversions between numpy/Python values and twinstream's (see convert.hpp).
#include "python/convert.hpp"

#include <cstring>

#include "twinstream/errors.hpp"

namespace twinstream::pyconv {

// The one place numpy dtypes become twinstream dtypes. numpy names extended precision by
// bit width (float128, complex256); map it by kind and size.
DType dtype_of(const py::dtype& dt) {
  if (dt.kind() == 'f' && dt.itemsize() == 16) return DType::LongDouble;
  if (dt.kind() == 'c' && dt.itemsize() == 32) return DType::ComplexLongDouble;
  return dtype_from_name(py::str(dt.attr("name")).cast<std::string>());
}

AttributeValue to_attribute(const py::handle& v) {
  if (py::isinstance<py::bool_>(v)) return v.cast<bool>();
  if (py::isinstance<py::int_>(v)) return v.cast<std::int64_t>();
  if (py::isinstance<py::float_>(v)) return v.cast<double>();
  if (py::isinstance<py::str>(v)) return v.cast<std::string>();
  if (py::isinstance<py::array>(v)) {
    auto a = py::array::ensure(v, py::array::c_style);
    ArrayAttribute out;
    out.dtype = dtype_of(a.dtype());
    for (py::ssize_t d = 0; d < a.ndim(); ++d) out.shape.push_back(static_cast<std::uint64_t>(a.shape(d)));
    out.bytes.resize(static_cast<std::size_t>(a.nbytes()));
    std::memcpy(out.bytes.data(), a.data(), out.bytes.size());
    return out;
  }
  throw InvalidArgument("attribute values must be bool, int, float, str or a numpy array, not " +
                        py::str(py::type::of(v)).cast<std::string>());
}

py::object from_attribute(const AttributeValue& v) {
  return std::visit(
      [](const auto& x) -> py::object {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, ArrayAttribute>) {
          std::vector<py::ssize_t> sh(x.shape.begin(), x.shape.end());
          py::array a(py::dtype(std::string(dtype_name(x.dtype))), sh);
          std::memcpy(a.mutable_data(), x.bytes.data(), x.bytes.size());
          return std::move(a);
        } else {
          return py::cast(x);
        }
      },
      v);
}

py::dict attributes_dict(const Attributes& attrs) {
  py::dict d;
  for (const auto& [k, v] : attrs) d[py::str(k)] = from_attribute(v);
  return d;
}

}  // namespace twinstream::pyconv
