// Text form of operator specs. The parser sees bytes from peers as well as from users, so
// every field is checked and every refusal says which operator and key was wrong.
#include "ops/op_spec.hpp"

#include <charconv>
#include <cmath>
#include <map>

#include "twinstream/errors.hpp"

namespace twinstream::ops {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

constexpr std::string_view kCastTargets[] = {"float32", "float16", "bfloat16", "int8"};
constexpr std::string_view kCodecs[] = {"", "zstd", "lz4"};

std::string number(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string number_list(const std::vector<double>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ":" : "") + number(v[i]);
  return s;
}

std::string dims(const Dims& d) {
  std::string s;
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s;
}

[[noreturn]] void refuse(std::string_view op, const std::string& what) {
  throw InvalidArgument("operator '" + std::string(op) + "': " + what);
}

double parse_number(std::string_view op, std::string_view key, std::string_view v) {
  double out = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) {
    refuse(op, std::string(key) + "='" + std::string(v) + "' is not a number");
  }
  return out;
}

std::int64_t parse_int(std::string_view op, std::string_view key, std::string_view v) {
  std::int64_t out = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) {
    refuse(op, std::string(key) + "='" + std::string(v) + "' is not an integer");
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  if (s.empty()) return out;
  std::size_t start = 0;
  while (true) {
    const auto pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

std::vector<double> parse_numbers(std::string_view op, std::string_view key, std::string_view v) {
  std::vector<double> out;
  for (auto part : split(v, ':')) {
    const double x = parse_number(op, key, part);
    if (!std::isfinite(x)) refuse(op, std::string(key) + " values must be finite");
    out.push_back(x);
  }
  if (out.empty()) refuse(op, std::string(key) + " is empty");
  return out;
}

Dims parse_dims(std::string_view op, std::string_view key, std::string_view v) {
  Dims out;
  for (auto part : split(v, 'x')) {
    const auto x = parse_int(op, key, part);
    if (x < 1) {
      refuse(op, std::string(key) + " values must be >= 1, got " + std::to_string(x));
    }
    out.push_back(static_cast<std::uint64_t>(x));
  }
  if (out.empty() || out.size() > 32) refuse(op, std::string(key) + " needs 1 to 32 values");
  return out;
}

// Key/value pairs of one operator; take() marks a key as used, finish() refuses the rest.
class Params {
 public:
  Params(std::string_view op, std::string_view body) : op_(op) {
    for (auto kv : split(body, ',')) {
      const auto eq = kv.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        refuse(op, "parameter '" + std::string(kv) + "' is not key=value");
      }
      if (!values_.emplace(kv.substr(0, eq), kv.substr(eq + 1)).second) {
        refuse(op, "parameter '" + std::string(kv.substr(0, eq)) + "' given twice");
      }
    }
  }
  std::optional<std::string_view> take(std::string_view key) {
    auto it = values_.find(key);
    if (it == values_.end()) return std::nullopt;
    auto v = it->second;
    values_.erase(it);
    return v;
  }
  std::string_view require(std::string_view key) {
    auto v = take(key);
    if (!v) refuse(op_, "parameter '" + std::string(key) + "' is required");
    return *v;
  }
  void finish() const {
    if (!values_.empty()) {
      refuse(op_, "unknown parameter '" + std::string(values_.begin()->first) + "'");
    }
  }

 private:
  std::string_view op_;
  std::map<std::string_view, std::string_view, std::less<>> values_;
};

bool valid_python_name(std::string_view s) {
  if (s.empty() || s.size() > 200) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '<' || c == '>' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string_view op_names() {
  return "cast, standardize, minmax, clip, log1p, subsample, patches, stats, compress, "
         "decompress, python";
}

std::string_view op_name(const OpSpec& op) {
  return std::visit(Overloaded{
                        [](const CastOp&) { return std::string_view("cast"); },
                        [](const StandardizeOp&) { return std::string_view("standardize"); },
                        [](const MinMaxOp&) { return std::string_view("minmax"); },
                        [](const ClipOp&) { return std::string_view("clip"); },
                        [](const Log1pOp&) { return std::string_view("log1p"); },
                        [](const SubsampleOp&) { return std::string_view("subsample"); },
                        [](const PatchesOp&) { return std::string_view("patches"); },
                        [](const StatsOp&) { return std::string_view("stats"); },
                        [](const CompressOp&) { return std::string_view("compress"); },
                        [](const DecompressOp&) { return std::string_view("decompress"); },
                        [](const PythonOp&) { return std::string_view("python"); },
                    },
                    op);
}

std::string to_string(const OpSpec& op) {
  const std::string name(op_name(op));
  const std::string body = std::visit(
      Overloaded{
          [](const CastOp& c) {
            std::string s = "to=" + std::string(kCastTargets[static_cast<int>(c.to)]);
            if (c.to == CastTarget::Int8) s += ",scale=" + number(c.scale);
            return s;
          },
          [](const StandardizeOp& s) {
            std::string out;
            if (s.axis) out += "axis=" + std::to_string(*s.axis);
            if (!s.running()) {
              out += std::string(out.empty() ? "" : ",") + "mean=" + number_list(s.mean) +
                     ",std=" + number_list(s.std);
            }
            return out;
          },
          [](const MinMaxOp& m) {
            std::string out;
            if (m.lo) out += "lo=" + number(*m.lo);
            if (m.hi) out += std::string(out.empty() ? "" : ",") + "hi=" + number(*m.hi);
            return out;
          },
          [](const ClipOp& c) { return "lo=" + number(c.lo) + ",hi=" + number(c.hi); },
          [](const Log1pOp&) { return std::string(); },
          [](const SubsampleOp& s) { return "strides=" + dims(s.strides); },
          [](const PatchesOp& p) {
            return "size=" + dims(p.size) + ",stride=" + dims(p.stride.empty() ? p.size : p.stride);
          },
          [](const StatsOp&) { return std::string(); },
          [](const CompressOp& c) {
            return "codec=" + std::string(kCodecs[static_cast<int>(c.codec)]) +
                   ",level=" + std::to_string(c.level);
          },
          [](const DecompressOp&) { return std::string(); },
          [](const PythonOp& p) { return "name=" + p.name; },
      },
      op);
  return name + "(" + body + ")";
}

std::string to_string(const std::vector<OpSpec>& ops) {
  std::string s;
  for (std::size_t i = 0; i < ops.size(); ++i) s += (i ? "|" : "") + to_string(ops[i]);
  return s;
}

OpSpec parse_op(std::string_view text) {
  const auto open = text.find('(');
  if (open == std::string_view::npos || text.empty() || text.back() != ')') {
    throw InvalidArgument("operator '" + std::string(text.substr(0, 80)) +
                          "' is not of the form name(key=value,...)");
  }
  const auto name = text.substr(0, open);
  Params p(name, text.substr(open + 1, text.size() - open - 2));
  OpSpec out;
  if (name == "cast") {
    CastOp c;
    const auto to = p.require("to");
    bool found = false;
    for (int i = 0; i < 4; ++i) {
      if (kCastTargets[i] == to) {
        c.to = static_cast<CastTarget>(i);
        found = true;
      }
    }
    if (!found) {
      refuse(name, "cannot cast to '" + std::string(to) +
                       "'; valid targets: float32, float16, bfloat16, int8");
    }
    if (auto s = p.take("scale")) {
      if (c.to != CastTarget::Int8) refuse(name, "scale applies to int8 only");
      c.scale = parse_number(name, "scale", *s);
      if (!(c.scale > 0) || !std::isfinite(c.scale)) {
        refuse(name, "scale must be a positive finite number");
      }
    }
    out = c;
  } else if (name == "standardize") {
    StandardizeOp s;
    if (auto a = p.take("axis")) s.axis = parse_int(name, "axis", *a);
    auto m = p.take("mean");
    auto d = p.take("std");
    if (m.has_value() != d.has_value()) {
      refuse(name, "give both mean and std, or neither (running statistics)");
    }
    if (m) {
      s.mean = parse_numbers(name, "mean", *m);
      s.std = parse_numbers(name, "std", *d);
      if (s.mean.size() != s.std.size()) {
        refuse(name, "mean has " + std::to_string(s.mean.size()) + " values and std " +
                         std::to_string(s.std.size()) + "; give one of each per channel");
      }
      for (double v : s.std) {
        if (!(v > 0)) refuse(name, "std values must be > 0, got " + number(v));
      }
    }
    out = s;
  } else if (name == "minmax") {
    MinMaxOp m;
    if (auto v = p.take("lo")) m.lo = parse_number(name, "lo", *v);
    if (auto v = p.take("hi")) m.hi = parse_number(name, "hi", *v);
    if ((m.lo && !std::isfinite(*m.lo)) || (m.hi && !std::isfinite(*m.hi))) {
      refuse(name, "lo and hi must be finite");
    }
    if (m.lo && m.hi && !(*m.lo < *m.hi)) refuse(name, "lo must be below hi");
    out = m;
  } else if (name == "clip") {
    ClipOp c;
    c.lo = parse_number(name, "lo", p.require("lo"));
    c.hi = parse_number(name, "hi", p.require("hi"));
    if (std::isnan(c.lo) || std::isnan(c.hi) || c.lo > c.hi) {
      refuse(name, "needs lo <= hi (neither NaN), got lo=" + number(c.lo) + " hi=" + number(c.hi));
    }
    out = c;
  } else if (name == "log1p") {
    out = Log1pOp{};
  } else if (name == "subsample") {
    out = SubsampleOp{parse_dims(name, "strides", p.require("strides"))};
  } else if (name == "patches") {
    PatchesOp q;
    q.size = parse_dims(name, "size", p.require("size"));
    q.stride = q.size;
    if (auto s = p.take("stride")) q.stride = parse_dims(name, "stride", *s);
    if (q.stride.size() != q.size.size()) {
      refuse(name, "stride has " + std::to_string(q.stride.size()) + " values and size " +
                       std::to_string(q.size.size()) + "; give one per patched axis");
    }
    out = q;
  } else if (name == "stats") {
    out = StatsOp{};
  } else if (name == "compress") {
    CompressOp c;
    if (auto v = p.take("codec")) {
      if (*v == "zstd") {
        c.codec = Codec::Zstd;
      } else if (*v == "lz4") {
        c.codec = Codec::Lz4;
      } else {
        refuse(name, "unknown codec '" + std::string(*v) + "'; valid: zstd, lz4");
      }
    }
    c.level = c.codec == Codec::Zstd ? 1 : 0;  // each codec's fast default
    if (auto v = p.take("level")) c.level = static_cast<int>(parse_int(name, "level", *v));
    const int max_level = c.codec == Codec::Zstd ? 19 : 12;
    if (c.level < (c.codec == Codec::Zstd ? 1 : 0) || c.level > max_level) {
      refuse(name, "level " + std::to_string(c.level) + " is out of range for " +
                       std::string(kCodecs[static_cast<int>(c.codec)]) +
                       (c.codec == Codec::Zstd ? " (1-19)" : " (0-12; 0 is the fast mode)"));
    }
    out = c;
  } else if (name == "decompress") {
    out = DecompressOp{};
  } else if (name == "python") {
    PythonOp q{std::string(p.require("name"))};
    if (!valid_python_name(q.name)) {
      refuse(name, "name '" + q.name.substr(0, 80) +
                       "' must be 1-200 characters of letters, digits, _ . < > -");
    }
    out = q;
  } else {
    throw InvalidArgument("unknown operator '" + std::string(name.substr(0, 80)) +
                          "'; valid: " + std::string(op_names()));
  }
  p.finish();
  return out;
}

std::vector<OpSpec> parse_ops(std::string_view text) {
  if (text.size() > kMaxSpecBytes) {
    throw InvalidArgument("pipeline text of " + std::to_string(text.size()) +
                          " bytes is longer than the limit of " + std::to_string(kMaxSpecBytes));
  }
  std::vector<OpSpec> ops;
  for (auto part : split(text, '|')) {
    if (ops.size() == kMaxOps) {
      throw InvalidArgument("pipeline has more than " + std::to_string(kMaxOps) + " operators");
    }
    ops.push_back(parse_op(part));
  }
  return ops;
}

}  // namespace twinstream::ops
