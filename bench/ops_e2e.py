"""End-to-end pre-processing experiments, with real writer and reader processes over shm.

(a) placement: a pipeline on the writer (once per step, the output travels) or on each
    reader (after transfer), for a cheap and an expensive pipeline and 1, 2, 4 readers
    that each read every step. Reported: the stream's wall time and aggregate throughput
    (steps delivered to all readers, input bytes), the operator throughput on the side
    that ran it, and the ratio writer-placement time / reader-placement time (above 1:
    the readers are the better place). A run without operators is the baseline.
(b) cache vs recompute: a trainer reads a window of steps, then goes over it for more
    epochs, each epoch reading a fraction f of the window's samples (chosen at random).
    With cache="on" it re-reads the pre-processed results from the reader's cache; without,
    it keeps the raw arrays and runs the pipeline again on every read. Reported: the read
    time for E = 1, 2, 4, 8 reads per sample, and its ratio recompute / cache.

Writes bench/results/ops_e2e.json and bench/results/ops_e2e.png:
    python bench/ops_e2e.py [--quick] [--out DIR]
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
WARMUP = 6  # untimed steps before experiment (a)'s clock starts

# Pipelines by name, as functions so that this module imports without twinstream.
# Standardize uses fixed per-channel values (a model trained on normalised data): with
# `running` statistics the writer folds every step in under either placement, which would
# measure that update rather than the placement (the `running` variant is timed alone).
def _pipelines(ts, running: bool = False) -> dict:
    standardize = (ts.ops.standardize(axis=-1) if running else
                   ts.ops.standardize(mean=[0.5] * 4, std=[0.3] * 4, axis=-1))
    return {
        # memory-bound: one pass, half the bytes out
        "cheap": [ts.ops.cast("float32")],
        # arithmetic-bound: log1p's polynomial, per-channel standardize, statistics
        "expensive": [ts.ops.cast("float32"), ts.ops.log1p(), standardize, ts.ops.stats(),
                      ts.ops.clip(-4.0, 4.0)],
    }


def _import_ts():
    import twinstream as ts

    return ts


# --------------------------------------------------------------------------- roles


def role_writer(a: dict) -> dict:
    ts = _import_ts()
    rng = np.random.default_rng(1)
    shape = tuple(a["shape"])
    data = [rng.random(shape) * (k + 1) for k in range(2)]
    with ts.open(a["name"], "w", min_readers=a["readers"], queue_limit=2, queue_policy="block",
                 open_timeout=120, close_timeout=120) as w:
        if a["pipeline"]:
            w.define("x", _pipelines(ts)[a["pipeline"]], a["placement"])
        # The first steps fault in each queue slot's step memory (and a writer-placed
        # pipeline's output grows the slot once): timed from the step after them.
        t0 = None
        for i in range(a["steps"] + a["warmup"]):
            s = w.begin_step()
            if i == a["warmup"]:
                t0 = time.perf_counter()
            s.put("x", data[i % 2])
            w.end_step()
        w.close()
        wall = time.perf_counter() - t0
        stats = w.stats()
    return {"wall_s": wall, "ops_seconds": stats["ops_seconds"], "ops_steps": stats["ops_steps"]}


def role_reader(a: dict) -> dict:
    ts = _import_ts()
    with ts.open(a["name"], "r", data_plane="shm", timeout=120, open_timeout=120) as r:
        steps = 0
        for step in r:
            x = step["x"]
            float(x.reshape(-1)[0])  # the trainer touches what it got
            steps += 1
        s = r.stats()
    return {"steps": steps, "ops_seconds": s["ops_seconds"]}


def role_trainer(a: dict) -> dict:
    """Experiment (b): epochs over each window, from the cache or recomputing."""
    ts = _import_ts()
    ops = _pipelines(ts, running=False)[a["pipeline"]]
    window, epochs, frac = a["window"], a["epochs"], a["fraction"]
    cache = a["mode"] == "cache"
    rng = np.random.default_rng(7)
    per_epoch = [0.0] * epochs  # read time of epoch e, summed over windows
    opts = {"cache": "on", "cache_bytes": 1 << 30} if cache else {}
    with ts.open(a["name"], "r", data_plane="shm", timeout=120, open_timeout=120, **opts) as r:
        held: list = []  # recompute: the raw arrays of the window; cache: step indices
        for step in r:
            t = time.perf_counter()
            y = step.get("x", ops=ops)  # epoch 1: transfer and pre-process, every mode
            float(y.reshape(-1)[0])
            per_epoch[0] += time.perf_counter() - t
            held.append(step.index if cache else np.array(step["x"]))
            if len(held) < window:
                continue
            for e in range(1, epochs):
                pick = rng.choice(window, max(1, round(frac * window)), replace=False)
                t = time.perf_counter()
                for k in pick:
                    if cache:
                        y = r.cached(held[k], "x", ops)
                        if y is None:
                            raise RuntimeError("cache too small for the window")
                    else:
                        y = ts.ops.apply(held[k], ops)
                    float(y.reshape(-1)[0])
                per_epoch[e] += time.perf_counter() - t
            held = []
    return {"per_epoch_s": per_epoch}


ROLES = {"writer": role_writer, "reader": role_reader, "trainer": role_trainer}


# --------------------------------------------------------------------------- driver


def _spawn(role: str, args: dict, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--role", role, json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _collect(p: subprocess.Popen, what: str, timeout: float = 300) -> dict:
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{what} failed (rc {p.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run_stream(env: dict, n_readers: int, pipeline: str | None, placement: str, shape, steps,
               trainer: dict | None = None) -> tuple[dict, list[dict]]:
    name = "opse2e" + uuid.uuid4().hex[:8]
    wargs = {"name": name, "readers": n_readers, "pipeline": pipeline, "placement": placement,
             "shape": list(shape), "steps": steps, "warmup": 0 if trainer else WARMUP}
    readers = [_spawn("trainer" if trainer else "reader", {"name": name, **(trainer or {})}, env)
               for _ in range(n_readers)]
    writer = _spawn("writer", wargs, env)
    w = _collect(writer, "writer")
    return w, [_collect(p, "reader") for p in readers]


def experiment_a(env, shape, steps, repeats, readers_list) -> list[dict]:
    in_bytes = int(np.prod(shape)) * 8
    rows = []
    configs = [(None, "writer")] + [(p, pl) for p in ("cheap", "expensive")
                                    for pl in ("writer", "reader")]
    for n in readers_list:
        for pipeline, placement in configs:
            walls, w_ops, r_ops = [], [], []
            for _ in range(repeats):
                w, rs = run_stream(env, n, pipeline, placement, shape, steps)
                assert all(r["steps"] == steps + WARMUP for r in rs), rs
                walls.append(w["wall_s"])
                # operator time per timed step, scaled from all steps
                scale = steps / (steps + WARMUP)
                w_ops.append(w["ops_seconds"] * scale)
                r_ops.append(sum(r["ops_seconds"] for r in rs) * scale)
            i = walls.index(statistics.median(walls))
            wall = walls[i]
            row = {
                "readers": n, "pipeline": pipeline or "none", "placement": placement,
                "steps": steps, "step_bytes": in_bytes, "wall_s": wall,
                "wall_s_all": walls,
                "delivered_gbs": n * steps * in_bytes / wall / 1e9,
                "writer_ops_s": w_ops[i], "readers_ops_s": r_ops[i],
            }
            side_ops = w_ops[i] if placement == "writer" else r_ops[i] / n
            if pipeline:
                row["op_gbs"] = steps * in_bytes / side_ops / 1e9 if side_ops > 0 else None
            rows.append(row)
            print(f"  (a) {n} reader(s) {row['pipeline']:9s} on {placement:6s}: "
                  f"{wall * 1e3:8.1f} ms, {row['delivered_gbs']:6.2f} GB/s delivered"
                  + (f", operators {row['op_gbs']:.2f} GB/s" if row.get("op_gbs") else ""),
                  flush=True)
    return rows


def crossover(rows: list[dict]) -> dict:
    out = {}
    for pipeline in ("cheap", "expensive"):
        ratios = {}
        for r in rows:
            if r["pipeline"] != pipeline or r["placement"] != "writer":
                continue
            other = next(x for x in rows if x["pipeline"] == pipeline and
                         x["placement"] == "reader" and x["readers"] == r["readers"])
            ratios[r["readers"]] = r["wall_s"] / other["wall_s"]
        better = {n: ("reader" if q > 1 else "writer") for n, q in ratios.items()}
        out[pipeline] = {"writer_over_reader_time": ratios, "better": better}
    return out


def experiment_b(env, shape, window, epochs, repeats) -> list[dict]:
    rows = []
    steps = 2 * window
    for pipeline in ("expensive", "cheap"):
        for frac in (1.0, 0.25):
            per_mode = {}
            for mode in ("cache", "recompute"):
                runs = []
                for _ in range(repeats):
                    _, rs = run_stream(env, 1, None, "writer", shape, steps,
                                       trainer={"pipeline": pipeline, "mode": mode,
                                                "window": window, "epochs": epochs,
                                                "fraction": frac})
                    runs.append(rs[0]["per_epoch_s"])
                # median per epoch across repeats
                per_mode[mode] = [statistics.median(r[e] for r in runs) for e in range(epochs)]
            for e_reads in (1, 2, 4, 8):
                if e_reads > epochs:
                    continue
                c = sum(per_mode["cache"][:e_reads])
                rc = sum(per_mode["recompute"][:e_reads])
                rows.append({"pipeline": pipeline, "fraction": frac, "E": e_reads,
                             "cache_s": c, "recompute_s": rc, "ratio": rc / c})
                print(f"  (b) {pipeline:9s} f={frac:4.2f} E={e_reads}: cache {c * 1e3:8.1f} ms, "
                      f"recompute {rc * 1e3:8.1f} ms, ratio {rc / c:5.2f}x", flush=True)
    return rows


def running_cost(ts) -> dict:
    """What running statistics add on the writer: the expensive pipeline with fixed and with
    running standardize, on one step's array, in this process (best of 5)."""
    x = np.random.default_rng(1).random((1024, 512, 4))
    out = {}
    for label, running in (("fixed", False), ("running", True)):
        ops = _pipelines(ts, running)["expensive"]
        state = ts.ops.RunningState()
        best = min(_timed(lambda: ts.ops.apply(x, ops, state=state)) for _ in range(5))
        out[label + "_gbs"] = x.nbytes / best / 1e9
    return out


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    a = report["placement"]
    for pipeline, color in (("cheap", "tab:blue"), ("expensive", "tab:red")):
        for placement, style in (("writer", "-o"), ("reader", "--s")):
            pts = [(r["readers"], r["delivered_gbs"]) for r in a
                   if r["pipeline"] == pipeline and r["placement"] == placement]
            ax1.plot(*zip(*pts), style, color=color, label=f"{pipeline}, on {placement}")
    base = [(r["readers"], r["delivered_gbs"]) for r in a if r["pipeline"] == "none"]
    ax1.plot(*zip(*base), ":", color="gray", label="no operators")
    ax1.set_xlabel("readers (each reads every step)")
    ax1.set_ylabel("delivered GB/s (input bytes, all readers)")
    ax1.set_xticks(sorted({r["readers"] for r in a}))
    ax1.set_title("(a) writer vs reader placement (shm)")
    ax1.legend(fontsize=8)
    for (pipeline, frac), style in ((("expensive", 1.0), "-o"), (("expensive", 0.25), "--o"),
                                    (("cheap", 1.0), "-s"), (("cheap", 0.25), "--s")):
        pts = [(r["E"], r["ratio"]) for r in report["cache"]
               if r["pipeline"] == pipeline and r["fraction"] == frac]
        ax2.plot(*zip(*pts), style, label=f"{pipeline}, read fraction {frac}")
    ax2.axhline(1.0, color="gray", lw=0.8)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("E: epochs over each window")
    ax2.set_ylabel("read time, recompute / cache")
    ax2.set_title("(b) cache vs recompute")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--role", choices=sorted(ROLES))
    p.add_argument("args", nargs="?")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--quick", action="store_true", help="fewer steps and one repeat")
    a = p.parse_args(argv)
    if a.role:
        print(json.dumps(ROLES[a.role](json.loads(a.args))), flush=True)
        return 0

    ts = _import_ts()
    with tempfile.TemporaryDirectory(prefix="twinstream-opse2e-") as d:
        env = dict(os.environ, TWINSTREAM_DIR=d)
        env.pop("TWINSTREAM_LOG", None)
        shape = (1024, 512, 4)  # 16 MiB of float64 per step, 4 channels
        steps, repeats = (8, 1) if a.quick else (24, 3)
        print("ops_e2e (a): placement", flush=True)
        rows_a = experiment_a(env, shape, steps, repeats, [1, 2, 4])
        print("ops_e2e (b): cache vs recompute", flush=True)
        rows_b = experiment_b(env, (512, 512, 4), window=8, epochs=8,
                              repeats=1 if a.quick else 3)
    report = {
        "machine": {"cpus": os.cpu_count(), "simd": ts.ops.simd_targets()["active"],
                    "data_plane": "shm"},
        "pipelines": {k: ts.ops.Pipeline(v).key for k, v in _pipelines(ts).items()},
        "running_standardize": running_cost(ts),
        "placement": rows_a,
        "crossover": crossover(rows_a),
        "cache": rows_b,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ops_e2e.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, a.out / "ops_e2e.png")
    print(json.dumps(report["crossover"], indent=1))
    print(f"written {a.out / 'ops_e2e.json'} and {a.out / 'ops_e2e.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
