"""The demo's consumer: reads every step (a trainer would feed it to a model) and
prints live throughput once a second."""

from __future__ import annotations

import argparse
import sys
import time

import twinstream as ts

ap = argparse.ArgumentParser()
ap.add_argument("--plane", default="auto")
ap.add_argument("--label", default="reader")
args = ap.parse_args()


def say(line: str) -> None:
    # One write per whole line: the demo's processes share one terminal or pipe.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


with ts.open("demo", "r", data_plane=args.plane, timeout=30) as r:
    t0 = last = time.perf_counter()
    nbytes = steps = window_bytes = 0
    for step in r:
        x = step["x"]
        v = step["v"]
        _ = float(x[::4096].mean())  # touch the data as a consumer would
        nbytes += x.nbytes + v.nbytes
        window_bytes += x.nbytes + v.nbytes
        steps += 1
        now = time.perf_counter()
        if now - last >= 1.0:
            say(f"{args.label}: step {step.index:5d}  {window_bytes / (now - last) / 1e9:6.2f} GB/s")
            last, window_bytes = now, 0
    elapsed = time.perf_counter() - t0
say(f"{args.label}: {steps} steps, {nbytes / elapsed / 1e9:.2f} GB/s average over {r.stats()['data_plane']}")
