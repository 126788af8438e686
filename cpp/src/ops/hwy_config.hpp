#pragma once
// Which SIMD targets the ops kernels are compiled for. Every translation unit that uses
// Highway includes this first, so that all of them agree on HWY_TARGETS: a dispatch table
// built with one set of targets and a chosen-target index computed with another would
// call the wrong function.
//
// All attainable x86 targets are compiled, including the portable fallback (EMU128, or
// SCALAR under GCC < 12.3, which Highway considers broken for EMU128; TWINSTREAM_SIMD=scalar
// selects either), so that every target can be forced and tested on one machine. SSSE3 is
// left out: every x86-64 CPU of the last decade has SSE4.2, and each target costs compile
// time for every kernel.
#ifndef HWY_COMPILE_ALL_ATTAINABLE
#define HWY_COMPILE_ALL_ATTAINABLE
#endif
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS HWY_SSSE3
#endif
