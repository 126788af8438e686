// twinstream._core, operators part: pipelines run on numpy arrays in C++ with the GIL
// released (Python operators take it back for their call), SIMD target listing and
// forcing, and the result cache. The Python-facing API is python/twinstream/ops.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "core/reader_ops.hpp"
#include "ops/cache.hpp"
#include "ops/codec.hpp"
#include "ops/pipeline.hpp"
#include "ops/simd_target.hpp"
#include "python/convert.hpp"
#include "twinstream/errors.hpp"

namespace py = pybind11;
using namespace twinstream;
using namespace twinstream::ops;
using namespace twinstream::pyconv;

namespace {

Dims shape_of(const py::array& a) {
  Dims d;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) d.push_back(static_cast<std::uint64_t>(a.shape(i)));
  return d;
}

// A read-only numpy array over `data`, keeping `owner` alive as long as the array lives.
py::array array_over(DType dtype, const Dims& shape, const void* data,
                     std::shared_ptr<const void> owner) {
  auto* holder = new std::shared_ptr<const void>(std::move(owner));
  py::capsule cap(holder, [](void* p) { delete static_cast<std::shared_ptr<const void>*>(p); });
  std::vector<py::ssize_t> sh(shape.begin(), shape.end());
  py::array a(py::dtype(std::string(dtype_name(dtype))), sh, {}, data, cap);
  a.attr("setflags")(py::arg("write") = false);
  return a;
}

// Published statistics come back from Python as the dict attributes_dict made.
Attributes attributes_from_python(const py::dict& d) {
  Attributes out;
  for (auto [k, v] : d) {
    const auto key = py::str(k).cast<std::string>();
    if (py::isinstance<py::bool_>(v)) {
      out[key] = v.cast<bool>();
    } else if (py::isinstance<py::int_>(v)) {
      out[key] = v.cast<std::int64_t>();
    } else if (py::isinstance<py::float_>(v)) {
      out[key] = v.cast<double>();
    } else if (py::isinstance<py::str>(v)) {
      out[key] = v.cast<std::string>();
    } else {
      auto a = py::array::ensure(v, py::array::c_style);
      if (!a) throw InvalidArgument("published attribute '" + key + "' is not a value or an array");
      ArrayAttribute arr;
      arr.dtype = dtype_of(a.dtype());
      arr.shape = shape_of(a);
      arr.bytes.resize(static_cast<std::size_t>(a.nbytes()));
      std::memcpy(arr.bytes.data(), a.data(), arr.bytes.size());
      out[key] = std::move(arr);
    }
  }
  return out;
}

// Runs the Python operators of a pipeline: `fns[i]` is the callable of operator i.
PythonRunner python_runner(const py::list& fns) {
  if (fns.empty()) return nullptr;
  return [fns](std::size_t index, const PythonOp& op, const TensorView& in) -> Tensor {
    py::gil_scoped_acquire gil;
    if (index >= fns.size() || fns[index].is_none()) {
      throw InvalidArgument("no Python callable for operator " + std::to_string(index) +
                            " python(name=" + op.name + ")");
    }
    // The callable gets its own copy: it may keep the array beyond this call.
    std::vector<py::ssize_t> sh(in.shape.begin(), in.shape.end());
    py::array arg(py::dtype(std::string(dtype_name(in.dtype))), sh);
    std::memcpy(arg.mutable_data(), in.data, static_cast<std::size_t>(arg.nbytes()));
    py::object r = fns[index](arg);
    auto out = py::array::ensure(r, py::array::c_style);
    if (!out) {
      throw InvalidArgument("python operator '" + op.name + "' returned " +
                            py::str(py::type::of(r)).cast<std::string>() +
                            ", not something numpy can turn into an array");
    }
    Tensor t = Tensor::allocate(dtype_of(out.dtype()), shape_of(out));
    std::memcpy(t.mutable_data(), out.data(), t.bytes);
    return t;
  };
}

py::list timings_to_python(const std::vector<OpTiming>& ts) {
  py::list out;
  for (const auto& t : ts) out.append(py::make_tuple(t.op, t.seconds, t.bytes_in, t.bytes_out));
  return out;
}

py::array output_array(std::shared_ptr<const PipelineResult> r) {
  const Tensor& t = r->output;
  return array_over(t.dtype, t.shape, t.data, std::move(r));
}

}  // namespace

void register_ops(py::module_& m) {
  m.def("ops_simd_targets", [] {
    py::dict d;
    d["compiled"] = compiled_targets();
    d["supported"] = supported_targets();
    d["active"] = active_target();
    return d;
  });
  m.def("ops_force_simd", [](const std::string& name) { force_target(name); }, py::arg("name"));
  m.def(
      "ops_canonical", [](const std::string& text) { return Pipeline::parse(text).key(); },
      py::arg("text"));
  m.def(
      "ops_validate",
      [](const std::string& key, const py::dtype& dtype, const std::vector<std::uint64_t>& shape,
         const std::string& variable) -> py::object {
        const auto spec = Pipeline::parse(key).validate(dtype_of(dtype),
                                                        Dims(shape.begin(), shape.end()), variable);
        if (!spec.known) return py::none();
        return py::make_tuple(std::string(dtype_name(spec.dtype)), spec.shape);
      },
      py::arg("key"), py::arg("dtype"), py::arg("shape"), py::arg("variable"));

  py::class_<PipelineState>(m, "OpsState")
      .def(py::init<>())
      .def("channels", [](const PipelineState& s) {
        py::dict d;
        for (const auto& [i, rs] : s.running) d[py::int_(i)] = rs.channels().size();
        return d;
      });

  m.def(
      "ops_apply",
      [](const std::string& key, const py::array& array, const py::list& fns,
         std::optional<py::dict> published, PipelineState* state, const std::string& variable,
         const std::string& prefix) {
        const Pipeline p = Pipeline::parse(key);
        auto a = py::array::ensure(array, py::array::c_style);
        if (!a) throw InvalidArgument("ops.apply needs a numpy array");
        Attributes pub;
        if (published) pub = attributes_from_python(*published);
        RunOptions o;
        o.variable = variable;
        o.attribute_prefix = prefix;
        o.published = published ? &pub : nullptr;
        o.state = state;
        o.python = python_runner(fns);
        o.own_output = true;
        const TensorView in{dtype_of(a.dtype()), shape_of(a), a.data()};
        std::shared_ptr<const PipelineResult> r;
        {
          py::gil_scoped_release nogil;
          r = std::make_shared<const PipelineResult>(p.run(in, o));
        }
        return py::make_tuple(output_array(r), attributes_dict(r->attributes),
                              timings_to_python(r->timings));
      },
      py::arg("key"), py::arg("array"), py::arg("fns"), py::arg("published") = py::none(),
      py::arg("state") = nullptr, py::arg("variable") = "array", py::arg("prefix") = "");

  m.def(
      "ops_decompress",
      [](const py::array& packed) {
        auto a = py::array::ensure(packed, py::array::c_style);
        if (!a) throw InvalidArgument("decompress needs a uint8 array");
        std::shared_ptr<Tensor> t;
        {
          const void* p = a.data();
          const auto n = static_cast<std::size_t>(a.nbytes());
          py::gil_scoped_release nogil;
          t = std::make_shared<Tensor>(decompress(p, n));
        }
        return array_over(t->dtype, t->shape, t->data, t);
      },
      py::arg("packed"));

  // A stream reader's own pipelines (step.get(name, ops=...)): run by the C++ reader,
  // through its cache and operator-time counters, like the pipelines the writer placed.
  m.def(
      "reader_apply",
      [](Reader& r, const std::string& label, const std::string& key, const py::array& array,
         const py::list& fns) {
        const Pipeline p = Pipeline::parse(key);
        auto a = py::array::ensure(array, py::array::c_style);
        if (!a) throw InvalidArgument("step.get(ops=...) needs a numpy array");
        const TensorView in{dtype_of(a.dtype()), shape_of(a), a.data()};
        const auto python = python_runner(fns);
        std::shared_ptr<const PipelineResult> out;
        {
          py::gil_scoped_release nogil;
          out = reader_ops(r).run_requested(r, label, p, in, python);
        }
        return output_array(std::move(out));
      },
      py::arg("reader"), py::arg("label"), py::arg("key"), py::arg("array"), py::arg("fns"));
  m.def(
      "reader_cached",
      [](Reader& r, std::uint64_t step, const std::string& name, const std::string& key,
         const std::string& source) -> py::object {
        auto hit = reader_ops(r).cached(step, source, name, key);
        if (!hit) return py::none();
        return output_array(std::move(hit));
      },
      py::arg("reader"), py::arg("step"), py::arg("name"), py::arg("key"), py::arg("source"));
  m.def(
      "reader_step_ops_seconds", [](Reader& r) { return reader_ops(r).step_seconds(); },
      py::arg("reader"));

  py::class_<ResultCache>(m, "OpsCache")
      .def(py::init<std::uint64_t>(), py::arg("max_bytes"))
      .def(
          "apply",
          [](ResultCache& c, std::uint64_t step, const std::string& variable,
             const std::string& key, const py::array& array, const py::list& fns) {
            const Pipeline p = Pipeline::parse(key);
            auto a = py::array::ensure(array, py::array::c_style);
            if (!a) throw InvalidArgument("cache.apply needs a numpy array");
            RunOptions o;
            o.variable = variable;
            o.python = python_runner(fns);
            o.own_output = true;
            const TensorView in{dtype_of(a.dtype()), shape_of(a), a.data()};
            std::shared_ptr<const PipelineResult> r;
            {
              py::gil_scoped_release nogil;
              r = c.get_or_compute(CacheKey{step, variable, p.key()}, [&] { return p.run(in, o); });
            }
            return output_array(r);
          },
          py::arg("step"), py::arg("variable"), py::arg("key"), py::arg("array"), py::arg("fns"))
      .def(
          "apply_details",
          // A stream reader's pipeline: published running statistics under `prefix`, and
          // whether the result came from the cache (then its timings are the original run's).
          [](ResultCache& c, std::uint64_t step, const std::string& variable,
             const std::string& key, const py::array& array, const py::list& fns,
             std::optional<py::dict> published, const std::string& prefix) {
            const Pipeline p = Pipeline::parse(key);
            const CacheKey ck{step, variable, p.key()};
            std::shared_ptr<const PipelineResult> r = c.get(ck);
            const bool hit = r != nullptr;
            if (!hit) {
              auto a = py::array::ensure(array, py::array::c_style);
              if (!a) throw InvalidArgument("cache.apply needs a numpy array");
              Attributes pub;
              if (published) pub = attributes_from_python(*published);
              RunOptions o;
              o.variable = variable;
              o.attribute_prefix = prefix;
              o.published = published ? &pub : nullptr;
              o.python = python_runner(fns);
              o.own_output = true;
              const TensorView in{dtype_of(a.dtype()), shape_of(a), a.data()};
              {
                py::gil_scoped_release nogil;
                r = std::make_shared<const PipelineResult>(p.run(in, o));
                c.put(ck, r);
              }
            }
            return py::make_tuple(output_array(r), timings_to_python(r->timings), hit);
          },
          py::arg("step"), py::arg("variable"), py::arg("key"), py::arg("array"), py::arg("fns"),
          py::arg("published") = py::none(), py::arg("prefix") = "")
      .def(
          "lookup",
          // A kept result without computing anything: null on a miss (counted as one).
          [](ResultCache& c, std::uint64_t step, const std::string& variable,
             const std::string& key) -> py::object {
            auto r = c.get(CacheKey{step, variable, key});
            if (!r) return py::none();
            return output_array(std::move(r));
          },
          py::arg("step"), py::arg("variable"), py::arg("key"))
      .def("counters",
           [](const ResultCache& c) {
             const auto n = c.counters();
             py::dict d;
             d["hits"] = n.hits;
             d["misses"] = n.misses;
             d["evictions"] = n.evictions;
             d["rejected"] = n.rejected;
             d["bytes"] = n.bytes;
             d["entries"] = n.entries;
             d["max_bytes"] = n.max_bytes;
             return d;
           })
      .def("keys",
           [](const ResultCache& c) {
             py::list out;
             for (const auto& k : c.keys())
               out.append(py::make_tuple(k.step, k.variable, k.pipeline));
             return out;
           })
      .def("drop_step", &ResultCache::drop_step, py::arg("step"))
      .def("set_max_bytes", &ResultCache::set_max_bytes, py::arg("max_bytes"))
      .def("clear", &ResultCache::clear);
}
