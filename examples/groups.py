"""Reader groups: one simulation, two readers sharing a group under a delivery policy.

    python groups.py all|round_robin|on_demand|shuffle|latest

starts a writer process (12 steps of a (8, 3) array whose rows are (step, row, 100 step +
row)) and two reader processes in group "team", and prints what each reader got. Try each
policy and compare.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import twinstream as ts

STEPS = 12
POLICIES = ["all", "round_robin", "on_demand", "shuffle", "latest"]


def writer(name: str) -> None:
    with ts.open(name, "w", min_readers=2) as w:
        for i in range(STEPS):
            with w.step() as s:
                rows = np.array([[i, r, 100 * i + r] for r in range(8)], dtype=np.float64)
                s.put("x", rows)
            time.sleep(0.01)


def reader(name: str, policy: str, who: str) -> None:
    if policy == "shuffle":
        # Batches of 6 samples (rows) drawn from windows of 4 steps, in seeded random order.
        opts = dict(group="team", policy="shuffle", window=4, batch_size=6, seed=42)
    elif policy == "latest":
        # Each reader on its own, always the newest step: a slow one skips the rest.
        opts = dict(latest=True)
    else:
        opts = dict(group="team", policy=policy)
    got = []
    with ts.open(name, "r", **opts) as r:
        for step in r:
            if step.is_batch:
                ids = step["sample_id"]  # (step, row) of each sample
                got.append("+".join(f"{s}.{row}" for s, row in ids[:3]) + "...")
            else:
                got.append(str(step.index))
            if policy == "latest" and who == "B":
                time.sleep(0.05)  # a slow analysis
        extra = f" (skipped {r.stats()['dropped']})" if policy == "latest" else ""
    # One write per line: the two readers share the terminal (print writes the newline
    # separately, and lines of two processes could interleave).
    sys.stdout.write(f"reader {who}: {' '.join(got)}{extra}\n")
    sys.stdout.flush()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_writer":
        writer(sys.argv[2])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_reader":
        reader(sys.argv[2], sys.argv[3], sys.argv[4])
        return 0
    policy = sys.argv[1] if len(sys.argv) > 1 else "round_robin"
    if policy not in POLICIES:
        print(f"usage: python groups.py {'|'.join(POLICIES)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as rendezvous:
        env = dict(os.environ, TWINSTREAM_DIR=rendezvous)
        me = os.path.abspath(__file__)
        readers = [
            subprocess.Popen([sys.executable, me, "_reader", "sim", policy, who], env=env)
            for who in "AB"
        ]
        subprocess.run([sys.executable, me, "_writer", "sim"], env=env, check=True, timeout=60)
        codes = [p.wait(timeout=60) for p in readers]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
