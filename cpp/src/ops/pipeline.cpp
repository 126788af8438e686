// Pipeline validation and execution. validate() and run() share one checker per operator,
// so a pipeline accepted when a variable is defined is exactly one that runs on blocks of
// that dtype and shape; run() checks again against each actual block (shapes may change
// from step to step, and operators after a data-dependent one can only be checked then).
#include "ops/pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ops/codec.hpp"
#include "ops/kernels.hpp"
#include "ops/layout.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::ops {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

// Names the variable and the operator in every refusal.
struct Where {
  std::string_view variable;
  std::size_t index;
  const OpSpec& op;
  [[noreturn]] void refuse(const std::string& what) const {
    throw InvalidArgument("variable '" + std::string(variable) + "': operator " +
                          std::to_string(index) + " " + to_string(op) + ": " + what);
  }
};

bool is_float(DType t) { return t == DType::Float32 || t == DType::Float64; }
bool is_integer(DType t) {
  switch (t) {
    case DType::Int8:
    case DType::Int16:
    case DType::Int32:
    case DType::Int64:
    case DType::UInt8:
    case DType::UInt16:
    case DType::UInt32:
    case DType::UInt64:
      return true;
    default:
      return false;
  }
}

std::string name(DType t) { return std::string(dtype_name(t)); }

void need_float(const Where& w, DType t) {
  if (!is_float(t)) {
    w.refuse("works on float32 or float64 data, not " + name(t) +
             " (put ts.ops.cast('float32') before it)");
  }
}

void need_numeric(const Where& w, DType t) {
  if (!kernels::is_real_numeric(t)) {
    w.refuse("works on bool, integer and float data, not " + name(t));
  }
}

// Integer limits of t as doubles (exact for every bound we produce: +-2^63 and 2^64
// round to themselves, and bounds are then clamped inside them).
std::pair<double, double> int_range(DType t) {
  switch (t) {
    case DType::Int8:
      return {-128.0, 127.0};
    case DType::UInt8:
      return {0.0, 255.0};
    case DType::Int16:
      return {-32768.0, 32767.0};
    case DType::UInt16:
      return {0.0, 65535.0};
    case DType::Int32:
      return {-2147483648.0, 2147483647.0};
    case DType::UInt32:
      return {0.0, 4294967295.0};
    case DType::Int64:
      return {-9223372036854775808.0, 9223372036854774784.0};
    default:
      return {0.0, 18446744073709549568.0};
  }
}

// Clip bounds as the kernel needs them: for integers, rounded inward and clamped to the
// dtype (so clip(-0.5, 2.7) on int8 is [0, 2]).
std::pair<double, double> clip_bounds(const Where& w, DType t, const ClipOp& c) {
  if (is_float(t)) return {c.lo, c.hi};
  const auto [mn, mx] = int_range(t);
  const double lo = std::clamp(std::ceil(c.lo), mn, mx);
  const double hi = std::clamp(std::floor(c.hi), mn, mx);
  if (lo > hi || std::ceil(c.lo) > mx || std::floor(c.hi) < mn) {
    w.refuse("no " + name(t) + " value lies in [lo, hi]");
  }
  return {lo, hi};
}

DType cast_dtype(CastTarget to) {
  switch (to) {
    case CastTarget::Float32:
      return DType::Float32;
    case CastTarget::Float16:
      return DType::Float16;
    case CastTarget::BFloat16:
      return DType::UInt16;  // bfloat16 bits; numpy has no bfloat16
    default:
      return DType::Int8;
  }
}

std::string dims_text(const Dims& d) {
  std::string s;
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s.empty() ? "a scalar" : s;
}

// The checker shared by validate() and run(): the output spec of one operator.
TensorSpec check(const Where& w, const TensorSpec& in) {
  const DType t = in.dtype;
  const Dims& shape = in.shape;
  return std::visit(
      Overloaded{
          [&](const CastOp& c) -> TensorSpec {
            need_numeric(w, t);
            return {cast_dtype(c.to), shape, true};
          },
          [&](const StandardizeOp& s) -> TensorSpec {
            need_float(w, t);
            ChannelLayout L;
            try {
              L = channel_layout(shape, s.axis);
            } catch (const InvalidArgument& e) {
              w.refuse(e.what());
            }
            if (!s.running() && s.mean.size() != L.channels) {
              w.refuse("has " + std::to_string(s.mean.size()) + " mean/std values but the " +
                       (s.axis ? "channel axis has " + std::to_string(L.channels) + " entries"
                               : std::string("array is one channel (no axis given)")) +
                       " (give one value per channel, or set axis=)");
            }
            return in;
          },
          [&](const MinMaxOp&) -> TensorSpec {
            need_float(w, t);
            return in;
          },
          [&](const ClipOp& c) -> TensorSpec {
            if (!is_float(t) && !is_integer(t)) {
              w.refuse("works on float32, float64 and integer data, not " + name(t));
            }
            clip_bounds(w, t, c);
            return in;
          },
          [&](const Log1pOp&) -> TensorSpec {
            need_float(w, t);
            return in;
          },
          [&](const SubsampleOp& s) -> TensorSpec {
            if (s.strides.size() > shape.size()) {
              w.refuse("has " + std::to_string(s.strides.size()) + " strides for a " +
                       std::to_string(shape.size()) + "-d array (give at most one per axis)");
            }
            return {t, subsample_shape(shape, s.strides), true};
          },
          [&](const PatchesOp& p) -> TensorSpec {
            if (p.size.size() > shape.size()) {
              w.refuse("patches of " + std::to_string(p.size.size()) +
                       " axes need an array of "
                       "at least that many axes; this one is " +
                       dims_text(shape));
            }
            for (std::size_t i = 0; i < p.size.size(); ++i) {
              if (p.size[i] > shape[i]) {
                w.refuse("patch " + dims_text(p.size) + " is larger than the array " +
                         dims_text(shape) + " along axis " + std::to_string(i) +
                         " (use a smaller patch size)");
              }
            }
            return {t, patches_shape(shape, p.size, p.stride.empty() ? p.size : p.stride), true};
          },
          [&](const StatsOp&) -> TensorSpec {
            need_numeric(w, t);
            return in;
          },
          [&](const CompressOp&) -> TensorSpec { return {DType::UInt8, {}, false}; },
          [&](const DecompressOp&) -> TensorSpec {
            if (t != DType::UInt8 || shape.size() != 1) {
              w.refuse("takes the 1-d uint8 output of compress, not a " + name(t) + " array of " +
                       "shape " + dims_text(shape));
            }
            return {t, {}, false};
          },
          [&](const PythonOp&) -> TensorSpec { return {t, {}, false}; },
      },
      w.op);
}

std::size_t count_of(const Dims& shape) { return static_cast<std::size_t>(element_count(shape)); }

// The output buffer of an elementwise operator: in place when we own the input.
Tensor same_shape_output(Tensor& cur, DType out_dtype) {
  if (cur.owned() && cur.storage.use_count() == 1 && out_dtype == cur.dtype) return cur;
  return Tensor::allocate(out_dtype, cur.shape);
}

void put_double(Attributes& a, const std::string& key, double v) { a[key] = v; }

Tensor run_cast(const CastOp& c, Tensor& cur) {
  const DType out_t = cast_dtype(c.to);
  const std::size_t n = count_of(cur.shape);
  if (c.to == CastTarget::Float32) {
    if (cur.dtype == DType::Float32) return cur;
    Tensor out = Tensor::allocate(out_t, cur.shape);
    kernels::to_float32(cur.dtype, cur.data, reinterpret_cast<float*>(out.mutable_data()), n);
    return out;
  }
  Tensor out = Tensor::allocate(out_t, cur.shape);
  // Non-float32 inputs go through float32 in cache-sized chunks (so float64 -> float16
  // rounds twice; documented in the README, "Numerics").
  constexpr std::size_t kChunk = 4096;
  std::vector<float> tmp(cur.dtype == DType::Float32 ? 0 : std::min(n, kChunk));
  const std::size_t item = dtype_size(cur.dtype);
  for (std::size_t off = 0; off < n; off += kChunk) {
    const std::size_t len = std::min(kChunk, n - off);
    const float* src;
    if (cur.dtype == DType::Float32) {
      src = reinterpret_cast<const float*>(cur.data) + off;
    } else {
      kernels::to_float32(cur.dtype, cur.data + off * item, tmp.data(), len);
      src = tmp.data();
    }
    auto* dst = out.mutable_data();
    switch (c.to) {
      case CastTarget::Float16:
        kernels::float32_to_float16(src, reinterpret_cast<std::uint16_t*>(dst) + off, len);
        break;
      case CastTarget::BFloat16:
        kernels::float32_to_bfloat16(src, reinterpret_cast<std::uint16_t*>(dst) + off, len);
        break;
      default:
        kernels::float32_to_int8(src, reinterpret_cast<std::int8_t*>(dst) + off, len,
                                 static_cast<float>(c.scale));
    }
  }
  return out;
}

}  // namespace

Pipeline::Pipeline(std::vector<OpSpec> ops) : ops_(std::move(ops)) {
  if (ops_.size() > kMaxOps) {
    throw InvalidArgument("a pipeline has at most " + std::to_string(kMaxOps) + " operators, not " +
                          std::to_string(ops_.size()));
  }
  for (std::size_t i = 0; i + 1 < ops_.size(); ++i) {
    if (std::holds_alternative<CompressOp>(ops_[i]) &&
        !std::holds_alternative<DecompressOp>(ops_[i + 1])) {
      throw InvalidArgument("operator " + std::to_string(i) +
                            " compress must be the last "
                            "operator (it turns the array into bytes); move it to the end");
    }
  }
  key_ = to_string(ops_);
}

Pipeline Pipeline::parse(std::string_view text) { return Pipeline(parse_ops(text)); }

bool Pipeline::has_running_stats() const {
  for (const auto& op : ops_) {
    if (const auto* s = std::get_if<StandardizeOp>(&op); s && s->running()) return true;
  }
  return false;
}

bool Pipeline::has_python() const {
  for (const auto& op : ops_) {
    if (std::holds_alternative<PythonOp>(op)) return true;
  }
  return false;
}

TensorSpec Pipeline::validate(DType dtype, const Dims& shape, std::string_view variable) const {
  TensorSpec spec{dtype, shape, true};
  for (std::size_t i = 0; i < ops_.size() && spec.known; ++i) {
    spec = check(Where{variable, i, ops_[i]}, spec);
  }
  return spec;
}

PipelineResult Pipeline::run(const TensorView& in, const RunOptions& opt) const {
  using clock = std::chrono::steady_clock;
  PipelineResult result;
  Tensor cur;
  cur.dtype = in.dtype;
  cur.shape = in.shape;
  cur.data = static_cast<const std::byte*>(in.data);
  cur.bytes = count_of(in.shape) * dtype_size(in.dtype);

  std::size_t end = ops_.size();
  if (opt.statistics_only) {
    end = 0;
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      if (const auto* s = std::get_if<StandardizeOp>(&ops_[i]); s && s->running()) end = i + 1;
    }
  }
  for (std::size_t i = 0; i < end; ++i) {
    const OpSpec& op = ops_[i];
    const Where w{opt.variable, i, op};
    check(w, {cur.dtype, cur.shape, true});
    const std::string prefix =
        opt.attribute_prefix + std::to_string(i) + "." + std::string(op_name(op)) + ".";
    const auto t0 = clock::now();
    const std::uint64_t bytes_in = cur.bytes;
    const std::size_t n = count_of(cur.shape);
    Tensor next = std::visit(
        Overloaded{
            [&](const CastOp& c) { return run_cast(c, cur); },
            [&](const StandardizeOp& s) {
              StandardizeParams p;
              if (!s.running()) {
                p = {s.mean, s.std};
              } else if (auto pub = opt.published
                                        ? RunningStats::read_published(*opt.published, prefix)
                                        : std::nullopt) {
                p = std::move(*pub);
              } else if (opt.state != nullptr) {
                auto& rs = opt.state->running[i];
                rs.update(cur.view(), s.axis);
                p = rs.params();
                rs.publish(result.attributes, prefix);
              } else {
                w.refuse(
                    "standardize() without mean/std needs running statistics: give the "
                    "writer's published ones or a state to keep them in (or pass mean= "
                    "and std=)");
              }
              if (opt.statistics_only && i + 1 == end) return cur;
              try {
                Tensor out = same_shape_output(cur, cur.dtype);
                standardize_channels(cur.view(), out.mutable_data(), s.axis, p);
                return out;
              } catch (const InvalidArgument& e) {
                w.refuse(e.what());
              }
            },
            [&](const MinMaxOp& m) {
              double lo = 0, hi = 1;
              if (!m.lo || !m.hi) {
                const auto s = kernels::stats(cur.dtype, cur.data, n);
                if (s.count > 0) {
                  lo = s.min;
                  hi = s.max;
                }
              }
              lo = m.lo.value_or(lo);
              hi = m.hi.value_or(hi);
              double range = hi - lo;
              if (!(range > 0) || !std::isfinite(range)) range = 1.0;
              put_double(result.attributes, prefix + "lo", lo);
              put_double(result.attributes, prefix + "hi", hi);
              Tensor out = same_shape_output(cur, cur.dtype);
              kernels::affine(cur.dtype, cur.data, out.mutable_data(), n, lo, range);
              return out;
            },
            [&](const ClipOp& c) {
              const auto [lo, hi] = clip_bounds(w, cur.dtype, c);
              Tensor out = same_shape_output(cur, cur.dtype);
              kernels::clip(cur.dtype, cur.data, out.mutable_data(), n, lo, hi);
              return out;
            },
            [&](const Log1pOp&) {
              Tensor out = same_shape_output(cur, cur.dtype);
              kernels::log1p(cur.dtype, cur.data, out.mutable_data(), n);
              return out;
            },
            [&](const SubsampleOp& s) {
              Tensor out = Tensor::allocate(cur.dtype, subsample_shape(cur.shape, s.strides));
              subsample_copy(cur.view(), s.strides, out.mutable_data());
              return out;
            },
            [&](const PatchesOp& p) {
              const Dims& stride = p.stride.empty() ? p.size : p.stride;
              Tensor out = Tensor::allocate(cur.dtype, patches_shape(cur.shape, p.size, stride));
              patches_copy(cur.view(), p.size, stride, out.mutable_data());
              return out;
            },
            [&](const StatsOp&) {
              const auto s = kernels::stats(cur.dtype, cur.data, n);
              put_double(result.attributes, prefix + "min", s.min);
              put_double(result.attributes, prefix + "max", s.max);
              put_double(result.attributes, prefix + "mean", s.mean);
              put_double(result.attributes, prefix + "std", s.stddev());
              result.attributes[prefix + "count"] = static_cast<std::int64_t>(s.count);
              result.attributes[prefix + "nan_count"] = static_cast<std::int64_t>(s.nan_count);
              return cur;
            },
            [&](const CompressOp& c) { return compress(cur.view(), c.codec, c.level); },
            [&](const DecompressOp&) { return decompress(cur.data, cur.bytes); },
            [&](const PythonOp& p) {
              if (!opt.python) {
                w.refuse(
                    "Python operators run only where a Python runner is given (a Python "
                    "process); this side has none");
              }
              return opt.python(i, p, cur.view());
            },
        },
        op);
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    result.timings.push_back({to_string(op), secs, bytes_in, next.bytes});
    cur = std::move(next);
  }
  if (opt.own_output && !cur.owned()) {
    Tensor copy = Tensor::allocate(cur.dtype, cur.shape);
    std::memcpy(copy.mutable_data(), cur.data, cur.bytes);
    cur = std::move(copy);
  }
  result.output = std::move(cur);
  return result;
}

}  // namespace twinstream::ops
