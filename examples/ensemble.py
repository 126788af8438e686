"""Fan-in from an ensemble: three simulation runs publish into one stream, one analysis
reads them all.

    python ensemble.py

Each member is its own process (ts.open("md", "w", member="run-0N")); run-01 crashes
after 4 steps. The reader gets every member's steps, merged fairly and tagged with
step.source, and sees run-01's substream end with an error while the others go on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter

import numpy as np
import twinstream as ts

MEMBERS = ["run-00", "run-01", "run-02"]
STEPS = 8


def member(name: str) -> None:
    with ts.open("md", "w", member=name, min_readers=1) as w:
        for i in range(STEPS):
            with w.step() as s:
                s.put("energy", np.array([-1.5 * i]))
            if name == "run-01" and i == 3:
                os.kill(os.getpid(), signal.SIGKILL)  # this run crashes


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "_member":
        member(sys.argv[2])
        return 0
    with tempfile.TemporaryDirectory() as rendezvous:
        env = dict(os.environ, TWINSTREAM_DIR=rendezvous)
        runs = [
            subprocess.Popen([sys.executable, os.path.abspath(__file__), "_member", m], env=env)
            for m in MEMBERS
        ]
        seen = Counter()
        # members=3: the stream ends once all three have come and gone.
        with ts.open("md", "r", members=3, dir=rendezvous) as r:
            for step in r:
                try:
                    step["energy"]
                except ts.ConnectionError as e:  # its member died while we read it
                    print(f"lost a step of {step.source}: {e}")
                    continue
                seen[step.source] += 1
            for m in r.sources:
                print(f"{m['member']}: {seen[m['member']]} steps, {m['state']}")
        for p in runs:
            p.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
