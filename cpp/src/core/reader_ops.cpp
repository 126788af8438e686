#include "core/reader_ops.hpp"

#include <cstring>
#include <variant>

#include "core/box_copy.hpp"
#include "core/writer_job.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {
namespace {

const std::string* string_attribute(const Attributes& attrs, const std::string& key) {
  const auto it = attrs.find(key);
  return it == attrs.end() ? nullptr : std::get_if<std::string>(&it->second);
}

std::string prefix_of(std::string_view name) { return "ops." + std::string(name) + "."; }

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};

bool is_batch(const WriterJob& s) { return (s.flags() & wire::kBatch) != 0; }

double seconds_of(const ops::PipelineResult& r) {
  double t = 0;
  for (const auto& x : r.timings) t += x.seconds;
  return t;
}

}  // namespace

const std::string* reader_pipeline_key(const Attributes& attrs, std::string_view name) {
  const std::string prefix = prefix_of(name);
  const auto* placement = string_attribute(attrs, prefix + "placement");
  if (!placement || *placement != "reader") return nullptr;
  return string_attribute(attrs, prefix + "pipeline");
}

bool runs_row_by_row(const ops::Pipeline& p, std::string* why) {
  for (const auto& op : p.ops()) {
    const char* bad = std::visit(
        Overloaded{
            [](const ops::CastOp&) -> const char* { return nullptr; },
            [](const ops::ClipOp&) -> const char* { return nullptr; },
            [](const ops::Log1pOp&) -> const char* { return nullptr; },
            [](const ops::StatsOp&) -> const char* { return nullptr; },
            [](const ops::StandardizeOp& s) -> const char* {
              if (s.running()) return "running statistics are the writer's, per step";
              if (s.axis && *s.axis == 0) return "its channels run along the sampled axis";
              return nullptr;
            },
            [](const ops::MinMaxOp& m) -> const char* {
              return m.lo && m.hi ? nullptr : "a missing bound is the whole step's min/max";
            },
            [](const auto&) -> const char* { return "its output depends on the whole step"; },
        },
        op);
    if (bad) {
      if (why) *why = ops::to_string(op) + ": " + bad;
      return false;
    }
  }
  return true;
}

ReaderOps::ReaderOps(std::string stream, const ReaderOptions& options)
    : stream_(std::move(stream)) {
  if (options.cache) cache_ = std::make_unique<ops::ResultCache>(options.cache_bytes);
}

void ReaderOps::begin_step() {
  step_results_.clear();
  shown_valid_ = false;
  std::lock_guard lock(mu_);
  step_seconds_ = 0;
  ran_in_step_ = false;
}

void ReaderOps::end_step() {
  step_results_.clear();
  std::lock_guard lock(mu_);
  if (ran_in_step_) {
    ops_last_seconds_ = step_seconds_;
    ++ops_steps_;
  }
  ran_in_step_ = false;
}

const ops::Pipeline& ReaderOps::pipeline(const std::string& key) {
  auto it = pipelines_.find(key);
  if (it == pipelines_.end()) it = pipelines_.emplace(key, ops::Pipeline::parse(key)).first;
  return it->second;
}

ReaderOps::Result ReaderOps::run_counted(const ops::Pipeline& p, const ops::TensorView& in,
                                         const ops::RunOptions& o) {
  auto r = std::make_shared<const ops::PipelineResult>(p.run(in, o));
  const double t = seconds_of(*r);
  std::lock_guard lock(mu_);
  step_seconds_ += t;
  ops_seconds_ += t;
  ++ops_runs_;
  ran_in_step_ = true;
  return r;
}

ReaderOps::Result ReaderOps::placed_output(WriterJob& s, std::string_view name,
                                           const std::string& key) {
  const bool batch = is_batch(s);
  const std::string step_of = "stream '" + stream_ + "' " +
                              (batch ? "shuffle batch " : "step ") +
                              std::to_string(s.index());
  const auto& p = pipeline(key);
  if (batch) {
    std::string why;
    if (!runs_row_by_row(p, &why)) {
      throw InvalidArgument(step_of + " variable '" + std::string(name) +
                            "': the reader-placed pipeline '" + key +
                            "' cannot run on a shuffle batch, whose rows come from several "
                            "steps (" + why + "); define the variable with placement='writer' "
                            "for a shuffle group (its batches then carry the output's rows), "
                            "or use operators that work row by row with fixed parameters");
    }
  }
  // Keyed by the step's source (what Reader::step_source() and cached() name).
  const std::string& source = s.source();
  const ops::CacheKey ck{s.index(), source + "/" + std::string(name), key};
  const bool use_cache = cache_ && !batch;  // a batch is delivered once: not kept
  if (use_cache) {
    std::lock_guard lock(mu_);
    last_key_[{source, std::string(name)}] = key;
  }
  Result r = use_cache ? cache_->get(ck) : nullptr;
  if (r) return r;
  if (const auto it = step_results_.find(name); it != step_results_.end()) return it->second;

  const ConstView raw = s.get(name, nullptr);
  ops::RunOptions o;
  o.variable = name;
  o.attribute_prefix = prefix_of(name);
  o.published = &s.step_attributes();
  o.own_output = true;  // outlives the raw bytes (end_step, the cache)
  try {
    r = run_counted(p, {raw.dtype, raw.shape, raw.data}, o);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(step_of + ": " + e.what());
  }
  if (use_cache) cache_->put(ck, r);
  step_results_.emplace(std::string(name), r);
  return r;
}

Box ReaderOps::checked_box(std::string_view name, const std::string& key, const ops::Tensor& out,
                           const Box& sel) const {
  bool ok = sel.start.size() == out.shape.size() && sel.count.size() == out.shape.size();
  for (std::size_t d = 0; ok && d < out.shape.size(); ++d) {
    ok = sel.start[d] <= out.shape[d] && sel.count[d] <= out.shape[d] - sel.start[d];
  }
  if (!ok) {
    throw InvalidArgument("stream '" + stream_ + "' variable '" + std::string(name) +
                          "': selection start " + dims_to_string(sel.start) + " count " +
                          dims_to_string(sel.count) + " lies outside " +
                          std::string(dtype_name(out.dtype)) + dims_to_string(out.shape) +
                          ", the output of its reader-placed pipeline '" + key +
                          "' (a box of a reader-placed variable is a box of that output; "
                          "see variables() for its shape)");
  }
  return sel;
}

ConstView ReaderOps::get(WriterJob& s, std::string_view name, const Box* sel) {
  const auto* key = reader_pipeline_key(s.step_attributes(), name);
  if (!key) {
    const auto* placement = string_attribute(s.step_attributes(), prefix_of(name) + "placement");
    if (placement && *placement == "mixed") {
      throw InvalidArgument("stream '" + stream_ + "' shuffle batch " +
                            std::to_string(s.index()) + " variable '" + std::string(name) +
                            "': its rows come from steps with different reader-placed "
                            "pipelines (the variable was defined again within the group's "
                            "window); define it once, or with placement='writer'");
    }
    return s.get(name, sel);
  }
  const Result r = placed_output(s, name, *key);
  const ops::Tensor& out = r->output;
  ConstView v;
  v.dtype = out.dtype;
  if (!sel || (sel->start == Dims(out.shape.size(), 0) && sel->count == out.shape)) {
    if (sel) checked_box(name, *key, out, *sel);
    v.data = out.data;
    v.size = out.bytes;
    v.shape = out.shape;
    v.owner = r;
    return v;
  }
  const Box box = checked_box(name, *key, out, *sel);
  const std::size_t elem = dtype_size(out.dtype);
  v.shape = box.count;
  v.size = element_count(box.count) * elem;
  auto buf = std::shared_ptr<std::byte[]>(new std::byte[std::max<std::size_t>(v.size, 1)]);
  const Box whole{Dims(out.shape.size(), 0), out.shape};
  for_each_run(whole, box, box, elem, [&](std::uint64_t so, std::uint64_t d, std::uint64_t n) {
    std::memcpy(buf.get() + d, out.data + so, n);
  });
  v.data = buf.get();
  v.owner = std::move(buf);
  return v;
}

void ReaderOps::get_into(WriterJob& s, std::string_view name, const Box& sel, void* dst,
                         std::size_t dst_bytes) {
  const auto* placement = string_attribute(s.step_attributes(), prefix_of(name) + "placement");
  if (!placement || *placement == "writer") return s.get_into(name, sel, dst, dst_bytes);
  const ConstView v = get(s, name, &sel);
  if (v.size != dst_bytes) {
    throw InvalidArgument("stream '" + stream_ + "' variable '" + std::string(name) + "': box " +
                          dims_to_string(sel.count) + " of " + std::string(dtype_name(v.dtype)) +
                          " is " + std::to_string(v.size) + " bytes, the destination " +
                          std::to_string(dst_bytes) + " (the box is of the reader-placed "
                          "pipeline's output)");
  }
  if (v.size) std::memcpy(dst, v.data, v.size);
}

const std::vector<VariableInfo>& ReaderOps::variables(const WriterJob& s) const {
  if (shown_valid_) return shown_;
  shown_ = s.variables();
  for (auto& v : shown_) {
    const auto* key = reader_pipeline_key(s.step_attributes(), v.name);
    if (!key) continue;
    try {
      const auto p = ops::Pipeline::parse(*key);
      if (is_batch(s) && !runs_row_by_row(p, nullptr)) continue;  // refused when read
      const auto spec = p.validate(v.dtype, v.shape, v.name);
      if (!spec.known) continue;
      v.dtype = spec.dtype;
      v.shape = spec.shape;
      v.blocks.assign(1, BlockInfo{Dims(spec.shape.size(), 0), spec.shape});
    } catch (const InvalidArgument&) {
      // Shown as sent; reading it reports the error.
    }
  }
  shown_valid_ = true;
  return shown_;
}

std::shared_ptr<const ops::PipelineResult> ReaderOps::run_requested(
    const Reader& reader, const std::string& label, const ops::Pipeline& p,
    const ops::TensorView& in, const ops::PythonRunner& python) {
  ops::RunOptions o;
  o.variable = label;
  o.python = python;
  o.own_output = true;
  const bool own_running = p.has_running_stats();
  if (own_running) {
    // Its statistics are this reader's, updated with every step read: never cached.
    std::lock_guard lock(mu_);
    o.state = &own_state_[{label, p.key()}];
  }
  const std::string& source = reader.step_source();
  const ops::CacheKey ck{reader.step_index(), source + "/" + label, p.key()};
  const bool use_cache = cache_ && !own_running && !reader.step_is_batch();
  if (use_cache) {
    {
      std::lock_guard lock(mu_);
      last_key_[{source, label}] = p.key();
    }
    if (auto hit = cache_->get(ck)) return hit;
  }
  auto r = run_counted(p, in, o);
  if (use_cache) cache_->put(ck, r);
  return r;
}

std::shared_ptr<const ops::PipelineResult> ReaderOps::cached(std::uint64_t step,
                                                             const std::string& source,
                                                             const std::string& name,
                                                             const std::string& key) {
  if (!cache_) return nullptr;
  std::vector<std::pair<std::string, std::string>> tries;  // (label, pipeline)
  {
    std::lock_guard lock(mu_);
    if (key.empty()) {
      if (const auto it = last_key_.find({source, name}); it != last_key_.end()) {
        tries.emplace_back(name, it->second);
      }
    } else {
      for (const auto& [sl, k] : last_key_) {
        const auto& [src, label] = sl;
        if (src == source && (label == name || label.rfind(name + "<", 0) == 0)) {
          tries.emplace_back(label, key);
        }
      }
    }
  }
  for (const auto& [label, k] : tries) {
    if (auto hit = cache_->get({step, source + "/" + label, k})) return hit;
  }
  return nullptr;
}

double ReaderOps::step_seconds() const {
  std::lock_guard lock(mu_);
  return step_seconds_;
}

void ReaderOps::add_stats(ReaderStats& out) const {
  {
    std::lock_guard lock(mu_);
    out.ops_seconds = ops_seconds_;
    out.ops_last_seconds = ops_last_seconds_;
    out.ops_steps = ops_steps_;
    out.ops_runs = ops_runs_;
  }
  if (!cache_) return;
  out.cache = true;
  ops::report(cache_->counters(), out);
}

}  // namespace twinstream
