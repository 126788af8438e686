// A small particle "simulation" publishing its state every step, the way an MD code
// would: positions (n x 3 float64, copied from the simulation's own array), per-atom
// kinetic energy written in place with reserve() (no copy), and the time as a step
// attribute.
//
//   cpp_writer <stream> <steps> <atoms>      (contact file in $TWINSTREAM_DIR or .)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <twinstream/twinstream.hpp>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <stream> <steps> <atoms>\n", argv[0]);
    return 2;
  }
  const std::string name = argv[1];
  const int steps = std::atoi(argv[2]);
  const std::uint64_t atoms = std::strtoull(argv[3], nullptr, 10);
  try {
    twinstream::WriterOptions opts;
    opts.queue_limit = 4;
    opts.min_readers = 1;  // do not start before the trainer is there
    opts.open_timeout = 60;
    twinstream::Writer writer(name, opts);
    writer.set_attribute("units", std::string("lj"));
    writer.set_attribute("atoms", static_cast<std::int64_t>(atoms));

    std::vector<double> x(atoms * 3);
    const double dt = 0.005;
    for (int step = 0; step < steps; ++step) {
      const double t = step * dt;
      for (std::uint64_t i = 0; i < atoms; ++i) {
        x[3 * i + 0] = std::cos(t + static_cast<double>(i));
        x[3 * i + 1] = std::sin(t + static_cast<double>(i));
        x[3 * i + 2] = static_cast<double>(step);
      }
      writer.begin_step();
      writer.put("x", twinstream::DType::Float64, {atoms, 3}, x.data());
      auto ke = writer.reserve("ke", twinstream::DType::Float32, {atoms});
      auto* k = reinterpret_cast<float*>(ke.data());
      for (std::uint64_t i = 0; i < atoms; ++i) k[i] = static_cast<float>(step + i);
      writer.set_step_attribute("time", t);
      writer.set_step_attribute("step", static_cast<std::int64_t>(step));
      writer.end_step();
    }
    writer.close();
    const auto s = writer.stats();
    std::printf("cpp_writer: published %llu steps, %llu bytes, dropped %llu\n",
                static_cast<unsigned long long>(s.steps), static_cast<unsigned long long>(s.bytes),
                static_cast<unsigned long long>(s.dropped));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpp_writer: %s\n", e.what());
    return 1;
  }
  return 0;
}
