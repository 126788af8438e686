// Throughput of each ops kernel on each SIMD target this CPU runs, with memcpy of the same
// input size measured in the same process as the baseline. Output buffers are allocated
// and touched once up front, so the numbers are the kernels', not the page faults'.
// Prints JSON; bench/ops_bench.py adds the numpy equivalents and the ratios.
//
//   ops_bench [--sizes 65536,1048576,16777216] [--min-sample-ms 20] [--samples 5]
//             [--kernel NAME]
//
// Each kernel measurement is paired with a memcpy measurement of the same size taken just
// before it, so that a shared machine's changing load moves both alike.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "ops/codec.hpp"
#include "ops/kernels.hpp"
#include "ops/layout.hpp"
#include "ops/simd_target.hpp"

using namespace twinstream;
using namespace twinstream::ops;

namespace {

struct Options {
  std::string kernel;  // only this one (all when empty)
  std::vector<std::size_t> sizes{64 << 10, 1 << 20, 16 << 20};
  double min_sample_s = 0.02;
  int samples = 5;
};

// Seconds per call of f: the best of several samples, each a batch lasting at least
// min_sample_s. On a machine shared with other work the best sample is the closest to the
// uncontended speed (as timeit argues); memcpy and numpy are timed the same way.
double time_call(const std::function<void()>& f, const Options& o) {
  using clock = std::chrono::steady_clock;
  f();  // warm caches and branch predictors
  std::size_t reps = 1;
  while (true) {
    const auto t0 = clock::now();
    for (std::size_t i = 0; i < reps; ++i) f();
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s >= o.min_sample_s || reps >= (1u << 24)) break;
    reps *= 2;
  }
  std::vector<double> per;
  for (int k = 0; k < o.samples; ++k) {
    const auto t0 = clock::now();
    for (std::size_t i = 0; i < reps; ++i) f();
    per.push_back(std::chrono::duration<double>(clock::now() - t0).count() /
                  static_cast<double>(reps));
  }
  return *std::min_element(per.begin(), per.end());
}

template <typename T>
class AlignedVector {
 public:
  explicit AlignedVector(std::size_t n)
      : n_(n), p_(static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64}))) {}
  ~AlignedVector() { ::operator delete(p_, std::align_val_t{64}); }
  AlignedVector(const AlignedVector&) = delete;
  AlignedVector& operator=(const AlignedVector&) = delete;
  T* data() const { return p_; }
  std::size_t size() const { return n_; }
  T& operator[](std::size_t i) { return p_[i]; }

 private:
  std::size_t n_;
  T* p_;
};

struct Kernel {
  const char* name;
  std::size_t in_item;  // bytes per input element
  std::function<void(const void* in, void* out, std::size_t n)> run;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--sizes") {
      o.sizes.clear();
      std::string s = argv[i + 1];
      for (std::size_t p = 0; p < s.size();) {
        const auto q = s.find(',', p);
        o.sizes.push_back(std::stoull(s.substr(p, q - p)));
        p = q == std::string::npos ? s.size() : q + 1;
      }
    } else if (a == "--min-sample-ms") {
      o.min_sample_s = std::stod(argv[i + 1]) / 1000.0;
    } else if (a == "--kernel") {
      o.kernel = argv[i + 1];
    } else if (a == "--samples") {
      o.samples = std::stoi(argv[i + 1]);
    }
  }
  const std::size_t max_bytes = *std::max_element(o.sizes.begin(), o.sizes.end());
  // Inputs: smooth data with noise (compressible like simulation fields), no NaN. All
  // buffers are 64-byte aligned, as pipeline buffers are (an AVX-512 store that splits a
  // cache line costs twice).
  AlignedVector<double> f64(max_bytes / 8);
  AlignedVector<float> f32(max_bytes / 4);
  AlignedVector<std::uint8_t> u8(max_bytes);
  std::mt19937 rng(1);
  std::normal_distribution<double> noise(0.0, 0.01);
  for (std::size_t i = 0; i < f64.size(); ++i)
    f64[i] = std::sin(static_cast<double>(i) * 1e-3) + noise(rng);
  for (std::size_t i = 0; i < f32.size(); ++i)
    f32[i] = static_cast<float>(std::sin(static_cast<double>(i) * 1e-3) + noise(rng));
  for (std::size_t i = 0; i < u8.size(); ++i) u8[i] = static_cast<std::uint8_t>(rng());
  AlignedVector<std::byte> out(4 * max_bytes + (1 << 20));
  std::memset(out.data(), 1, out.size() * sizeof(std::byte));

  const std::vector<Kernel> kernels = {
      {"cast_f64_f32", 8,
       [](const void* in, void* out, std::size_t n) {
         kernels::to_float32(DType::Float64, in, static_cast<float*>(out), n);
       }},
      {"cast_u8_f32", 1,
       [](const void* in, void* out, std::size_t n) {
         kernels::to_float32(DType::UInt8, in, static_cast<float*>(out), n);
       }},
      {"cast_f32_f16", 4,
       [](const void* in, void* out, std::size_t n) {
         kernels::float32_to_float16(static_cast<const float*>(in),
                                     static_cast<std::uint16_t*>(out), n);
       }},
      {"cast_f32_bf16", 4,
       [](const void* in, void* out, std::size_t n) {
         kernels::float32_to_bfloat16(static_cast<const float*>(in),
                                      static_cast<std::uint16_t*>(out), n);
       }},
      {"cast_f32_i8", 4,
       [](const void* in, void* out, std::size_t n) {
         kernels::float32_to_int8(static_cast<const float*>(in), static_cast<std::int8_t*>(out), n,
                                  0.01f);
       }},
      {"standardize_f32", 4,
       [](const void* in, void* out, std::size_t n) {
         kernels::affine(DType::Float32, in, out, n, 0.5, 2.0);
       }},
      {"clip_f32", 4,
       [](const void* in, void* out, std::size_t n) {
         kernels::clip(DType::Float32, in, out, n, -0.5, 0.5);
       }},
      {"log1p_f32", 4,
       [](const void* in, void* out, std::size_t n) {
         kernels::log1p(DType::Float32, in, out, n);
       }},
      {"stats_f32", 4,
       [](const void* in, void*, std::size_t n) {
         volatile double sink = kernels::stats(DType::Float32, in, n).mean;
         (void)sink;
       }},
      {"shuffle_4byte", 4,
       [](const void* in, void* out, std::size_t n) { kernels::shuffle_bytes(in, out, n, 4); }},
      {"subsample_2x2_f32", 4,
       [](const void* in, void* out, std::size_t n) {
         const std::uint64_t side = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(n)));
         subsample_copy({DType::Float32, {side, side}, in}, {2, 2}, static_cast<std::byte*>(out));
       }},
      {"patches_64x64_f32", 4,
       [](const void* in, void* out, std::size_t n) {
         const std::uint64_t side = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(n)));
         patches_copy({DType::Float32, {side, side}, in}, {64, 64}, {64, 64},
                      static_cast<std::byte*>(out));
       }},
      {"compress_zstd1_f32", 4,
       [](const void* in, void*, std::size_t n) {
         volatile std::size_t sink = compress({DType::Float32, {n}, in}, Codec::Zstd, 1).bytes;
         (void)sink;
       }},
      {"compress_lz4_f32", 4,
       [](const void* in, void*, std::size_t n) {
         volatile std::size_t sink = compress({DType::Float32, {n}, in}, Codec::Lz4, 0).bytes;
         (void)sink;
       }},
  };

  if (o.kernel == "list") {
    for (const auto& k : kernels) std::printf("%s\n", k.name);
    return 0;
  }
  std::printf("{\n \"targets\": [");
  const auto targets = supported_targets();
  for (std::size_t i = 0; i < targets.size(); ++i)
    std::printf("%s\"%s\"", i ? ", " : "", targets[i].c_str());
  std::printf("],\n \"memcpy\": [");
  for (std::size_t s = 0; s < o.sizes.size(); ++s) {
    const std::size_t bytes = o.sizes[s];
    const double t = time_call([&] { std::memcpy(out.data(), u8.data(), bytes); }, o);
    std::printf("%s\n  {\"bytes\": %zu, \"gbps\": %.4f}", s ? "," : "", bytes, bytes / t / 1e9);
  }
  std::printf("\n ],\n \"kernels\": [");
  bool first = true;
  for (const auto& target : targets) {
    force_target(target);
    for (const auto& k : kernels) {
      if (!o.kernel.empty() && o.kernel != k.name) continue;
      for (std::size_t bytes : o.sizes) {
        const double tm = time_call([&] { std::memcpy(out.data(), u8.data(), bytes); }, o);
        const std::size_t n = bytes / k.in_item;
        const void* in = k.in_item == 8   ? static_cast<const void*>(f64.data())
                         : k.in_item == 1 ? static_cast<const void*>(u8.data())
                                          : static_cast<const void*>(f32.data());
        const double t = time_call([&] { k.run(in, out.data(), n); }, o);
        std::printf(
            "%s\n  {\"kernel\": \"%s\", \"target\": \"%s\", \"bytes\": %zu, "
            "\"gbps\": %.4f, \"memcpy_gbps\": %.4f}",
            first ? "" : ",", k.name, target.c_str(), bytes, bytes / t / 1e9, bytes / tm / 1e9);
        std::fflush(stdout);
        first = false;
      }
    }
  }
  force_target("");
  std::printf("\n ]\n}\n");
  return 0;
}
