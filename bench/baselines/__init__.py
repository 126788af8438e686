"""Baselines for the end-to-end streaming benchmark.

Each ``run_*`` function performs one measurement and returns one flat result record
(see ``_common``): ``baseline, mode, step_bytes, steps, gbps (GB/s), lat_median_us,
lat_p99_us`` plus baseline-specific extras, or an ``error`` entry if the run failed.
A twinstream driver can import these and print its own records next to them:

    from baselines import run_memcpy, run_raw_tcp, run_sst
    rows = [run_memcpy(1 << 20), run_raw_tcp(1 << 20, 500, "latency"),
            run_sst(1 << 20, 200, readers=1, mode="throughput")]
"""

from ._common import default_warmup, format_size, latency_fields, parse_size, percentile
from .memcpy_baseline import run_memcpy
from .raw_tcp import build_raw_tcp, run_raw_tcp
from .sst import run_sst

__all__ = [
    "build_raw_tcp",
    "default_warmup",
    "format_size",
    "latency_fields",
    "parse_size",
    "percentile",
    "run_memcpy",
    "run_raw_tcp",
    "run_sst",
]
