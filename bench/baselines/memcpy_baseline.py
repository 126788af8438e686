"""memcpy baseline: how fast one in-process copy of a step is.

This is the ceiling for any transport that has to copy a step at least once (a shared
memory ring, a receive buffer).  It uses numpy.copyto between two preallocated,
pre-faulted arrays, i.e. what a Python consumer does when it copies a step out.

Caveats worth knowing when reading the numbers:
  * For small steps (a few KiB) numpy's per-call overhead (~0.5-1 us) dominates, so the
    figure is "numpy copyto GB/s", well below the hardware's L1/L2 bandwidth.  Copies are
    timed in batches so the timer's own overhead is amortised, but the call overhead is
    real and intentionally kept: a Python consumer pays it too.
  * Repeating the copy of the same buffers keeps small steps cache-resident, which is
    also the situation of a steady-state stream reusing its buffers.
"""

from __future__ import annotations

import time

import numpy as np

from ._common import percentile

# Each timed sample is a batch of copies lasting at least this long, so that
# perf_counter resolution and call overhead of the timer do not distort small steps.
_MIN_SAMPLE_S = 2e-3


def run_memcpy(step_bytes: int, samples: int = 30, budget_s: float = 0.5) -> dict:
    """Median memcpy GB/s (1e9 bytes/s) for one step of ``step_bytes`` bytes.

    Takes ``samples`` batched samples (fewer if ``budget_s`` would be exceeded) and
    reports the median, which is robust to the occasional descheduling on a busy box.
    """
    src = np.full(step_bytes, 0xA5, dtype=np.uint8)
    dst = np.empty(step_bytes, dtype=np.uint8)
    np.copyto(dst, src)  # first touch: page faults must not count or skew calibration

    # Calibrate the batch size: double until one batch takes >= _MIN_SAMPLE_S.
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            np.copyto(dst, src)
        elapsed = time.perf_counter() - t0
        if elapsed >= _MIN_SAMPLE_S or reps >= 1 << 20:
            break
        reps *= 2
    samples = max(5, min(samples, int(budget_s / max(elapsed, 1e-9))))

    per_copy_s = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(reps):
            np.copyto(dst, src)
        per_copy_s.append((time.perf_counter() - t0) / reps)
    if not np.array_equal(dst[:16], src[:16]):  # cheap guard that copies happened
        raise AssertionError("memcpy baseline: destination does not match source")

    median_s = percentile(per_copy_s, 0.5)
    return {
        "baseline": "memcpy",
        "mode": "throughput",
        "step_bytes": step_bytes,
        "steps": samples * reps,
        "gbps": round(step_bytes / median_s / 1e9, 4),
        # One copy's duration: the latency floor of handing a step over by copying it.
        "lat_median_us": round(median_s * 1e6, 3),
        "lat_p99_us": None,  # per-copy times are batch averages; a p99 would mislead
        "reps_per_sample": reps,
        "samples": samples,
    }
