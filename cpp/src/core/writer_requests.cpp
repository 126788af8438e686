// Pipelines readers ask the writer to run for them (reader option writer_ops). Each
// distinct (step, variable, pipeline) is computed once, when the step is first announced
// to a reader asking for it, and kept in the writer-side cache (writer_cache.hpp), so
// that other groups or models asking the same, history newcomers and re-deliveries get
// the same bytes without a recompute. The result lives in a writer segment of its own,
// so every data plane serves it like step memory.
//
// A requesting reader sees the output in place of the variable (one block), and step
// attributes, per requested variable x:
//   ops.x.pipeline   canonical pipeline text
//   ops.x.placement  "writer"
//   ops.x.cached     true when the result came from the cache
//   ops.x.seconds    time the writer's operators took when it was computed
//   ops.x.<i>.<op>.<field>  what operator i published (stats, running standardize)
//   ops.x.error      set instead of the variable when the pipeline failed on this step
// Variables the writer defines itself (Writer::define) are delivered as defined, and
// local arrays as put: neither has one array the request could run on.
#include <chrono>
#include <cstring>

#include "core/log.hpp"
#include "core/writer_impl.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {

std::shared_ptr<Segment> Writer::Impl::result_segment(std::size_t size) {
  auto seg = std::make_shared<Segment>(next_segment_id_++, size, shm_prefix_);
  segments_->add(seg);
  planes_->add_segment(seg);
  return seg;
}

void Writer::Impl::retire(const std::vector<std::shared_ptr<Segment>>& segments) {
  for (const auto& seg : segments) {
    segments_->remove(seg->id());
    planes_->remove_segment(seg->id());
    retired_log_.emplace_back(++retired_seq_, seg->id());
  }
}

std::shared_ptr<const WriterCacheResult> Writer::Impl::compute_request(
    const QueuedStep& s, const wire::VariableMeta& v, const ops::Pipeline& pipeline) {
  ops::Tensor storage;
  const void* data = assemble(*segments_, v, storage);
  ops::RunOptions o;
  o.variable = v.name;
  o.attribute_prefix = "ops." + v.name + ".";
  RequestState* running = nullptr;
  if (pipeline.has_running_stats()) {
    // Every reader standardizes step k with the same values, however often it is
    // recomputed: the statistics take each step in once.
    running = &request_states_[{v.name, pipeline.key()}];
    const auto it = running->published.find(s.index);
    if (it != running->published.end()) {
      o.published = &it->second;
    } else {
      o.state = &running->state;
    }
  }
  const auto r = pipeline.run({v.dtype, v.shape, data}, o);
  if (running && !o.published) running->published.emplace(s.index, r.attributes);

  auto out = std::make_shared<WriterCacheResult>();
  out->dtype = r.output.dtype;
  out->shape = r.output.shape;
  out->bytes = r.output.bytes;
  out->attributes = r.attributes;
  for (const auto& t : r.timings) out->seconds += t.seconds;
  ops_seconds_ += out->seconds;

  const WriterCacheKey key{s.index, v.name, pipeline.key()};
  const auto charge = writer_cache_charge(out->bytes);
  std::vector<std::shared_ptr<Segment>> evicted;
  const bool kept = cache_.make_room(charge, evicted);
  retire(evicted);
  out->segment = result_segment(charge);
  if (out->bytes) std::memcpy(out->segment->data(), r.output.data, out->bytes);
  if (kept) cache_.insert(key, out, charge);  // pinned for the reader it is computed for
  return out;
}

void Writer::Impl::serve_writer_ops(Peer& p, const QueuedStep& s, wire::StepMeta& m) {
  auto& served = p.served[s.index];
  for (const auto& [name, pipeline] : p.writer_ops) {
    auto v = std::find_if(m.variables.begin(), m.variables.end(),
                          [&](const wire::VariableMeta& x) { return x.name == name; });
    if (v == m.variables.end()) continue;  // not in this step: nothing to serve
    const std::string prefix = "ops." + name + ".";
    if (v->kind == ArrayKind::Local || s.attributes.count(prefix + "pipeline")) continue;

    const WriterCacheKey key{s.index, name, pipeline.key()};
    auto result = cache_.lookup(key);
    const bool hit = result != nullptr;
    if (!hit) {
      try {
        result = compute_request(s, *v, pipeline);
      } catch (const std::exception& e) {
        const std::string why = "stream '" + name_ + "' step " + std::to_string(s.index) +
                                ": the pipeline " + p.who + " asked for (writer_ops) failed: " +
                                e.what();
        log::warn(why);
        m.variables.erase(v);
        m.attributes[prefix + "error"] = why;
        continue;
      }
    }
    // Pinned (a hit, or kept): unpinned on ack; else the segment is this reader's alone.
    const bool pinned = hit || cache_.pins(key) > 0;
    served.push_back({pinned ? std::optional(key) : std::nullopt, result->segment});

    v->dtype = result->dtype;
    v->shape = result->shape;
    v->kind = ArrayKind::Global;
    v->blocks.assign(1, {Dims(result->shape.size(), 0), result->shape, result->segment->id(), 0,
                         result->bytes});
    m.segments.push_back({result->segment->id(), result->segment->size()});
    for (const auto& [k, val] : result->attributes) m.attributes[k] = val;
    m.attributes[prefix + "pipeline"] = pipeline.key();
    m.attributes[prefix + "placement"] = std::string("writer");
    m.attributes[prefix + "cached"] = hit;
    m.attributes[prefix + "seconds"] = result->seconds;
  }
  if (served.empty()) p.served.erase(s.index);
}

void Writer::Impl::release_served(Peer& p, std::uint64_t step) {
  const auto it = p.served.find(step);
  if (it == p.served.end()) return;
  std::vector<std::shared_ptr<Segment>> own;
  for (const auto& x : it->second) {
    if (x.key) {
      cache_.unpin(*x.key);
    } else {
      own.push_back(x.segment);
    }
  }
  p.served.erase(it);
  retire(own);
}

void Writer::Impl::drop_released_entries() {
  const auto released = [this](std::uint64_t step) { return queue_.find(step) == nullptr; };
  std::vector<std::shared_ptr<Segment>> dropped;
  cache_.drop_steps(released, dropped);
  retire(dropped);
  for (auto& [k, rs] : request_states_) {
    std::erase_if(rs.published, [&](const auto& e) { return released(e.first); });
  }
}

}  // namespace twinstream
