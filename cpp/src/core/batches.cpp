#include "core/batches.hpp"

#include <cstring>

namespace twinstream {

std::uint64_t sample_rows(const ShuffleOptions& opt,
                          const std::vector<wire::VariableMeta>& variables,
                          SampleSignature& sig, std::string* why) {
  std::vector<const wire::VariableMeta*> chosen;
  if (opt.variables.empty()) {
    for (const auto& v : variables) {
      if (v.shape.empty()) continue;
      if (!chosen.empty() && v.shape[0] != chosen.front()->shape[0]) continue;
      chosen.push_back(&v);
    }
    if (chosen.empty()) {
      *why = "it has no array variable to sample rows from";
      return 0;
    }
  } else {
    for (const auto& name : opt.variables) {
      const wire::VariableMeta* found = nullptr;
      for (const auto& v : variables) {
        if (v.name == name) found = &v;
      }
      if (!found || found->shape.empty()) {
        *why = "it has no array variable '" + name + "' (shuffle variables=...)";
        return 0;
      }
      chosen.push_back(found);
    }
  }
  const std::uint64_t rows = chosen.front()->shape[0];
  if (sig.vars.empty()) {
    for (const auto* v : chosen) {
      sig.vars.push_back({v->name, v->dtype, Dims(v->shape.begin() + 1, v->shape.end())});
    }
  }
  if (sig.vars.size() != chosen.size()) {
    *why = "its sampled variables differ from the first step's";
    return 0;
  }
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    const auto* v = chosen[i];
    const auto& want = sig.vars[i];
    if (v->name != want.name || v->dtype != want.dtype || v->shape[0] != rows ||
        Dims(v->shape.begin() + 1, v->shape.end()) != want.row_shape) {
      *why = "variable '" + v->name + "' is " + std::string(dtype_name(v->dtype)) +
             dims_to_string(v->shape) + "; a shuffle batch needs every sampled variable to " +
             "keep its dtype and row shape and all of them the same number of rows";
      return 0;
    }
  }
  return rows;
}

std::vector<wire::VariableMeta> batch_variables(const SampleSignature& sig,
                                                const std::vector<Sample>& samples,
                                                const StepVariables& step_variables) {
  std::vector<wire::VariableMeta> out;
  for (const auto& want : sig.vars) {
    wire::VariableMeta bv;
    bv.name = want.name;
    bv.dtype = want.dtype;
    bv.shape.push_back(samples.size());
    bv.shape.insert(bv.shape.end(), want.row_shape.begin(), want.row_shape.end());
    const std::uint64_t elem = dtype_size(want.dtype);
    for (std::size_t i = 0; i < samples.size(); ++i) {
      const auto& s = samples[i];
      for (const auto& v : step_variables(s.step)) {
        if (v.name != want.name) continue;
        for (const auto& b : v.blocks) {
          if (s.row < b.start[0] || s.row >= b.start[0] + b.count[0]) continue;
          // A block is row-major with the first axis outermost: one of its rows is one
          // contiguous run.
          wire::BlockMeta rb;
          rb.start = b.start;
          rb.start[0] = i;
          rb.count = b.count;
          rb.count[0] = 1;
          rb.nbytes = elem * element_count(Dims(b.count.begin() + 1, b.count.end()));
          rb.segment = b.segment;
          rb.offset = b.offset + (s.row - b.start[0]) * rb.nbytes;
          bv.blocks.push_back(std::move(rb));
        }
      }
    }
    out.push_back(std::move(bv));
  }
  return out;
}

ArrayAttribute sample_ids(const std::vector<Sample>& samples) {
  ArrayAttribute a;
  a.dtype = DType::Int64;
  a.shape = {samples.size(), 2};
  a.bytes.resize(samples.size() * 2 * sizeof(std::int64_t));
  auto* p = a.bytes.data();
  for (const auto& s : samples) {
    const std::int64_t v[2] = {static_cast<std::int64_t>(s.step),
                               static_cast<std::int64_t>(s.row)};
    std::memcpy(p, v, sizeof v);
    p += sizeof v;
  }
  return a;
}

void batch_ops_attributes(const SampleSignature& sig, const std::vector<Sample>& samples,
                          const StepAttributes& step_attributes, Attributes& out) {
  auto text = [](const Attributes& a, const std::string& key) -> std::string {
    const auto it = a.find(key);
    const auto* s = it == a.end() ? nullptr : std::get_if<std::string>(&it->second);
    return s ? *s : std::string();
  };
  for (const auto& v : sig.vars) {
    const std::string prefix = "ops." + v.name + ".";
    std::string placement, pipeline;
    bool first = true, same = true;
    std::uint64_t last_step = ~std::uint64_t{0};
    for (const auto& sample : samples) {
      if (sample.step == last_step) continue;
      last_step = sample.step;
      const auto& attrs = step_attributes(sample.step);
      std::string pl = text(attrs, prefix + "placement");
      std::string key = pl == "reader" ? text(attrs, prefix + "pipeline") : std::string();
      if (pl != "reader") pl.clear();
      if (first) {
        placement = std::move(pl);
        pipeline = std::move(key);
        first = false;
      } else if (pl != placement || key != pipeline) {
        same = false;
      }
    }
    if (!same) {
      out[prefix + "placement"] = std::string("mixed");
    } else if (placement == "reader") {
      out[prefix + "placement"] = placement;
      out[prefix + "pipeline"] = pipeline;
    }
  }
}

}  // namespace twinstream
