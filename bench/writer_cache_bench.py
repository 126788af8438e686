"""Writer-side cache vs each reader computing: K = 1, 2, 4 reader groups (separate
processes, shm) read every step of one variable through the same expensive pipeline.

  writer_cache  each reader asks the writer to run it (writer_ops): one compute per step,
                every group after the first gets the cached result
  reader        each reader runs it itself after transfer (step.get(name, ops=...))

Reported per K and mode: each reader's read time per step (begin_step until it holds the
pre-processed array), the stream's wall time per step (writer's first timed step to the
last reader's end), the writer's cache counters, and the ratios reader / writer_cache.
Both modes run in the same invocation, on the same machine, one after the other.

    python bench/writer_cache_bench.py [--quick] [--out bench/results/writer_cache.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
WARMUP = 3


def _ops(ts):
    # Arithmetic-bound: log1p's polynomial, running per-channel standardize, statistics.
    return [ts.ops.cast("float32"), ts.ops.log1p(), ts.ops.standardize(axis=-1),
            ts.ops.stats(), ts.ops.clip(-4.0, 4.0)]


def role_writer(a: dict) -> dict:
    import twinstream as ts

    rng = np.random.default_rng(1)
    data = [rng.random(tuple(a["shape"])) * (k + 1) for k in range(2)]
    with ts.open(a["name"], "w", min_readers=a["readers"], queue_limit=2, open_timeout=120,
                 close_timeout=120) as w:
        for i in range(a["steps"] + WARMUP):
            with w.step() as s:
                s.put("x", data[i % 2])
        w.close()
        return w.stats()


def role_reader(a: dict) -> dict:
    import twinstream as ts

    ops = _ops(ts)
    extra = {"writer_ops": {"x": ops}} if a["mode"] == "writer_cache" else {}
    times = []
    t_first = t_end = None
    with ts.open(a["name"], "r", group=a["group"], timeout=120, data_plane="shm", **extra) as r:
        i = 0
        while True:
            t0 = time.perf_counter()
            if r.begin_step() is not ts.StepStatus.OK:
                break
            step = r.current_step
            x = step["x"] if a["mode"] == "writer_cache" else step.get("x", ops=ops)
            float(np.asarray(x).ravel()[-1])  # the bytes are there
            t1 = time.perf_counter()
            r.end_step()
            if i >= WARMUP:
                times.append(t1 - t0)
                t_first = t_first or t0
                t_end = time.perf_counter()
            i += 1
    return {"read_s": times, "t_first": t_first, "t_end": t_end}


def _spawn(role: str, a: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--role", role, json.dumps(a)],
                            stdout=subprocess.PIPE, text=True)


def run_one(mode: str, k: int, steps: int, shape: list[int], tmp: str) -> dict:
    name = f"wcb_{uuid.uuid4().hex[:8]}"
    env_dir = {"name": name, "steps": steps, "shape": shape, "readers": k}
    os.environ["TWINSTREAM_DIR"] = tmp
    w = _spawn("writer", env_dir)
    readers = [_spawn("reader", {"name": name, "mode": mode, "group": f"g{j}"}) for j in range(k)]
    outs = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in readers]
    wstats = json.loads(w.communicate(timeout=600)[0].strip().splitlines()[-1])
    per_step = [statistics.median(o["read_s"]) for o in outs]
    wall = (max(o["t_end"] for o in outs) - min(o["t_first"] for o in outs)) / steps
    return {
        "mode": mode, "readers": k,
        "read_s_per_step_median": statistics.median(per_step),
        "read_s_per_step_mean": statistics.mean(statistics.mean(o["read_s"]) for o in outs),
        "wall_s_per_step": wall,
        "cache_hits": wstats["cache_hits"], "cache_misses": wstats["cache_misses"],
        "writer_ops_seconds": wstats["ops_seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role")
    ap.add_argument("args", nargs="?")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "writer_cache.json"))
    a = ap.parse_args(argv)
    if a.role:
        fn = role_writer if a.role == "writer" else role_reader
        print(json.dumps(fn(json.loads(a.args))), flush=True)
        return 0
    steps = 10 if a.quick else 30
    shape = [256, 256, 4] if a.quick else [512, 512, 4]  # float64: 2 MiB / 8 MiB a step
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in (1, 2, 4):
            for mode in ("writer_cache", "reader"):
                r = run_one(mode, k, steps, shape, tmp)
                runs.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
    ratios = {}
    for k in (1, 2, 4):
        w = next(r for r in runs if r["readers"] == k and r["mode"] == "writer_cache")
        rd = next(r for r in runs if r["readers"] == k and r["mode"] == "reader")
        ratios[str(k)] = {
            "read_time_reader_over_writer_cache": rd["read_s_per_step_median"]
            / w["read_s_per_step_median"],
            "wall_reader_over_writer_cache": rd["wall_s_per_step"] / w["wall_s_per_step"],
        }
    result = {
        "experiment": "writer-side cache vs per-reader compute",
        "pipeline": "cast(float32)|log1p|standardize(running, axis=-1)|stats|clip(-4,4)",
        "input_bytes_per_step": int(np.prod(shape)) * 8, "steps": steps,
        "cpus": os.cpu_count(), "plane": "shm", "runs": runs, "ratios": ratios,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(ratios, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
