#pragma once
// Conversions between numpy/Python values and twinstream's, shared by every part of the
// Python module: one place where numpy dtypes become twinstream dtypes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "twinstream/attribute.hpp"
#include "twinstream/dtype.hpp"

namespace twinstream::pyconv {

namespace py = pybind11;

/// numpy dtype -> twinstream dtype (extended precision mapped by kind and size).
DType dtype_of(const py::dtype& dt);
/// A Python bool, int, float, str or numpy array as an attribute value.
AttributeValue to_attribute(const py::handle& v);
/// An attribute value as a Python object (arrays are copied into a new numpy array).
py::object from_attribute(const AttributeValue& v);
py::dict attributes_dict(const Attributes& attrs);

}  // namespace twinstream::pyconv
