#!/usr/bin/env python3
"""mpi data plane against raw MPI moving the same bytes in the same run: mpi4py Send/Recv
and MPI_Get (passive target, the operation the plane is built on), each between two
processes of one MPMD launch of the MPICH wheel's mpiexec.

    python bench/mpi_bench.py [--sizes 1M,16M,64M] [--seconds 1] [--json out.json]

twinstream: writer reserve()s each step (writes 8 bytes), the reader pulls it with
get(out=) into one preallocated array from ts.empty (page-aligned like step memory, as the
baselines' two numpy arrays are aligned like each other) -- MPI_Rget straight into it;
per step it also pays the announcement and the acknowledgement on the control connection.
twinstream_preload: the same reader with preload="on", the next step read ahead and served
with one memcpy. The *_use kinds (the plane, with preload, and MPI_Get) also sum each step
after reading it.
Send/Recv: rank 0 sends the buffer, rank 1 receives into one array. MPI_Get: rank 1 gets
rank 0's window into one array and flushes, per step. GB/s = 1e9 bytes/s at the receiver,
first step excluded. Output: JSON with records and ratios (plane / baseline) per size.

Everything runs twice, under two MPICH settings, each baseline under the same settings as
the plane it is compared with:
  mpich-defaults  MPICH as installed: on one node it serves RMA on user memory (dynamic or
                  created windows) through active messages, at a fraction of Send/Recv.
  one-node-rma    MPIR_CVAR_NOLOCAL=1 FI_PROVIDER=shm: intranode traffic goes through
                  libfabric's shm provider, whose RMA is a single copy (what a real RDMA
                  NIC gives across nodes). Send/Recv also takes that path here.
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
from pathlib import Path

BIN = Path(sys.executable).parent

RAW = r"""
import sys, time, json, numpy as np
from mpi4py import MPI
size, steps, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
comm = MPI.COMM_WORLD
rank = comm.Get_rank()
buf = np.zeros(size, np.uint8) if rank else np.ones(size, np.uint8)
if kind == "sendrecv":
    comm.Barrier()
    for i in range(steps):
        if rank == 0:
            comm.Send(buf, dest=1)
        else:
            comm.Recv(buf, source=0)
            if i == 0:
                t0 = time.perf_counter()
else:
    win = MPI.Win.Create(buf if rank == 0 else None, comm=comm)
    comm.Barrier()
    if rank == 1:
        win.Lock_all()
        for i in range(steps):
            win.Get(buf, 0)
            win.Flush(0)
            if kind == "get_use":
                buf.view(np.float64).sum()
            if i == 0:
                t0 = time.perf_counter()
        win.Unlock_all()
    comm.Barrier()
    win.Free()
if rank == 1:
    t = time.perf_counter() - t0
    print(json.dumps({"gbps": (steps - 1) * size / t / 1e9}), flush=True)
"""

WRITER = r"""
import sys, numpy as np, twinstream as ts
d, size, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with ts.open("mpibench", "w", dir=d, min_readers=1, open_timeout=60, queue_limit=4, shm=False) as w:
    for i in range(steps):
        with w.step() as s:
            s.reserve("x", (size,), np.uint8)[:8] = 1
"""

READER = r"""
import sys, time, json, numpy as np, twinstream as ts
d, size, preload, use = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "use"
out = ts.empty(size, np.uint8)
n, t0 = 0, None
with ts.open("mpibench", "r", dir=d, data_plane="mpi", timeout=60, prefetch=4,
             preload=preload) as r:
    for step in r:
        step.get("x", start=(0,), count=(size,), out=out)
        if use:
            out.view(np.float64).sum()
        if t0 is None:
            t0 = time.perf_counter()
        else:
            n += 1
    t = time.perf_counter() - t0
    served = r.stats()["preload_bytes"] / max(1, n * size)
print(json.dumps({"gbps": n * size / t / 1e9, "plane": r.stats()["data_plane"],
                  "preload": preload, "served_from_preload": round(served, 3)}), flush=True)
"""


# What runs at each size and setting. The *_use kinds sum each step's bytes after reading
# them (as float64), as a reader that uses its data does: then the next read lands in
# memory this reader has just touched, and reading ahead can overlap the two.
KINDS = ("twinstream", "twinstream_preload", "sendrecv", "get",
         "twinstream_use", "twinstream_preload_use", "get_use")


def mpi_available() -> bool:
    try:
        import mpi4py  # noqa: F401
        import twinstream
    except ImportError:
        return False
    return any(name == "mpi" and ok for name, ok, _ in twinstream.data_planes())


SETTINGS = {
    "mpich-defaults": {},
    "one-node-rma": {"MPIR_CVAR_NOLOCAL": "1", "FI_PROVIDER": "shm"},
}


def env(settings: str) -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e["MPIR_CVAR_CH4_NETMOD"] = "ofi"
    for k in ("MPIR_CVAR_NOLOCAL", "FI_PROVIDER"):
        e.pop(k, None)
    e.update(SETTINGS[settings])
    return e


def last_json(text: str) -> dict | None:
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def run(cmd: list[str], timeout: float, settings: str) -> dict:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(settings))
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout}s"}
    rec = last_json(p.stdout)
    if p.returncode != 0 or rec is None:
        return {"error": f"rc {p.returncode}: {(p.stderr or p.stdout)[-400:]}"}
    return rec


def mpiexec2(a: list[str], b: list[str]) -> list[str]:
    return [str(BIN / "mpiexec"), "-n", "1", *a, ":", "-n", "1", *b]


def measure(kind: str, size: int, steps: int, timeout: float, settings: str) -> dict:
    py = sys.executable
    head = {"settings": settings, "step_bytes": size, "steps": steps}
    if kind in ("sendrecv", "get", "get_use"):
        cmd = [str(BIN / "mpiexec"), "-n", "2", py, "-c", RAW, str(size), str(steps), kind]
        return {"baseline": f"mpi4py_{kind}", **head, **run(cmd, timeout, settings)}
    preload = "on" if "preload" in kind else "off"
    use = "use" if kind.endswith("_use") else "-"
    with tempfile.TemporaryDirectory(prefix="ts-mpi-bench-") as d:
        cmd = mpiexec2([py, "-c", WRITER, d, str(size), str(steps)],
                       [py, "-c", READER, d, str(size), preload, use])
        rec = run(cmd, timeout, settings)
    return {"baseline": kind, "plane": "mpi", **head, **rec}


def median(kind: str, size: int, steps: int, timeout: float, repeats: int, settings: str) -> dict:
    # Interleaved with the other kinds by the caller would be better still; repeats of one
    # kind back to back at least share the machine's state.
    runs = [measure(kind, size, steps, timeout, settings) for _ in range(repeats)]
    ok = sorted((r for r in runs if r.get("gbps")), key=lambda r: r["gbps"])
    best = ok[len(ok) // 2] if ok else runs[-1]
    return {**best, "repeats": [r.get("gbps") for r in runs]}


def parse_size(s: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1M,16M,64M")
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    records, ratios = [], {}

    def ratio(a, b):
        return round(a["gbps"] / b["gbps"], 3) if a.get("gbps") and b.get("gbps") else None

    for s in args.sizes.split(","):
        size = parse_size(s)
        steps = max(20, min(3000, int(args.seconds * 2e9 / size)))
        timeout = 90 + 20 * args.seconds
        got = {}
        for settings in SETTINGS:
            for kind in KINDS:
                rec = median(kind, size, steps, timeout, args.repeats, settings)
                got[settings, kind] = rec
                records.append(rec)
                print(f"{s:>5} {settings:>15} {rec['baseline']:>16}: "
                      f"{rec.get('gbps') or float('nan'):.2f} GB/s {rec.get('error', '')}",
                      file=sys.stderr)
        ratios[s] = {
            settings: {"mpi_plane_vs_send_recv": ratio(got[settings, "twinstream"], got[settings, "sendrecv"]),
                       "mpi_plane_vs_get": ratio(got[settings, "twinstream"], got[settings, "get"]),
                       "preload_vs_get": ratio(got[settings, "twinstream_preload"], got[settings, "get"]),
                       "preload_vs_plane": ratio(got[settings, "twinstream_preload"], got[settings, "twinstream"]),
                       "using_data_plane_vs_get": ratio(got[settings, "twinstream_use"], got[settings, "get_use"]),
                       "using_data_preload_vs_get": ratio(got[settings, "twinstream_preload_use"],
                                                          got[settings, "get_use"])}
            for settings in SETTINGS
        }
        # The plane at its best against MPI's fastest Send/Recv on this node, whatever it took.
        best_sr = max((got[k, "sendrecv"] for k in SETTINGS), key=lambda r: r.get("gbps") or 0)
        ratios[s]["one_node_rma_plane_vs_best_send_recv"] = ratio(got["one-node-rma", "twinstream"], best_sr)
    out = {"benchmark": "mpi_bench", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "cpus": os.cpu_count(), "records": records, "ratios": ratios}
    text = json.dumps(out, indent=1) + "\n"
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    else:
        sys.stdout.write(text)
    print(json.dumps(ratios, indent=1), file=sys.stderr)
    return 0 if all(r.get("gbps") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
