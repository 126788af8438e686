#pragma once
/// Element types a variable can carry: every numpy numeric dtype, bool and complex.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace twinstream {

/// Wire values are part of the protocol: append, never renumber.
enum class DType : std::uint8_t {
  Bool = 1,
  Int8,
  Int16,
  Int32,
  Int64,
  UInt8,
  UInt16,
  UInt32,
  UInt64,
  Float16,
  Float32,
  Float64,
  LongDouble,  // x86-64 80-bit extended, stored in 16 bytes like numpy's longdouble
  Complex64,
  Complex128,
  ComplexLongDouble,
};

/// Bytes per element.
std::size_t dtype_size(DType t);
/// Canonical name, numpy spelling ("float32", "complex128", "bool").
std::string_view dtype_name(DType t);
/// Parses a canonical name; throws InvalidArgument naming the valid names.
DType dtype_from_name(std::string_view name);
/// True when `raw` is a known wire value.
bool dtype_valid(std::uint8_t raw);

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }
template <> constexpr DType dtype_of<std::int8_t>() { return DType::Int8; }
template <> constexpr DType dtype_of<std::int16_t>() { return DType::Int16; }
template <> constexpr DType dtype_of<std::int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::UInt8; }
template <> constexpr DType dtype_of<std::uint16_t>() { return DType::UInt16; }
template <> constexpr DType dtype_of<std::uint32_t>() { return DType::UInt32; }
template <> constexpr DType dtype_of<std::uint64_t>() { return DType::UInt64; }
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }

}  // namespace twinstream
