#include "ops/running_stats.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "twinstream/errors.hpp"

namespace twinstream::ops {
namespace {

// Channel runs shorter than this are too short for a kernel call each; they are handled
// by expanding the per-channel parameters into a repeating pattern instead.
constexpr std::uint64_t kShortRun = 256;

ArrayAttribute float64_array(const std::vector<double>& v) {
  ArrayAttribute a;
  a.dtype = DType::Float64;
  a.shape = {v.size()};
  a.bytes.resize(v.size() * sizeof(double));
  std::memcpy(a.bytes.data(), v.data(), a.bytes.size());
  return a;
}

template <typename T>
void standardize_pattern(const TensorView& in, void* out, const ChannelLayout& L,
                         const StandardizeParams& p) {
  // The parameters repeat with period channels * inner; lay out whole periods, enough to
  // fill a few KiB, and run the array-parameter kernel over it period-aligned.
  const std::size_t period = static_cast<std::size_t>(L.channels * L.inner);
  const std::size_t reps = std::max<std::size_t>(1, 4096 / period);
  std::vector<T> sub(period * reps), div(period * reps);
  for (std::size_t r = 0; r < reps; ++r) {
    for (std::size_t c = 0; c < L.channels; ++c) {
      for (std::size_t i = 0; i < L.inner; ++i) {
        sub[r * period + c * L.inner + i] = static_cast<T>(p.mean[c]);
        div[r * period + c * L.inner + i] = static_cast<T>(p.std[c]);
      }
    }
  }
  const std::size_t n = static_cast<std::size_t>(L.outer) * period;
  const auto* src = static_cast<const T*>(in.data);
  auto* dst = static_cast<T*>(out);
  for (std::size_t off = 0; off < n; off += sub.size()) {
    const std::size_t len = std::min(sub.size(), n - off);
    kernels::affine_arrays(in.dtype, src + off, dst + off, len, sub.data(), div.data());
  }
}

}  // namespace

ChannelLayout channel_layout(const Dims& shape, std::optional<std::int64_t> axis) {
  ChannelLayout L;
  if (!axis) {
    L.inner = element_count(shape);
    return L;
  }
  const auto nd = static_cast<std::int64_t>(shape.size());
  const std::int64_t a = *axis < 0 ? *axis + nd : *axis;
  if (a < 0 || a >= nd) {
    throw InvalidArgument("channel axis " + std::to_string(*axis) + " is out of range for a " +
                          std::to_string(nd) + "-d array (use -" + std::to_string(nd) + " to " +
                          std::to_string(nd - 1) + ")");
  }
  for (std::int64_t i = 0; i < a; ++i) L.outer *= shape[static_cast<std::size_t>(i)];
  L.channels = shape[static_cast<std::size_t>(a)];
  for (std::int64_t i = a + 1; i < nd; ++i) L.inner *= shape[static_cast<std::size_t>(i)];
  return L;
}

void RunningStats::update(const TensorView& block, std::optional<std::int64_t> axis) {
  const ChannelLayout L = channel_layout(block.shape, axis);
  if (!channels_.empty() && channels_.size() != L.channels) {
    throw InvalidArgument("running statistics have " + std::to_string(channels_.size()) +
                          " channels but this block has " + std::to_string(L.channels) +
                          " (the channel axis must keep its length from step to step)");
  }
  channels_.resize(L.channels);
  const std::size_t item = dtype_size(block.dtype);
  const auto* base = static_cast<const std::byte*>(block.data);
  if (L.channels == 1 || L.inner >= kShortRun) {
    for (std::uint64_t o = 0; o < L.outer; ++o) {
      for (std::uint64_t c = 0; c < L.channels; ++c) {
        const auto* run = base + ((o * L.channels + c) * L.inner) * item;
        channels_[c].merge(kernels::stats(block.dtype, run, L.inner));
      }
    }
    return;
  }
  // Short runs (channel-last data): two passes per channel over widened values.
  std::vector<double> v(static_cast<std::size_t>(L.outer * L.inner));
  for (std::uint64_t c = 0; c < L.channels; ++c) {
    std::size_t k = 0;
    for (std::uint64_t o = 0; o < L.outer; ++o) {
      const auto* run = base + ((o * L.channels + c) * L.inner) * item;
      kernels::to_float64(block.dtype, run, v.data() + k, L.inner);
      k += L.inner;
    }
    channels_[c].merge(kernels::stats(DType::Float64, v.data(), v.size()));
  }
}

StandardizeParams RunningStats::params() const {
  StandardizeParams p;
  for (const auto& c : channels_) {
    const double sd = c.stddev();
    p.mean.push_back(c.count > 0 && std::isfinite(c.mean) ? c.mean : 0.0);
    p.std.push_back(std::isfinite(sd) && sd > 0 ? sd : 1.0);
  }
  return p;
}

void RunningStats::publish(Attributes& out, const std::string& prefix) const {
  const auto p = params();
  out[prefix + "mean"] = float64_array(p.mean);
  out[prefix + "std"] = float64_array(p.std);
  ArrayAttribute counts;
  counts.dtype = DType::Int64;
  counts.shape = {channels_.size()};
  counts.bytes.resize(channels_.size() * sizeof(std::int64_t));
  for (std::size_t c = 0; c < channels_.size(); ++c) {
    const auto n = static_cast<std::int64_t>(channels_[c].count);
    std::memcpy(counts.bytes.data() + c * sizeof n, &n, sizeof n);
  }
  out[prefix + "count"] = std::move(counts);
}

std::optional<StandardizeParams> RunningStats::read_published(const Attributes& attrs,
                                                              const std::string& prefix) {
  auto m = attrs.find(prefix + "mean");
  auto s = attrs.find(prefix + "std");
  if (m == attrs.end() && s == attrs.end()) return std::nullopt;
  const auto* ma = m == attrs.end() ? nullptr : std::get_if<ArrayAttribute>(&m->second);
  const auto* sa = s == attrs.end() ? nullptr : std::get_if<ArrayAttribute>(&s->second);
  if (!ma || !sa || ma->dtype != DType::Float64 || sa->dtype != DType::Float64 ||
      ma->bytes.size() != sa->bytes.size() || ma->bytes.size() % 8 != 0) {
    throw InvalidArgument("published statistics '" + prefix +
                          "mean'/'std' are not two float64 arrays of one length");
  }
  StandardizeParams p;
  p.mean.resize(ma->bytes.size() / 8);
  p.std.resize(sa->bytes.size() / 8);
  std::memcpy(p.mean.data(), ma->bytes.data(), ma->bytes.size());
  std::memcpy(p.std.data(), sa->bytes.data(), sa->bytes.size());
  return p;
}

void standardize_channels(const TensorView& in, void* out, std::optional<std::int64_t> axis,
                          const StandardizeParams& p) {
  const ChannelLayout L = channel_layout(in.shape, axis);
  if (p.mean.size() != L.channels || p.std.size() != L.channels) {
    throw InvalidArgument("standardize has " + std::to_string(p.mean.size()) +
                          " mean/std values for " + std::to_string(L.channels) +
                          " channels (give one per channel along the axis, or one for all)");
  }
  const std::size_t item = dtype_size(in.dtype);
  const auto* src = static_cast<const std::byte*>(in.data);
  auto* dst = static_cast<std::byte*>(out);
  if (L.channels == 1 || L.inner >= kShortRun) {
    for (std::uint64_t o = 0; o < L.outer; ++o) {
      for (std::uint64_t c = 0; c < L.channels; ++c) {
        const std::size_t off = static_cast<std::size_t>((o * L.channels + c) * L.inner) * item;
        kernels::affine(in.dtype, src + off, dst + off, L.inner, p.mean[c], p.std[c]);
      }
    }
  } else if (in.dtype == DType::Float32) {
    standardize_pattern<float>(in, out, L, p);
  } else {
    standardize_pattern<double>(in, out, L, p);
  }
}

}  // namespace twinstream::ops
