#!/usr/bin/env python3
"""Run every benchmark and record the results (what `make bench` runs).

    python bench/run_all.py [--sizes 4K,64K,1M,16M,64M] [--binary ...] [--micro-binary ...]

  1. micro_bench (google-benchmark, JSON)        -> bench/results/micro.json
  2. bench/ops_bench.py (kernels vs memcpy/numpy) -> bench/results/ops.json
  3. bench/e2e.py (twinstream vs. baselines)     -> bench/results/e2e.json
  3b. bench/ops_e2e.py (placement, cache)       -> bench/results/ops_e2e.{json,png}
  3c. bench/writer_cache_bench.py (writer cache) -> bench/results/writer_cache.json
  4. summary tables, targets marked PASS/MISS    -> bench/results/summary.md (also printed)

Binaries default to the `make cpp` build (build/cpp/bench/...) and fall back to the dev
preset's build/dev/bench/....  Exit status 1 if a benchmark failed or any e2e record
carries an error (the files are written either way).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import e2e  # noqa: E402
import e2e_baselines  # noqa: E402
import groups  # noqa: E402
import mpi_bench  # noqa: E402
import nxm_bench  # noqa: E402
import ops_bench  # noqa: E402
import ops_e2e  # noqa: E402
import writer_cache_bench  # noqa: E402
import planes_bench  # noqa: E402
from baselines import parse_size  # noqa: E402

ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
MICRO_BINARIES = [ROOT / "build/cpp/bench/micro_bench", ROOT / "build/dev/bench/micro_bench"]


def find_micro(explicit: str | None) -> Path | None:
    candidates = [Path(explicit)] if explicit else MICRO_BINARIES
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
    return None


def run_micro(binary: Path | None, min_time: str, timeout: float) -> tuple[dict | None, str]:
    """Run micro_bench with JSON output; returns (parsed JSON or None, error text)."""
    if binary is None:
        return None, "micro_bench not found (looked for " + ", ".join(
            str(p.relative_to(ROOT)) for p in MICRO_BINARIES) + ")"
    cmd = [str(binary), "--benchmark_format=json", f"--benchmark_min_time={min_time}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"micro_bench timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        return None, f"micro_bench exit status {proc.returncode}: {proc.stderr.strip()[-800:]}"
    try:
        return json.loads(proc.stdout), ""
    except ValueError as exc:
        return None, f"micro_bench printed invalid JSON ({exc}): {proc.stderr.strip()[-400:]}"


def micro_summary(micro: dict | None, error: str, binary: Path | None, min_time: str) -> str:
    out = ["## Micro benchmarks (google-benchmark)", ""]
    if micro is None:
        return "\n".join(out + [f"not run: {error}", ""])
    ctx = micro.get("context", {})
    out += [f"`{e2e._rel(binary)}` ({e2e.build_type(binary)}; libbenchmark itself reports "
            f"library_build_type={ctx.get('library_build_type')}), "
            f"--benchmark_min_time={min_time}, load average at start "
            f"{'/'.join(f'{x:.2f}' for x in ctx.get('load_avg', []))}", ""]
    rows = []
    for b in micro.get("benchmarks", []):
        unit = b.get("time_unit", "ns")
        rate = ""
        if "bytes_per_second" in b:
            rate = f"{b['bytes_per_second'] / 1e9:.3f} GB/s"
        elif "items_per_second" in b:
            rate = f"{b['items_per_second'] / 1e6:.3f} M items/s"
        rows.append([b["name"], f"{b['real_time']:.1f} {unit}", f"{b['cpu_time']:.1f} {unit}",
                     f"{b.get('iterations', '')}", rate])
    out += e2e._md_table(["benchmark", "real time", "cpu time", "iterations", "rate"], rows)
    return "\n".join(out + [""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=e2e.DEFAULT_SIZES)
    p.add_argument("--binary", help="stream_e2e (default: build/cpp, then build/dev)")
    p.add_argument("--micro-binary", help="micro_bench (default: build/cpp, then build/dev)")
    p.add_argument("--micro-min-time", default="0.05",
                   help="--benchmark_min_time for micro_bench (default 0.05)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--target-s", type=float, default=e2e.DEFAULT_TARGET_S)
    p.add_argument("--no-nodelay", action="store_true", help="skip the SST-nodelay runs")
    p.add_argument("--pin", choices=sorted(e2e_baselines.PIN_LAYOUTS), default="none")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = p.parse_args(argv)

    t0 = time.monotonic()
    micro_bin = find_micro(args.micro_binary)
    print(f"micro_bench: {micro_bin or 'not found'}", file=sys.stderr, flush=True)
    micro, micro_err = run_micro(micro_bin, args.micro_min_time, timeout=300)
    if micro is not None:
        e2e.write_atomic(args.out / "micro.json", json.dumps(micro, indent=1) + "\n")
    else:
        print(f"micro_bench FAILED: {micro_err}", file=sys.stderr)

    ops_report, ops_err = None, ""
    try:
        ops_report = ops_bench.run([parse_size(s) for s in ("64K", "1M", "16M")],
                                   ops_bench.find_binary(None))
        e2e.write_atomic(args.out / "ops.json", json.dumps(ops_report, indent=1) + "\n")
    except (SystemExit, subprocess.SubprocessError, OSError, ValueError) as exc:
        ops_err = str(exc)
        print(f"ops_bench FAILED: {ops_err}", file=sys.stderr)

    binary = e2e.find_binary(args.binary)
    print(f"stream_e2e: {binary}", file=sys.stderr, flush=True)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    records, meta = e2e.run_benchmark(
        sizes, binary, repeats=args.repeats, target_s=args.target_s,
        nodelay=not args.no_nodelay, cpus=e2e_baselines.PIN_LAYOUTS[args.pin])
    e2e.write_atomic(args.out / "e2e.json", json.dumps(records, indent=1) + "\n")

    # Pre-processing end to end: writer vs reader placement, cache vs recompute.
    ops_e2e_rc = 0
    try:
        ops_e2e_rc = ops_e2e.main(["--out", str(args.out)])
    except (RuntimeError, subprocess.SubprocessError, OSError, ImportError) as exc:
        ops_e2e_rc = 1
        print(f"ops_e2e FAILED: {exc}", file=sys.stderr)
    # Writer-side cache vs each reader computing, 1, 2, 4 groups.
    try:
        wc_rc = writer_cache_bench.main(["--out", str(args.out / "writer_cache.json")])
        ops_e2e_rc = ops_e2e_rc or wc_rc
    except (RuntimeError, subprocess.SubprocessError, OSError, ImportError, ValueError) as exc:
        ops_e2e_rc = 1
        print(f"writer_cache_bench FAILED: {exc}", file=sys.stderr)

    total = time.monotonic() - t0
    summary = e2e.render_summary(records, meta)
    summary += f"\nTotal run_all.py runtime (micro + e2e): {total:.1f} s\n\n"
    summary += micro_summary(micro, micro_err, micro_bin, args.micro_min_time)
    summary += "\n" + (ops_bench.summary(ops_report) if ops_report
                       else f"## Ops kernels\n\nnot run: {ops_err}\n")
    e2e.write_atomic(args.out / "summary.md", summary)
    print(summary)
    print(f"results written to {args.out}/ (micro.json, ops.json, e2e.json, summary.md)",
          file=sys.stderr)
    failed = (micro is None or ops_report is None or ops_e2e_rc != 0
              or any(r.get("error") for r in records))
    # Reader groups: 1 -> 2 per delivery policy beside 1 -> 1 and SST's modes (bench/groups.py).
    groups_rc = groups.main(["--json", str(args.out / "groups.json"),
                             "--summary", str(args.out / "groups.md")])
    failed = failed or groups_rc != 0
    # The RMA data planes against the tcp plane and a raw socket (bench/planes_bench.py).
    if planes_bench.fabric_available():
        planes_rc = planes_bench.main(["--json", str(args.out / "planes.json")])
        failed = failed or planes_rc != 0
    # The mpi plane against mpi4py Send/Recv and MPI_Get (bench/mpi_bench.py).
    if mpi_bench.mpi_available():
        mpi_rc = mpi_bench.main(["--json", str(args.out / "mpi.json")])
        failed = failed or mpi_rc != 0
        # N x M: a writer job of 2 ranks to a reader job of 3 against 1 -> 1 (nxm_bench.py).
        failed = failed or nxm_bench.main(["--json", str(args.out / "nxm.json")]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
