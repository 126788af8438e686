// twinstream._core: the thin pybind11 layer. Arrays cross without copies (put copies once
// into step memory, reserve and get hand out views), and the GIL is released around
// every call that can block or copy many bytes. Python-facing sugar lives in
// python/twinstream/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "python/convert.hpp"
#include "twinstream/twinstream.hpp"

namespace py = pybind11;
using namespace twinstream;
using namespace twinstream::pyconv;

void register_ops(py::module_& m);  // ops_bindings.cpp

namespace {

PyObject* g_error = nullptr;
PyObject* g_timeout = nullptr;
PyObject* g_connection = nullptr;
PyObject* g_protocol = nullptr;
PyObject* g_invalid = nullptr;
PyObject* g_unavailable = nullptr;

// Exception classes that subclass both twinstream.Error and the matching built-in.
PyObject* new_exception(py::module_& m, const char* name, std::initializer_list<PyObject*> bases,
                        const char* doc) {
  py::tuple b(bases.size());
  std::size_t i = 0;
  for (auto* base : bases) b[i++] = py::reinterpret_borrow<py::object>(base);
  const std::string qualified = std::string("twinstream.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, b.ptr(), nullptr);
  if (!cls) throw py::error_already_set();
  m.attr(name) = py::reinterpret_borrow<py::object>(cls);
  return cls;
}

py::object wrap_owner(std::shared_ptr<const void> owner) {
  auto* holder = new std::shared_ptr<const void>(std::move(owner));
  return py::capsule(holder, [](void* p) { delete static_cast<std::shared_ptr<const void>*>(p); });
}

py::array make_array(DType dtype, const Dims& shape, const void* data,
                     std::shared_ptr<const void> owner, bool writable) {
  std::vector<py::ssize_t> sh(shape.begin(), shape.end());
  py::array a(py::dtype(std::string(dtype_name(dtype))), sh, {}, data, wrap_owner(std::move(owner)));
  if (!writable) a.attr("setflags")(py::arg("write") = false);
  return a;
}

Options to_options(const py::dict& d) {
  Options o;
  for (auto [k, v] : d) o[py::str(k).cast<std::string>()] = py::str(v).cast<std::string>();
  return o;
}

py::list option_docs(std::span<const OptionDoc> docs) {
  py::list out;
  for (const auto& d : docs) {
    out.append(py::make_tuple(std::string(d.key), std::string(d.default_value),
                              std::string(d.type), std::string(d.doc)));
  }
  return out;
}

Dims to_dims(const std::vector<std::uint64_t>& v) { return Dims(v.begin(), v.end()); }

// Opens a Writer or Reader without the GIL: a reader waits for its writer here.
template <typename Stream>
std::unique_ptr<Stream> open_stream(const std::string& name, const py::dict& opts) {
  auto o = to_options(opts);
  py::gil_scoped_release nogil;
  return std::make_unique<Stream>(name, o);
}

// The cache_* counters of a ReaderStats or WriterStats, as Python dict entries.
template <typename Stats>
void add_cache_counters(py::dict& d, const Stats& s) {
  d["cache_hits"] = s.cache_hits;
  d["cache_misses"] = s.cache_misses;
  d["cache_evictions"] = s.cache_evictions;
  d["cache_rejected"] = s.cache_rejected;
  d["cache_bytes"] = s.cache_bytes;
  d["cache_entries"] = s.cache_entries;
  d["cache_max_bytes"] = s.cache_max_bytes;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "twinstream C++ core (use the twinstream package, not this module)";

  g_error = new_exception(m, "Error", {PyExc_Exception}, "Base of every twinstream error.");
  g_timeout = new_exception(m, "TimeoutError", {g_error, PyExc_TimeoutError},
                            "A wait ran past its timeout.");
  g_connection = new_exception(m, "ConnectionError", {g_error, PyExc_ConnectionError},
                               "The peer is gone, unreachable, or refused us.");
  g_protocol = new_exception(m, "ProtocolError", {g_connection},
                             "The peer sent bytes that break the twinstream protocol.");
  g_invalid = new_exception(m, "InvalidArgument", {g_error, PyExc_ValueError},
                            "An argument or option is invalid.");
  g_unavailable = new_exception(m, "Unavailable", {g_error, PyExc_RuntimeError},
                                "A feature or data plane is not available here.");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const twinstream::TimeoutError& e) {
      PyErr_SetString(g_timeout, e.what());
    } catch (const twinstream::ProtocolError& e) {
      PyErr_SetString(g_protocol, e.what());
    } catch (const twinstream::ConnectionError& e) {
      PyErr_SetString(g_connection, e.what());
    } catch (const twinstream::InvalidArgument& e) {
      PyErr_SetString(g_invalid, e.what());
    } catch (const twinstream::Unavailable& e) {
      PyErr_SetString(g_unavailable, e.what());
    } catch (const twinstream::Error& e) {
      PyErr_SetString(g_error, e.what());
    }
  });

  register_ops(m);
  m.def("version", &twinstream::version);
  m.def("writer_option_docs", [] { return option_docs(writer_option_docs()); });
  m.def("reader_option_docs", [] { return option_docs(reader_option_docs()); });
  m.def("data_planes", [] {
    py::list out;
    for (const auto& p : twinstream::data_planes()) out.append(py::make_tuple(p.name, p.available, p.reason));
    return out;
  });

  py::class_<Writer>(m, "Writer")
      .def(py::init(&open_stream<Writer>), py::arg("name"), py::arg("options"))
      .def("begin_step", &Writer::begin_step, py::call_guard<py::gil_scoped_release>())
      .def("end_step", &Writer::end_step, py::call_guard<py::gil_scoped_release>())
      .def("abort_step", &Writer::abort_step)
      .def("close", &Writer::close, py::call_guard<py::gil_scoped_release>())
      .def(
          "put",
          [](Writer& w, const std::string& name, const std::vector<std::uint64_t>& shape,
             const std::vector<std::uint64_t>& start, const std::vector<std::uint64_t>& count,
             const py::array& data) {
            // `data` is C-contiguous (the Python layer ensures it) and stays referenced
            // while the GIL is released.
            const auto dt = dtype_of(data.dtype());
            const void* p = data.data();
            py::gil_scoped_release nogil;
            w.put(name, dt, to_dims(shape), to_dims(start), to_dims(count), p);
          },
          py::arg("name"), py::arg("shape"), py::arg("start"), py::arg("count"), py::arg("data"))
      .def(
          "put_block",
          [](Writer& w, const std::string& name, const std::string& kind, const py::array& data) {
            const auto dt = dtype_of(data.dtype());
            Dims count;
            for (py::ssize_t d = 0; d < data.ndim(); ++d) count.push_back(data.shape(d));
            const void* p = data.data();
            py::gil_scoped_release nogil;
            if (kind == "joined") {
              w.put_joined(name, dt, count, p);
            } else if (kind == "local") {
              w.put_local(name, dt, count, p);
            } else {
              throw InvalidArgument("array kind '" + kind + "': use joined or local");
            }
          },
          py::arg("name"), py::arg("kind"), py::arg("data"))
      .def(
          "reserve",
          [](Writer& w, const std::string& name, const py::dtype& dtype,
             const std::vector<std::uint64_t>& shape, const std::vector<std::uint64_t>& start,
             const std::vector<std::uint64_t>& count) {
            const auto dt = dtype_of(dtype);
            auto mem = w.reserve_shared(name, dt, to_dims(shape), to_dims(start), to_dims(count));
            std::byte* p = mem.get();
            return make_array(dt, to_dims(count), p, std::move(mem), true);
          },
          py::arg("name"), py::arg("dtype"), py::arg("shape"), py::arg("start"), py::arg("count"))
      .def(
          "define",
          [](Writer& w, const std::string& name, const std::string& pipeline,
             const std::string& placement, const py::object& dtype,
             const std::vector<std::uint64_t>& shape) {
            Placement where;
            if (placement == "writer") {
              where = Placement::Writer;
            } else if (placement == "reader") {
              where = Placement::Reader;
            } else {
              throw InvalidArgument("stream '" + w.name() + "' variable '" + name +
                                    "': placement must be 'writer' or 'reader', not '" +
                                    placement + "'");
            }
            std::optional<DType> dt;
            if (!dtype.is_none()) dt = dtype_of(py::dtype::from_args(dtype));
            w.define(name, pipeline, where, dt, to_dims(shape));
          },
          py::arg("name"), py::arg("pipeline"), py::arg("placement"), py::arg("dtype"),
          py::arg("shape"))
      .def("set_step_attribute",
           [](Writer& w, const std::string& name, const py::handle& v) {
             w.set_step_attribute(name, to_attribute(v));
           })
      .def("set_attribute",
           [](Writer& w, const std::string& name, const py::handle& v) {
             w.set_attribute(name, to_attribute(v));
           })
      .def_property_readonly("name", &Writer::name)
      .def_property_readonly("contact_path", &Writer::contact_path)
      .def_property_readonly("address", &Writer::address)
      .def("stats", [](const Writer& w) {
        const auto s = w.stats();
        py::dict d;
        d["steps"] = s.steps;
        d["dropped"] = s.dropped;
        d["blocked_s"] = static_cast<double>(s.blocked_ns) * 1e-9;
        d["bytes"] = s.bytes;
        d["readers"] = s.readers;
        d["queued"] = s.queued;
        d["ops_seconds"] = s.ops_seconds;
        d["ops_last_seconds"] = s.ops_last_seconds;
        d["ops_steps"] = s.ops_steps;
        add_cache_counters(d, s);
        return d;
      });

  py::class_<Reader>(m, "Reader")
      .def(py::init(&open_stream<Reader>), py::arg("name"), py::arg("options"))
      .def(
          "begin_step",
          [](Reader& r, double timeout) {
            // Wait in slices so that Ctrl-C (and other signal handlers) run promptly.
            using clock = std::chrono::steady_clock;
            const auto deadline = clock::now() + std::chrono::duration<double>(timeout < 0 ? 1e9 : timeout);
            while (true) {
              const double left = std::chrono::duration<double>(deadline - clock::now()).count();
              StepStatus st;
              {
                py::gil_scoped_release nogil;
                st = r.begin_step(std::chrono::duration<double>(std::clamp(left, 0.0, 0.2)));
              }
              if (st != StepStatus::NotReady || left <= 0.2) return static_cast<int>(st);
              if (PyErr_CheckSignals() != 0) throw py::error_already_set();
            }
          },
          py::arg("timeout"))
      .def("end_step", &Reader::end_step, py::call_guard<py::gil_scoped_release>())
      .def("close", &Reader::close, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("step_index", &Reader::step_index)
      .def_property_readonly("step_redelivered", &Reader::step_redelivered)
      .def_property_readonly("step_is_batch", &Reader::step_is_batch)
      .def_property_readonly("step_source", &Reader::step_source)
      .def("variables",
           [](const Reader& r) {
             py::list out;
             for (const auto& v : r.variables()) {
               py::list blocks;
               for (const auto& b : v.blocks) {
                 blocks.append(py::make_tuple(b.start, b.count, b.owner));
               }
               out.append(py::make_tuple(v.name, std::string(dtype_name(v.dtype)), v.shape, blocks,
                                         std::string(kind_name(v.kind))));
             }
             return out;
           })
      .def("step_attributes", [](const Reader& r) { return attributes_dict(r.step_attributes()); })
      .def("stream_attributes", [](const Reader& r) { return attributes_dict(r.stream_attributes()); })
      .def(
          "step_attributes_with_prefix",
          // The attributes a writer's pipeline of one variable published ("ops.x."), without
          // converting the rest: reading a plain variable checks this on every get.
          [](const Reader& r, const std::string& prefix) {
            Attributes some;
            const auto& all = r.step_attributes();
            for (auto it = all.lower_bound(prefix);
                 it != all.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
              some.insert(*it);
            }
            return attributes_dict(some);
          },
          py::arg("prefix"))
      .def(
          "get",
          [](Reader& r, const std::string& name, std::optional<std::vector<std::uint64_t>> start,
             std::optional<std::vector<std::uint64_t>> count) {
            ConstView v;
            {
              py::gil_scoped_release nogil;
              v = start ? r.get(name, Box{to_dims(*start), to_dims(*count)}) : r.get(name);
            }
            return make_array(v.dtype, v.shape, v.data, v.owner, false);
          },
          py::arg("name"), py::arg("start") = py::none(), py::arg("count") = py::none())
      .def(
          "get_into",
          [](Reader& r, const std::string& name, const std::vector<std::uint64_t>& start,
             const std::vector<std::uint64_t>& count, py::array& out) {
            if (!(out.flags() & py::array::c_style) || !out.writeable()) {
              throw InvalidArgument("stream '" + r.name() + "': get(out=...) needs a writable "
                                    "C-contiguous array");
            }
            if (const auto* v = r.find(name); v && dtype_of(out.dtype()) != v->dtype) {
              throw InvalidArgument("stream '" + r.name() + "' variable '" + name + "' is " +
                                    std::string(dtype_name(v->dtype)) + "; get(out=...) was given " +
                                    py::str(out.dtype()).cast<std::string>() +
                                    " (pass an array of the variable's dtype)");
            }
            void* p = out.mutable_data();
            const auto n = static_cast<std::size_t>(out.nbytes());
            py::gil_scoped_release nogil;
            r.get_into(name, Box{to_dims(start), to_dims(count)}, p, n);
          },
          py::arg("name"), py::arg("start"), py::arg("count"), py::arg("out"))
      .def(
          "get_block",
          [](Reader& r, const std::string& name, std::size_t index) {
            ConstView v;
            {
              py::gil_scoped_release nogil;
              v = r.get_block(name, index);
            }
            return make_array(v.dtype, v.shape, v.data, v.owner, false);
          },
          py::arg("name"), py::arg("index"))
      .def_property_readonly("first_step", &Reader::first_step)
      .def("start_at", &Reader::start_at, py::arg("index"))
      .def_property_readonly("name", &Reader::name)
      .def("sources",
           [](const Reader& r) {
             py::list out;
             for (const auto& s : r.sources()) {
               py::dict d;
               d["member"] = s.member;
               d["state"] = s.state;
               d["error"] = s.error;
               d["steps"] = s.steps;
               out.append(d);
             }
             return out;
           })
      .def("stats", [](const Reader& r) {
        const auto s = r.stats();
        py::dict d;
        d["steps"] = s.steps;
        d["dropped"] = s.dropped;
        d["redelivered"] = s.redelivered;
        d["bytes"] = s.bytes;
        d["data_plane"] = s.data_plane;
        d["data_plane_detail"] = s.data_plane_detail;
        d["data_plane_fallback"] = s.data_plane_fallback;
        d["control"] = s.control;
        d["preload_bytes"] = s.preload_bytes;
        d["preload_unused_bytes"] = s.preload_unused_bytes;
        d["ops_seconds"] = s.ops_seconds;
        d["ops_last_seconds"] = s.ops_last_seconds;
        d["ops_steps"] = s.ops_steps;
        d["ops_runs"] = s.ops_runs;
        if (s.cache) add_cache_counters(d, s);
        return d;
      });
}
