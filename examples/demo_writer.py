"""The demo's simulation: moves atoms a little every step and publishes positions
(float32, n x 3), velocities and kinetic energies, for a fixed wall-clock time."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import twinstream as ts

ap = argparse.ArgumentParser()
ap.add_argument("--seconds", type=float, default=6.0)
ap.add_argument("--atoms", type=int, default=1_000_000)
args = ap.parse_args()

rng = np.random.default_rng(0)
x = rng.random((args.atoms, 3), dtype=np.float32)
v = (rng.random((args.atoms, 3), dtype=np.float32) - 0.5) * 0.01
with ts.open("demo", "w", queue_limit=4, min_readers=2, open_timeout=30) as w:
    w.attrs["atoms"] = args.atoms
    w.attrs["units"] = "lj"
    t0 = time.perf_counter()
    step = 0
    while time.perf_counter() - t0 < args.seconds:
        with w.step() as s:
            x += v
            s.put("x", x)  # copied once into step memory; x is ours again at once
            # Derived fields are computed straight into transport memory: no copy.
            ke = s.reserve("ke", (args.atoms,), np.float32)
            np.einsum("ij,ij->i", v, v, out=ke)
            s.put("v", v)
            s.attrs["time"] = step * 0.005
        step += 1
    stats = w.stats()
# One write for the whole line: the demo's processes share one terminal or pipe.
sys.stdout.write(
    f"simulation: {stats['steps']} steps, {stats['bytes'] / 1e9:.2f} GB published, "
    f"waited {stats['blocked_s']:.2f} s on slow readers\n"
)
sys.stdout.flush()
