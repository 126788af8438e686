#pragma once
/// Which SIMD target the ops kernels run on: listing, forcing and the TWINSTREAM_SIMD
/// environment override. Every kernel is compiled for each target listed by
/// compiled_targets() and dispatched at run time to the best one this CPU supports,
/// unless a target is forced.
#include <string>
#include <string_view>
#include <vector>

namespace twinstream::ops {

/// Targets the kernels were compiled for, best first, lower-case ("avx3", "avx2", "sse4",
/// and the portable fallback "scalar" or "emu128"; both names select the fallback).
std::vector<std::string> compiled_targets();
/// The compiled targets this CPU can run, best first.
std::vector<std::string> supported_targets();
/// The target kernels dispatch to now.
std::string active_target();
/// Forces every kernel onto `name` (one of supported_targets(), or "scalar"); an empty
/// name returns to the best supported target. Process-wide; meant for tests and
/// benchmarks, not for use while other threads run kernels. Throws InvalidArgument
/// for an unknown name and Unavailable for a target this CPU cannot run.
void force_target(std::string_view name);
/// Applies TWINSTREAM_SIMD once (the first kernel call does this too); throws like
/// force_target when the variable names a bad target.
void apply_target_from_environment();

}  // namespace twinstream::ops
