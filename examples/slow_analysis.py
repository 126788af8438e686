"""An analysis that cannot keep up must not slow the simulation down: drop_oldest.

The simulation publishes 50 steps without ever waiting; a slow analysis process takes
what it can and sees the steps it missed (index skips and the dropped counter).

    python examples/slow_analysis.py
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import twinstream as ts

ANALYSIS = """
import time, twinstream as ts
with ts.open("run", "r", timeout=30) as r:
    seen = []
    for step in r:
        seen.append(step.index)
        time.sleep(0.02)                      # much slower than the simulation
    print("analysis saw", len(seen), "steps; dropped", r.stats()["dropped"], "; first", seen[:6])
"""

rendezvous = tempfile.mkdtemp(prefix="twinstream-example-")
env = dict(os.environ, TWINSTREAM_DIR=rendezvous)
analysis = subprocess.Popen([sys.executable, "-c", ANALYSIS], env=env)
with ts.open("run", "w", dir=rendezvous, queue_limit=2, queue_policy="drop_oldest",
             min_readers=1) as w:
    t0 = time.perf_counter()
    for i in range(50):
        with w.step() as s:
            s.put("state", np.full(1000, i, dtype=np.float64))
        time.sleep(0.001)                     # the simulation's own work
    took = time.perf_counter() - t0
    print(f"simulation: 50 steps in {took:.2f} s, never waited; dropped {w.stats()['dropped']}")
sys.exit(analysis.wait(timeout=60))
