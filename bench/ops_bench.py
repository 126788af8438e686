#!/usr/bin/env python3
"""Ops kernels: GB/s of input per kernel, per SIMD target and size, as ratios to memcpy and
to the numpy equivalent measured in the same run (what `make bench` records as ops.json).
Prints the JSON report on stdout and a markdown summary on stderr.

    python bench/ops_bench.py [--sizes 64K,1M,16M] [--rounds 3]
                              [--binary build/cpp/bench/ops_bench] [--out bench/results/ops.json]

The C++ side (bench/ops_bench.cpp) times each kernel into a preallocated output on every
target this CPU runs, with memcpy of the same input size as its baseline. The numpy side
is timed here the same way (batches of calls, best of samples), also into preallocated
outputs (``out=`` / ``np.copyto``), i.e. numpy at its best. Targets from the issue:
memory-bound kernels >= 0.8x memcpy at >= 1 MiB, and >= 3x numpy.

The whole sweep runs several rounds, a few minutes apart for each kernel, and every number
(kernel, memcpy, numpy) is the best of its rounds: on a shared machine a neighbour's burst
lasts seconds, long enough to spoil all samples of one point in a single pass, rarely the
same point in every round.

numpy picks its own vector loops at run time too, so "numpy at its best" on this AVX-512
CPU is not what numpy does on an AVX2 CPU such as Frontier's. Each target below avx3 is
therefore also compared with numpy restricted to the same instruction set
(NPY_DISABLE_CPU_FEATURES, in a worker process that checks the restriction took effect):
``numpy_same_isa_gbps`` and ``vs_numpy_same_isa``. numpy cannot go below its baseline
(x86-64-v2, SSE4.2), which the sse4 and scalar targets are compared with.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
from baselines import parse_size  # noqa: E402

BINARIES = [ROOT / "build/cpp/bench/ops_bench", ROOT / "build/dev/bench/ops_bench"]
# Kernels whose speed is bounded by memory traffic (the 0.8x memcpy target applies);
# the others are bounded by arithmetic (division, log, float64 accumulation) or by the codec.
MEMORY_BOUND = {"cast_f64_f32", "cast_f32_f16", "cast_f32_bf16", "clip_f32", "shuffle_4byte",
                "subsample_2x2_f32", "patches_64x64_f32"}

# numpy restricted to a target's instruction set: the feature groups to disable, and the
# group that must then be the highest one left. avx3 is compared with numpy unrestricted.
NUMPY_ISA = {
    "avx2": ("X86_V4 AVX512_ICL AVX512_SPR", "X86_V3"),
    "sse4": ("X86_V3 X86_V4 AVX512_ICL AVX512_SPR", "X86_V2"),
}


def time_call(f, min_sample_s: float = 0.02, samples: int = 5) -> float:
    """Seconds per call: the best of several samples, each a batch of at least min_sample_s
    (the same estimator as the C++ side: closest to the uncontended speed)."""
    f()
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        if time.perf_counter() - t0 >= min_sample_s or reps >= 1 << 20:
            break
        reps *= 2
    per = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        per.append((time.perf_counter() - t0) / reps)
    return min(per)


def numpy_equivalents(nbytes: int) -> dict:
    """Callables doing each kernel's work with numpy, on inputs of nbytes bytes."""
    n32, n64 = nbytes // 4, nbytes // 8
    rng = np.random.default_rng(1)
    x64 = np.sin(np.arange(n64) * 1e-3) + rng.normal(0, 0.01, n64)
    x32 = (np.sin(np.arange(n32) * 1e-3) + rng.normal(0, 0.01, n32)).astype(np.float32)
    u8 = rng.integers(0, 256, nbytes, dtype=np.uint8)
    o32 = np.ones(max(n32, nbytes), dtype=np.float32)
    o16 = np.ones(n32, dtype=np.uint16)
    o8 = np.ones(n32, dtype=np.int8)
    t32 = np.ones(n32, dtype=np.float32)
    tu = np.ones(n32, dtype=np.uint32)
    mask = np.zeros(n32, dtype=bool)
    side = int(np.sqrt(n32))
    bits = x32.view(np.uint32)

    def bf16():
        np.right_shift(bits, 16, out=tu)
        np.bitwise_and(tu, 1, out=tu)
        np.add(tu, 0x7FFF, out=tu)
        np.add(tu, bits, out=tu)
        np.right_shift(tu, 16, out=tu)
        np.copyto(o16, tu, casting="unsafe")
        np.isnan(x32, out=mask)
        np.copyto(o16, (bits >> 16) | 0x40, where=mask, casting="unsafe")

    def int8():
        np.divide(x32, np.float32(0.01), out=t32)
        np.rint(t32, out=t32)
        np.clip(t32, -128, 127, out=t32)
        np.copyto(o8, t32, casting="unsafe")

    def standardize():
        out = o32[:n32]
        np.subtract(x32, np.float32(0.5), out=out)
        np.divide(out, np.float32(2.0), out=out)

    def stats():
        return x32.min(), x32.max(), x32.mean(dtype=np.float64), x32.std(dtype=np.float64)

    img = x32[: side * side].reshape(side, side)
    return {
        "cast_f64_f32": lambda: np.copyto(o32[:n64], x64, casting="unsafe"),
        "cast_u8_f32": lambda: np.copyto(o32[:nbytes], u8, casting="unsafe"),
        "cast_f32_f16": lambda: np.copyto(o16.view(np.float16), x32, casting="unsafe"),
        "cast_f32_bf16": bf16,
        "cast_f32_i8": int8,
        "standardize_f32": standardize,
        "clip_f32": lambda: np.clip(x32, -0.5, 0.5, out=o32[:n32]),
        "log1p_f32": lambda: np.log1p(x32, out=o32[:n32]),
        "stats_f32": stats,
        "shuffle_4byte": lambda: np.copyto(o32[:n32].view(np.uint8).reshape(4, n32),
                                           x32.view(np.uint8).reshape(n32, 4).T),
        "subsample_2x2_f32": lambda: np.copyto(
            o32[: (side // 2) ** 2].reshape(side // 2, side // 2), img[::2, ::2]),
        "patches_64x64_f32": lambda: np.copyto(
            o32[: side * side].reshape(side // 64, side // 64, 64, 64),
            img.reshape(side // 64, 64, side // 64, 64).transpose(0, 2, 1, 3)),
    }


def numpy_gbps_of(f, size: int, min_sample_ms: float, samples: int) -> float:
    """GB/s of input of one numpy equivalent, timed as the C++ side times its kernels."""
    return size / time_call(f, min_sample_ms / 1000, samples) / 1e9


def best_of(by_size: dict[int, float | None], size: int, gbps: float | None) -> None:
    """Keeps the larger of the GB/s recorded for `size` and a new one (None: no equivalent)."""
    old = by_size.get(size)
    by_size[size] = gbps if old is None else old if gbps is None else max(old, gbps)


def numpy_groups() -> dict[str, bool]:
    """numpy's x86 feature groups and whether its dispatch uses them in this process."""
    from numpy._core._multiarray_umath import __cpu_features__
    return {k: v for k, v in __cpu_features__.items() if k.startswith("X86_V")}


class NumpyWorker:
    """numpy in a process of its own restricted to one instruction set: times a kernel's
    numpy equivalent on request, so that its numbers are taken beside the others."""

    def __init__(self, isa: str):
        disable, highest = NUMPY_ISA[isa]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--numpy-worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env={**os.environ, "NPY_DISABLE_CPU_FEATURES": disable})
        groups = json.loads(self.proc.stdout.readline())
        on = [g for g, ok in groups.items() if ok]
        if not on or max(on) != highest:
            self.close()
            raise SystemExit(f"numpy did not restrict itself to {highest} for target {isa} "
                             f"(NPY_DISABLE_CPU_FEATURES='{disable}' left {on}); this numpy "
                             f"({np.__version__}) names its feature groups differently")

    def gbps(self, name: str, size: int, min_sample_ms: float, samples: int) -> float | None:
        self.proc.stdin.write(f"{name} {size} {min_sample_ms} {samples}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def numpy_worker_loop() -> int:
    """--numpy-worker: announce the feature groups in use, then answer one line per request."""
    np.seterr(all="ignore")
    print(json.dumps(numpy_groups()), flush=True)
    for line in sys.stdin:
        name, size, min_sample_ms, samples = line.split()
        f = numpy_equivalents(int(size)).get(name)
        g = None if f is None else numpy_gbps_of(f, int(size), float(min_sample_ms), int(samples))
        print(json.dumps(g), flush=True)
    return 0


def find_binary(explicit: str | None) -> Path:
    for p in [Path(explicit)] if explicit else BINARIES:
        if p.is_file():
            return p.resolve()
    raise SystemExit("ops_bench not found (build it: make cpp); looked for "
                     + ", ".join(str(p) for p in BINARIES))


def run(sizes: list[int], binary: Path, min_sample_ms: float = 20, samples: int = 5,
        rounds: int = 3) -> dict:
    """One kernel at a time: the C++ side (every target and size, each paired with a memcpy
    of that size), then numpy's equivalent at each size, so that the three numbers of a
    ratio are taken within seconds of each other on a machine whose load changes; the
    whole sweep `rounds` times, keeping each number's best."""
    names = subprocess.run([str(binary), "--kernel", "list"], capture_output=True, text=True,
                           timeout=60, check=True).stdout.split()
    np.seterr(all="ignore")  # log1p of x < -1 gives NaN on both sides; no warnings wanted
    native: dict = {"memcpy": [], "kernels": []}
    numpy_gbps: dict[str, dict[int, float]] = {}
    # (isa, kernel) -> {size: GB/s} for numpy restricted to that instruction set.
    restricted: dict[tuple[str, str], dict[int, float]] = {}
    workers: dict[str, NumpyWorker] | None = None  # for the targets below avx3 it runs
    for name in [n for _ in range(rounds) for n in names]:
        cpp = subprocess.run([str(binary), "--kernel", name, "--sizes", ",".join(map(str, sizes)),
                              "--min-sample-ms", str(min_sample_ms), "--samples", str(samples)],
                             capture_output=True, text=True, timeout=600, check=True)
        part = json.loads(cpp.stdout)
        native["targets"] = part["targets"]
        if workers is None:
            workers = {isa: NumpyWorker(isa) for isa in NUMPY_ISA if isa in part["targets"]}
        native["memcpy"] += part["memcpy"]
        native["kernels"] += part["kernels"]
        for size in sizes:
            f = numpy_equivalents(size).get(name)
            if f is not None:
                best_of(numpy_gbps.setdefault(name, {}), size,
                        numpy_gbps_of(f, size, min_sample_ms, samples))
                for isa, w in workers.items():
                    best_of(restricted.setdefault((isa, name), {}), size,
                            w.gbps(name, size, min_sample_ms, samples))
    for w in (workers or {}).values():
        w.close()
    # Each (kernel, target, size): its best GB/s and the best of the memcpy runs beside it.
    best: dict[tuple[str, str, int], dict] = {}
    for k in native["kernels"]:
        b = best.setdefault((k["kernel"], k["target"], k["bytes"]), dict(k))
        b["gbps"] = max(b["gbps"], k["gbps"])
        b["memcpy_gbps"] = max(b["memcpy_gbps"], k["memcpy_gbps"])
    results = []
    for k in best.values():
        np_gbps = numpy_gbps.get(k["kernel"], {}).get(k["bytes"])
        isa = "sse4" if k["target"] == "scalar" else k["target"]
        same = (restricted.get((isa, k["kernel"]), {}).get(k["bytes"]) if isa in NUMPY_ISA
                else np_gbps)
        results.append({
            **k,
            "numpy_gbps": np_gbps,
            "numpy_same_isa_gbps": same,
            "vs_memcpy": k["gbps"] / k["memcpy_gbps"],
            "vs_numpy": None if np_gbps is None else k["gbps"] / np_gbps,
            "vs_numpy_same_isa": None if same is None else k["gbps"] / same,
            "memory_bound": k["kernel"] in MEMORY_BOUND,
        })
    return {
        "description": "GB/s (1e9 bytes/s) of input; ratios to memcpy of the same input size "
                       "and to the numpy equivalent (at its best on this CPU, and restricted "
                       "to the target's instruction set), all measured in this run; every "
                       f"number the best of {rounds} rounds",
        "rounds": rounds,
        "numpy_isa": {isa: {"disabled": d, "highest": h} for isa, (d, h) in NUMPY_ISA.items()},
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "numpy": np.__version__},
        "binary": str(binary.relative_to(ROOT)) if binary.is_relative_to(ROOT) else str(binary),
        "targets": native["targets"],
        "memcpy": native["memcpy"],  # the memcpy of each binary run (every round)
        "numpy": [{"kernel": k, "bytes": b, "gbps": g} for k, v in numpy_gbps.items()
                  for b, g in v.items()],
        "numpy_restricted": [{"isa": isa, "kernel": k, "bytes": b, "gbps": g}
                             for (isa, k), v in restricted.items() for b, g in v.items()],
        "results": results,
    }


def _size(b: int) -> str:
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB"


def summary(report: dict) -> str:
    """Markdown: one table per target, kernel rows, GB/s with ratios per size."""
    sizes = sorted({r["bytes"] for r in report["results"]})
    memcpy = {s: sorted(m["gbps"] for m in report["memcpy"] if m["bytes"] == s) for s in sizes}
    out = ["## Ops kernels (bench/ops_bench.py)", "",
           "GB/s of input (x memcpy measured just before, x numpy measured just after; each "
           "the best of the rounds); "
           "median of the memcpy baselines: " +
           ", ".join(f"{_size(s)} {v[len(v) // 2]:.1f} GB/s" for s, v in memcpy.items()) +
           ". `*` memory-bound kernel (0.8x memcpy target at >= 1 MiB). np: numpy at its "
           "best on this CPU; np-<target>: numpy restricted to that instruction set "
           "(numpy's own baseline, SSE4.2, for scalar).", ""]
    for target in report["targets"]:
        out += [f"### {target}", "",
                "| kernel | " + " | ".join(_size(s) for s in sizes) + " |",
                "|---|" + "---:|" * len(sizes)]
        for name in dict.fromkeys(r["kernel"] for r in report["results"]):
            cells = []
            for s in sizes:
                r = next(r for r in report["results"]
                         if r["kernel"] == name and r["target"] == target and r["bytes"] == s)
                vs_np = "" if r["vs_numpy"] is None else f", {r['vs_numpy']:.1f}x np"
                if target != "avx3" and r.get("vs_numpy_same_isa") is not None:
                    vs_np += f", {r['vs_numpy_same_isa']:.1f}x np-{target}"
                cells.append(f"{r['gbps']:.1f} ({r['vs_memcpy']:.2f}x{vs_np})")
            star = "*" if name in MEMORY_BOUND else ""
            out.append(f"| {name}{star} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="64K,1M,16M")
    p.add_argument("--binary")
    p.add_argument("--min-sample-ms", type=float, default=20)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3,
                   help="sweeps over all kernels; every number is the best of them")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "ops.json")
    p.add_argument("--numpy-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.numpy_worker:
        return numpy_worker_loop()
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    report = run(sizes, find_binary(args.binary), args.min_sample_ms, args.samples, args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    print(summary(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
