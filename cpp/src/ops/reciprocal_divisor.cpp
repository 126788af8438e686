#include "ops/reciprocal_divisor.hpp"

#include <array>
#include <bit>
#include <cfloat>
#include <cmath>
#include <mutex>

namespace twinstream::ops {
namespace {

// Calls this small divide without looking the divisor up (the lookup takes a lock).
constexpr std::size_t kMinElements = 4096;

struct Entry {
  std::uint32_t divisor_bits = 0;
  bool used = false;
  enum class Check : std::uint8_t { kPending, kPassed, kFailed } check = Check::kPending;
  std::uint64_t elements = 0;
  std::uint64_t last_use = 0;
  ReciprocalDivisor fast;  // usable once the check passed
  float bn = 0, hi_n = 0, lo_n = 0;
};

// The parts of the fast path that need no check: hi, lo and the range of |d| for which
// every intermediate is a normal float. usable = false where b has none.
bool prepare(float b, Entry& e) {
  const float mag = std::fabs(b);
  if (!std::isnormal(b) || mag < 0x1p-120f || mag > 0x1p120f) return false;
  int exp = 0;
  const float bn = std::frexp(b, &exp) * 2.0f;  // b = bn * 2^(exp - 1), |bn| in [1, 2)
  const float hi_n = 1.0f / bn;
  // 1 - bn*hi_n is exact with a fused multiply-add; lo_n need only be close to its share.
  const float lo_n = std::fma(-bn, hi_n, 1.0f) / bn;
  const float hi = std::ldexp(hi_n, 1 - exp);
  const float lo = std::ldexp(lo_n, 1 - exp);
  if (!std::isnormal(hi) || (lo != 0.0f && !std::isnormal(lo))) return false;
  // |d| >= min keeps d, d*lo and the quotient normal; |d| <= max keeps d*hi and the
  // quotient below 2^125. Computed in double, then rounded inwards to floats.
  double min = std::max<double>(FLT_MIN, std::ldexp(double{mag}, -124));
  if (lo != 0.0f) min = std::max(min, std::ldexp(1.0, -125) / std::fabs(double{lo}));
  const double max = std::min<double>(FLT_MAX, std::ldexp(double{mag}, 125));
  float min_f = static_cast<float>(min);
  if (double{min_f} < min) min_f = std::nextafter(min_f, INFINITY);
  float max_f = static_cast<float>(max);
  if (double{max_f} > max) max_f = std::nextafter(max_f, 0.0f);
  if (!(min_f <= max_f)) return false;
  e.bn = bn;
  e.hi_n = hi_n;
  e.lo_n = lo_n;
  e.fast = {true, hi, lo, std::bit_cast<std::uint32_t>(min_f), std::bit_cast<std::uint32_t>(max_f)};
  return true;
}

}  // namespace

ReciprocalDivisor reciprocal_divisor(float b, std::size_t n, ReciprocalCheck check) {
  if (n < kMinElements) return {};
  static std::mutex mutex;
  static std::array<Entry, 16> entries;
  static std::uint64_t clock = 0;
  const std::lock_guard lock(mutex);
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(b);
  Entry* e = nullptr;
  for (Entry& c : entries)
    if (c.used && c.divisor_bits == bits) e = &c;
  if (e == nullptr) {
    e = &entries[0];  // a free entry, else the least recently used one
    for (Entry& c : entries)
      if (!c.used || (e->used && c.last_use < e->last_use)) e = &c;
    *e = Entry{};
    e->used = true;
    e->divisor_bits = bits;
    if (!prepare(b, *e)) e->check = Entry::Check::kFailed;
  }
  e->last_use = ++clock;
  e->elements += n;
  if (e->check == Entry::Check::kPending && e->elements >= kReciprocalCheckAfter)
    e->check = check(e->bn, e->hi_n, e->lo_n) ? Entry::Check::kPassed : Entry::Check::kFailed;
  return e->check == Entry::Check::kPassed ? e->fast : ReciprocalDivisor{};
}

}  // namespace twinstream::ops
