// End-to-end twinstream measurement, one process per role (the Python driver
// bench/e2e.py starts them and reads their JSON):
//
//   stream_e2e writer <stream> <bytes> <steps> <mode> [copy|reserve [rows]]
//   stream_e2e reader <stream> <plane> <mode> [policy [batch_size]]
//   stream_e2e inproc <stream> <bytes> <steps> <mode> [copy|reserve]   (two threads)
//
// rows: the step is a (rows, bytes/rows) array, so that a shuffle group has samples
// (rows) to mix. policy: the reader joins group "bench" with that delivery policy
// (all, round_robin, on_demand, shuffle; shuffle: window 2 and batch_size samples).
//
// Put mode "copy" (default): the writer copies its payload into the step with put(), the
// one copy a step needs; this is what the memcpy baseline measures. Put mode "reserve":
// the writer produces the step in transport memory (reserve()) and writes only the
// timestamp, like the raw socket sender that sends an unchanged buffer; this is the
// like-for-like comparison with the raw socket and SST baselines.
//
// mode "throughput": the writer publishes as fast as the queue lets it; the reader
// consumes each step (a view over inproc/shm, a pull into its own buffer over tcp) and
// touches one byte per 4 KiB page, as a consumer would.
// mode "latency": the writer publishes a step, then waits until the reader acknowledged
// it (queue_limit=1 under block), so each step crosses an idle system; the step carries
// its CLOCK_MONOTONIC send time and the reader reports now - then.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <twinstream/twinstream.hpp>

namespace {
using Clock = std::chrono::steady_clock;
std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

int run_writer(const std::string& name, std::uint64_t bytes, int steps, const std::string& mode,
               const std::string& put_mode, std::uint64_t rows = 0) {
  twinstream::Options o{{"min_readers", "1"}, {"open_timeout", "60"}};
  o["queue_limit"] = mode == "latency" ? "1" : "2";
  twinstream::Writer w(name, o);
  std::vector<std::byte> payload(std::max<std::uint64_t>(bytes, 8), std::byte{1});
  const auto t0 = Clock::now();
  const std::uint64_t padded = std::max<std::uint64_t>(bytes, 8);
  const twinstream::Dims shape =
      rows > 0 ? twinstream::Dims{rows, padded / rows} : twinstream::Dims{padded};
  for (int i = 0; i < steps; ++i) {
    w.begin_step();  // latency mode: returns once the previous step was acknowledged
    const std::int64_t t = now_ns();
    if (put_mode == "reserve") {
      auto span = w.reserve("data", twinstream::DType::UInt8, shape);
      std::memcpy(span.data(), &t, sizeof t);
    } else {
      std::memcpy(payload.data(), &t, sizeof t);
      w.put("data", twinstream::DType::UInt8, shape, payload.data());
    }
    w.end_step();
  }
  w.close();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("{\"role\":\"writer\",\"steps\":%d,\"seconds\":%.6f}\n", steps, secs);
  return 0;
}

int run_reader(const std::string& name, const std::string& plane, const std::string& mode,
               const std::string& policy = "", const std::string& batch_size = "") {
  twinstream::Options o{{"data_plane", plane}, {"timeout", "60"}};
  if (!policy.empty()) {
    o["group"] = "bench";
    o["policy"] = policy;
  }
  if (policy == "shuffle") {
    o["window"] = "2";
    o["batch_size"] = batch_size.empty() ? "1" : batch_size;
  }
  twinstream::Reader r(name, o);
  std::vector<double> lat_us;
  std::uint64_t total = 0, touched = 0;
  int steps = 0;
  Clock::time_point first{};
  std::vector<std::byte> own;  // tcp: where the pulled bytes land
  while (r.begin_step() == twinstream::StepStatus::Ok) {
    if (steps == 0) first = Clock::now();
    auto v = r.get("data");
    const std::int64_t arrived = now_ns();  // the bytes are in the reader's hands
    std::int64_t sent = 0;
    std::memcpy(&sent, v.data, sizeof sent);
    if (mode == "latency") lat_us.push_back(static_cast<double>(arrived - sent) / 1e3);
    for (std::size_t off = 0; off < v.size; off += 4096) touched += static_cast<unsigned>(v.data[off]);
    total += v.size;
    ++steps;
    r.end_step();
  }
  const double secs = std::chrono::duration<double>(Clock::now() - first).count();
  std::sort(lat_us.begin(), lat_us.end());
  auto pct = [&](double p) {
    if (lat_us.empty()) return 0.0;
    return lat_us[std::min(lat_us.size() - 1, static_cast<std::size_t>(p * lat_us.size()))];
  };
  // The first step includes connection set-up; throughput counts from its arrival.
  const double gbps = steps > 1 ? static_cast<double>(total) * (steps - 1) / steps / secs / 1e9 : 0;
  std::printf(
      "{\"role\":\"reader\",\"plane\":\"%s\",\"steps\":%d,\"bytes\":%llu,\"gbps\":%.4f,"
      "\"lat_median_us\":%.2f,\"lat_p99_us\":%.2f,\"dropped\":%llu,\"checksum\":%llu}\n",
      r.stats().data_plane.c_str(), steps, static_cast<unsigned long long>(total), gbps, pct(0.5),
      pct(0.99), static_cast<unsigned long long>(r.stats().dropped),
      static_cast<unsigned long long>(touched));
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string role = argc > 1 ? argv[1] : "";
    const std::string put_mode = argc >= 7 ? argv[6] : "copy";
    if (role == "writer" && argc >= 6 && argc <= 8) {
      return run_writer(argv[2], std::strtoull(argv[3], nullptr, 10), std::atoi(argv[4]), argv[5],
                        put_mode, argc == 8 ? std::strtoull(argv[7], nullptr, 10) : 0);
    }
    if (role == "reader" && argc >= 5 && argc <= 7) {
      return run_reader(argv[2], argv[3], argv[4], argc >= 6 ? argv[5] : "",
                        argc == 7 ? argv[6] : "");
    }
    if (role == "inproc" && (argc == 6 || argc == 7)) {
      std::thread writer([&] {
        run_writer(argv[2], std::strtoull(argv[3], nullptr, 10), std::atoi(argv[4]), argv[5],
                   put_mode);
      });
      const int rc = run_reader(argv[2], "inproc", argv[5]);
      writer.join();
      return rc;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stream_e2e: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr,
               "usage: stream_e2e writer <stream> <bytes> <steps> <throughput|latency> [copy|reserve [rows]]\n"
               "       stream_e2e reader <stream> <plane> <throughput|latency> [policy [batch_size]]\n"
               "       stream_e2e inproc <stream> <bytes> <steps> <throughput|latency> [copy|reserve]\n");
  return 2;
}
