// Target listing and forcing. This file is compiled once per SIMD target (Highway's
// foreach_target) only so that it can ask the dispatch table which target runs now:
// Highway keeps the chosen target in one process-wide place, and the index into a
// dispatch table depends on the targets compiled in the asking translation unit, which
// hwy_config.hpp keeps identical for all kernel files.
#include "ops/hwy_config.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/simd_target.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace twinstream::ops::HWY_NAMESPACE {
std::int64_t ThisTarget() { return HWY_TARGET; }
}  // namespace twinstream::ops::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "ops/simd_target.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::ops {
HWY_EXPORT(ThisTarget);

namespace {

std::string lower_name(std::int64_t target) {
  std::string s = hwy::TargetName(target);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> names_of(std::int64_t mask) {
  std::vector<std::string> out;
  // Lower bits are better targets in Highway's numbering.
  for (std::int64_t m = mask; m != 0; m &= m - 1) out.push_back(lower_name(m & -m));
  return out;
}

// What the CPU really supports, read before we ever install a forced set.
std::int64_t real_supported() {
  static const std::int64_t mask = hwy::SupportedTargets() & HWY_TARGETS;
  return mask;
}

std::int64_t target_bit(std::string_view name) {
  if (name == "avx512") name = "avx3";
  if (name == "scalar" || name == "emu128") {
    // The portable fallback is EMU128, or SCALAR where the compiler is too old for it.
    const std::int64_t fallback = HWY_TARGETS & (HWY_EMU128 | HWY_SCALAR);
    if (fallback != 0) return fallback & -fallback;
  }
  for (std::int64_t m = HWY_TARGETS; m != 0; m &= m - 1) {
    if (lower_name(m & -m) == name) return m & -m;
  }
  std::string valid;
  for (const auto& n : names_of(HWY_TARGETS)) valid += (valid.empty() ? "" : ", ") + n;
  throw InvalidArgument("unknown SIMD target '" + std::string(name) +
                        "'; this build has: " + valid + " ('scalar' names the portable fallback)");
}

void install(std::int64_t mask) {
  hwy::SetSupportedTargetsForTest(mask);
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
}

std::once_flag g_env_once;

}  // namespace

std::vector<std::string> compiled_targets() { return names_of(HWY_TARGETS); }
std::vector<std::string> supported_targets() { return names_of(real_supported()); }

std::string active_target() {
  apply_target_from_environment();
  return lower_name(HWY_DYNAMIC_DISPATCH(ThisTarget)());
}

void force_target(std::string_view name) {
  real_supported();
  if (name.empty()) {
    install(0);
    return;
  }
  const std::int64_t bit = target_bit(name);
  if ((bit & real_supported()) == 0) {
    std::string have;
    for (const auto& n : supported_targets()) have += (have.empty() ? "" : ", ") + n;
    throw Unavailable("SIMD target '" + std::string(name) +
                      "' is compiled in but this CPU "
                      "cannot run it; it can run: " +
                      have);
  }
  install(bit);
}

void apply_target_from_environment() {
  std::call_once(g_env_once, [] {
    const char* env = std::getenv("TWINSTREAM_SIMD");
    if (env == nullptr || *env == '\0') return;
    try {
      force_target(env);
    } catch (const Error& e) {
      throw InvalidArgument(std::string("TWINSTREAM_SIMD=") + env + ": " + e.what() +
                            " (unset it to use the best target)");
    }
  });
}

}  // namespace twinstream::ops
#endif  // HWY_ONCE
