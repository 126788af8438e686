// Writer-side pre-processing: variables defined with a pipeline (Writer::define) are
// checked when defined or first put, and processed in end_step. A writer-placed pipeline
// runs once per step and its output replaces the variable, so every reader, group,
// history newcomer and shuffle pass reads the one result; a reader-placed one only keeps
// the running statistics here, so that readers standardize with the same values.
//
// Step attributes, per defined variable x (readers and the Python layer rely on them):
//   ops.x.pipeline   canonical pipeline text (ops::Pipeline::key())
//   ops.x.placement  "writer" (the data is the output) or "reader" (the data is the input)
//   ops.x.seconds    time the writer's operators took on x in this step
//   ops.x.<i>.<op>.<field>  what operator i published (stats, running standardize, minmax)
#include <chrono>
#include <cstring>

#include "core/box_copy.hpp"
#include "core/writer_impl.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {

namespace {
std::string prefix_of(std::string_view variable) {
  return "ops." + std::string(variable) + ".";
}
}  // namespace

void Writer::Impl::define(std::string_view name, std::string_view pipeline, Placement placement,
                          std::optional<DType> dtype, const Dims& shape) {
  const std::string who = "stream '" + name_ + "'";
  if (in_step_) {
    throw InvalidArgument(who + ": define('" + std::string(name) +
                          "') inside a step; call it before begin_step (it applies from the "
                          "next step)");
  }
  if (name.empty() || name.size() > 4096) throw InvalidArgument(who + ": bad variable name");
  if (opt_.ranks > 1) {
    // Each rank holds only its own blocks: a writer-side pipeline (or the running
    // statistics a reader-side one relies on) would see a different array on every rank.
    throw InvalidArgument(who + " variable '" + std::string(name) + "': define() on a writer "
                          "job of " + std::to_string(opt_.ranks) + " ranks is not supported "
                          "(each rank holds only its own blocks); apply the pipeline in the "
                          "reader with step.get(name, ops=[...])");
  }
  Definition d;
  try {
    d.pipeline = ops::Pipeline::parse(pipeline);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(who + " variable '" + std::string(name) + "': " + e.what());
  }
  if (d.pipeline.empty()) {
    definitions_.erase(std::string(name));
    return;
  }
  if (d.pipeline.has_python()) {
    throw InvalidArgument(who + " variable '" + std::string(name) +
                          "': python() operators cannot be placed on a stream (only their "
                          "name would travel); run them in the reader with "
                          "step.get(name, ops=[...]) or ts.ops.apply");
  }
  d.placement = placement;
  if (dtype) {
    try {
      d.pipeline.validate(*dtype, shape, name);
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(who + ": " + e.what());
    }
    d.checked.emplace(*dtype, shape);
  }
  definitions_.insert_or_assign(std::string(name), std::move(d));
}

void Writer::Impl::check_definition(std::string_view name, DType dtype, const Dims& shape) {
  const auto it = definitions_.find(name);
  if (it == definitions_.end()) return;
  auto& d = it->second;
  if (d.checked && d.checked->first == dtype && d.checked->second == shape) return;
  try {
    d.pipeline.validate(dtype, shape, name);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument("stream '" + name_ + "': " + e.what() +
                          " [refused at put: the pipeline defined for this variable does not "
                          "fit " + std::string(dtype_name(dtype)) + dims_to_string(shape) +
                          "; define it again or put what it was defined for]");
  }
  d.checked.emplace(dtype, shape);
}

const void* Writer::Impl::assemble(const SegmentDirectory& segments,
                                   const wire::VariableMeta& v, ops::Tensor& storage) {
  const std::size_t elem = dtype_size(v.dtype);
  const Dims origin(v.shape.size(), 0);
  if (v.blocks.size() == 1 && v.blocks[0].start == origin && v.blocks[0].count == v.shape) {
    return segments.find(v.blocks[0].segment)->data() + v.blocks[0].offset;
  }
  storage = ops::Tensor::allocate(v.dtype, v.shape);
  std::memset(storage.mutable_data(), 0, element_count(v.shape) * elem);
  const Box whole{origin, v.shape};
  for (const auto& b : v.blocks) {
    const std::byte* src = segments.find(b.segment)->data() + b.offset;
    const Box block{b.start, b.count};
    for_each_run(block, whole, block, elem,
                 [&](std::uint64_t so, std::uint64_t doff, std::uint64_t n) {
                   std::memcpy(storage.mutable_data() + doff, src + so, n);
                 });
  }
  return storage.data;
}

void Writer::Impl::run_definitions() {
  ops_unpublished_bytes_ = 0;
  double step_seconds = 0;
  bool ran = false;
  for (auto& v : vars_) {
    const auto it = definitions_.find(v.name);
    if (it == definitions_.end()) continue;
    auto& d = it->second;
    const std::string prefix = prefix_of(v.name);

    ops::Tensor assembled;
    const void* data = assemble(*segments_, v, assembled);

    ops::RunOptions o;
    o.variable = v.name;
    o.attribute_prefix = prefix;
    o.state = &d.state;
    const bool on_writer = d.placement == Placement::Writer;
    o.statistics_only = !on_writer;
    ops::PipelineResult r;
    if (on_writer || d.pipeline.has_running_stats()) {
      try {
        r = d.pipeline.run({v.dtype, v.shape, data}, o);
      } catch (const InvalidArgument& e) {
        throw InvalidArgument("stream '" + name_ + "' step " + std::to_string(next_index_) +
                              ": " + e.what());
      }
    }
    double seconds = 0;
    for (const auto& t : r.timings) seconds += t.seconds;

    if (on_writer) {
      // The output replaces the variable; the input's blocks stay in the slot until it is
      // recycled (no reader is told about them).
      for (const auto& b : v.blocks) ops_unpublished_bytes_ += b.nbytes;
      const auto& out = r.output;
      const auto a = slot_->allocate(out.bytes, [this](std::size_t n) { return new_segment(n); });
      if (out.bytes) std::memcpy(a.data, out.data, out.bytes);
      v.dtype = out.dtype;
      v.shape = out.shape;
      v.blocks.assign(1, {Dims(out.shape.size(), 0), out.shape, a.segment, a.offset, out.bytes});
    }
    for (auto& [k, val] : r.attributes) step_attrs_[k] = std::move(val);
    step_attrs_[prefix + "pipeline"] = d.pipeline.key();
    step_attrs_[prefix + "placement"] = std::string(on_writer ? "writer" : "reader");
    step_attrs_[prefix + "seconds"] = seconds;
    step_seconds += seconds;
    ran = ran || !r.timings.empty();
  }
  std::lock_guard lock(mu_);
  ops_seconds_ += step_seconds;
  if (ran) {
    ops_last_seconds_ = step_seconds;
    ++ops_steps_;
  }
}

}  // namespace twinstream
