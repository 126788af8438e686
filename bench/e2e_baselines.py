#!/usr/bin/env python3
"""End-to-end benchmark, baseline half: memcpy, raw TCP and ADIOS2 SST per step size.

    python bench/e2e_baselines.py --sizes 4K,64K,1M,16M,64M --steps auto --json out.json

prints a JSON list of result records on stdout (also written to --json) and a
human-readable table on stderr.  "gbps" is GB/s (1e9 bytes/s); latencies are one-way
microseconds, median and p99 over the post-warm-up steps.

For every size it runs:
  memcpy                       numpy copy of one step (in-process ceiling)
  raw_tcp throughput/latency   two processes, one TCP socket on 127.0.0.1
  sst 1->1 throughput/latency  ADIOS2 SST (WAN/EVPath over TCP, BP5), separate processes
  sst 1->2 throughput          one writer, two readers each receiving every step
  sst_nodelay 1->1 thr./lat.   SST with Nagle turned off on its sockets (stock SST
                               stalls ~44 ms per small step on Nagle + delayed ACK)

A twinstream driver can import the same functions from ``baselines`` (see its
docstring) and run this module's ``run_suite`` to put both in one table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so `baselines` imports as a package

from baselines import format_size, parse_size, run_memcpy, run_raw_tcp, run_sst  # noqa: E402

DEFAULT_SIZES = "4K,64K,1M,16M,64M"


# Step counts for --steps auto.  Budget in bytes per run, clamped to [min, max] steps.
# The budgets are sized for this kind of box (~2-3 GB/s raw TCP over loopback, ~1 GB/s
# SST), so large steps run ~0.5-2 s; small steps hit the max count and finish sooner,
# their per-step cost being microseconds.  SST's max is lower because each of its steps
# costs 0.1-0.5 ms of protocol work.
AUTO_STEPS = {
    # key: (bytes budget, min steps, max steps)
    ("raw_tcp", "throughput"): (2e9, 30, 20000),
    ("raw_tcp", "latency"): (1e9, 30, 5000),
    ("sst", "throughput"): (1e9, 20, 1000),
    ("sst", "latency"): (5e8, 20, 1000),
}
# SST runs also stop after this many seconds of streaming (at least 30 steps), because
# stock SST's per-step cost at small sizes (~44 ms) is 300x what the counts assume.
SST_TIME_BUDGET_S = 2.0

# (baseline label, readers, mode, tcp_nodelay) of every SST run per size.
SST_CASES = [
    ("sst", 1, "throughput", False),
    ("sst", 1, "latency", False),
    ("sst", 2, "throughput", False),
    ("sst_nodelay", 1, "throughput", True),
    ("sst_nodelay", 1, "latency", True),
]
ALL_BASELINES = ("memcpy", "raw_tcp", "sst", "sst_nodelay")

# --pin: CPU lists handed to the baselines, cycled over [writer/sender, reader0, ...].
# On a 2-vCPU VM placement dominates small-step results (same-CPU ping-pong is 2-4x
# faster than cross-CPU), so compare systems only under the same --pin.
PIN_LAYOUTS = {"none": None, "split": [0, 1], "same": [0]}


def auto_steps(baseline: str, mode: str, step_bytes: int) -> int:
    budget, lo, hi = AUTO_STEPS[(baseline, mode)]
    return int(max(lo, min(hi, budget // step_bytes)))


def run_suite(sizes: list[int], steps: int | None = None, timeout: float = 90.0,
              only: set[str] | None = None, cpus: list[int] | None = None,
              log=print) -> list[dict]:
    """Run every baseline for every size; ``steps=None`` means auto step counts.

    ``only`` restricts the run to a subset of ALL_BASELINES, ``cpus`` pins processes
    (see PIN_LAYOUTS), ``log`` gets the table lines as they are measured.
    """
    want = only or set(ALL_BASELINES)
    records = []

    def record(rec: dict) -> None:
        records.append(rec)
        log(_table_row(rec))

    log(_table_header())
    for size in sizes:
        def n(baseline: str, mode: str) -> int:
            return steps if steps else auto_steps(baseline, mode, size)

        if "memcpy" in want:
            record(run_memcpy(size))
        if "raw_tcp" in want:
            for mode in ("throughput", "latency"):
                record(run_raw_tcp(size, n("raw_tcp", mode), mode, timeout=timeout,
                                   cpus=cpus))
        for label, readers, mode, nodelay in SST_CASES:
            if label in want:
                record(run_sst(size, n("sst", mode), readers=readers, mode=mode,
                               timeout=timeout, tcp_nodelay=nodelay,
                               time_budget=None if steps else SST_TIME_BUDGET_S,
                               cpus=cpus))
    return records


def _table_header() -> str:
    return (f"{'size':>5} {'baseline':<11} {'mode':<10} {'rd':>2} {'steps':>6} "
            f"{'GB/s':>8} {'lat_med_us':>11} {'lat_p99_us':>11}")


def _table_row(rec: dict) -> str:
    def num(v, fmt):
        return format(v, fmt) if v is not None else "-"

    row = (f"{format_size(rec['step_bytes']):>5} {rec['baseline']:<11} "
           f"{rec.get('mode', ''):<10} {rec.get('readers', ''):>2} {rec['steps']:>6} "
           f"{num(rec['gbps'], '8.3f'):>8} {num(rec['lat_median_us'], '11.1f'):>11} "
           f"{num(rec['lat_p99_us'], '11.1f'):>11}")
    return row + (f"  ERROR: {rec['error']}" if rec.get("error") else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=DEFAULT_SIZES,
                   help=f"comma-separated step sizes, K/M/G binary units (default {DEFAULT_SIZES})")
    p.add_argument("--steps", default="auto",
                   help="steps per run, or 'auto' for ~0.5-2 s per measurement (default)")
    p.add_argument("--json", type=Path, help="also write the JSON list to this file")
    p.add_argument("--only", help="comma-separated subset of " + ",".join(ALL_BASELINES))
    p.add_argument("--pin", choices=sorted(PIN_LAYOUTS), default="none",
                   help="CPU placement: none (scheduler), split (writer CPU 0, readers "
                        "CPU 1, 0, ...), same (everything on CPU 0); default none")
    p.add_argument("--timeout", type=float, default=90.0,
                   help="seconds before a single run is killed and recorded as an error")
    args = p.parse_args(argv)

    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    steps = None if args.steps == "auto" else int(args.steps)
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(ALL_BASELINES):
        p.error(f"--only: unknown baseline(s) {sorted(only - set(ALL_BASELINES))}")

    t0 = time.monotonic()
    records = run_suite(sizes, steps, args.timeout, only, PIN_LAYOUTS[args.pin],
                        log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"total {time.monotonic() - t0:.1f} s", file=sys.stderr)

    text = json.dumps(records, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if any(r.get("error") for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
