#include "twinstream/dtype.hpp"

#include <array>

#include "twinstream/errors.hpp"

namespace twinstream {
namespace {
struct DTypeRow {
  DType type;
  std::string_view name;
  std::size_t size;
};
constexpr std::array<DTypeRow, 16> kTable{{
    {DType::Bool, "bool", 1},
    {DType::Int8, "int8", 1},
    {DType::Int16, "int16", 2},
    {DType::Int32, "int32", 4},
    {DType::Int64, "int64", 8},
    {DType::UInt8, "uint8", 1},
    {DType::UInt16, "uint16", 2},
    {DType::UInt32, "uint32", 4},
    {DType::UInt64, "uint64", 8},
    {DType::Float16, "float16", 2},
    {DType::Float32, "float32", 4},
    {DType::Float64, "float64", 8},
    {DType::LongDouble, "longdouble", 16},
    {DType::Complex64, "complex64", 8},
    {DType::Complex128, "complex128", 16},
    {DType::ComplexLongDouble, "clongdouble", 32},
}};

const DTypeRow& row(DType t) {
  auto i = static_cast<std::size_t>(t) - 1;
  if (i >= kTable.size()) throw InvalidArgument("unknown dtype code " + std::to_string(i + 1));
  return kTable[i];
}
}  // namespace

std::size_t dtype_size(DType t) { return row(t).size; }
std::string_view dtype_name(DType t) { return row(t).name; }
bool dtype_valid(std::uint8_t raw) { return raw >= 1 && raw <= kTable.size(); }

DType dtype_from_name(std::string_view name) {
  std::string valid;
  for (const auto& r : kTable) {
    if (r.name == name) return r.type;
    valid += (valid.empty() ? "" : ", ") + std::string(r.name);
  }
  throw InvalidArgument("unknown dtype '" + std::string(name) + "'; valid: " + valid);
}

}  // namespace twinstream
