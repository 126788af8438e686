"""Helpers shared by the baselines: statistics, result records, size parsing.

Every baseline reports one flat dict ("result record") so that a later twinstream
measurement can be printed and compared side by side with the same keys:

    baseline, mode, step_bytes, steps, gbps, lat_median_us, lat_p99_us [, error]

``gbps`` is GB/s (1e9 bytes per second), not gigabits.  A failed run still yields a
record, carrying an ``error`` string and ``gbps``/latencies set to None, so one broken
baseline never aborts a whole benchmark sweep.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Optional

_SIZE_SUFFIXES = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """'4K' -> 4096, '16M' -> 16 MiB, '123' -> 123 (binary units, as step sizes are)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B") or "0"
    suffix = t[-1] if t[-1] in _SIZE_SUFFIXES else ""
    number = t[: len(t) - len(suffix)] if suffix else t
    return int(float(number) * _SIZE_SUFFIXES[suffix])


def format_size(n: int) -> str:
    """Inverse of parse_size for table labels: 4096 -> '4K', 65536 -> '64K'."""
    for suffix in ("G", "M", "K"):
        unit = _SIZE_SUFFIXES[suffix]
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def percentile(values: Iterable[float], q: float) -> Optional[float]:
    """Linear-interpolation percentile (numpy's default), q in [0, 1].

    Implemented by hand (same formula as raw_tcp.c) so all baselines agree exactly.
    """
    data = sorted(values)
    if not data:
        return None
    pos = q * (len(data) - 1)
    lo = math.floor(pos)
    if lo >= len(data) - 1:
        return data[-1]
    return data[lo] + (pos - lo) * (data[lo + 1] - data[lo])


def latency_fields(lat_us: list[float], prefix: str = "lat") -> dict:
    """Median / p99 / min of a latency sample (microseconds), rounded for readability."""

    def r(v):
        return None if v is None else round(v, 3)

    return {
        f"{prefix}_median_us": r(percentile(lat_us, 0.5)),
        f"{prefix}_p99_us": r(percentile(lat_us, 0.99)),
        f"{prefix}_min_us": r(min(lat_us) if lat_us else None),
    }


def default_warmup(steps: int) -> int:
    """Steps excluded from statistics: a few, never more than a tenth of the run.

    Same rule as raw_tcp.c, so warm-up effects (connection setup, slow start, first-touch
    page faults, lazy allocations) are discounted identically everywhere.
    """
    return max(1, min(5, steps // 10, steps - 1))


def error_record(baseline: str, step_bytes: int, steps: int, error: str, **extra) -> dict:
    """A result record for a run that failed, timed out or produced no output."""
    rec = {
        "baseline": baseline,
        "step_bytes": step_bytes,
        "steps": steps,
        "gbps": None,
        "lat_median_us": None,
        "lat_p99_us": None,
        "error": error,
    }
    rec.update(extra)
    return rec


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def tail(text: str, limit: int = 800) -> str:
    """Last part of a process's stderr, enough to diagnose a failure in an error record.

    ANSI colour codes (ADIOS2 colours its exceptions) are stripped to keep JSON readable.
    """
    text = _ANSI_ESCAPE.sub("", text).strip()
    return text if len(text) <= limit else "..." + text[-limit:]
