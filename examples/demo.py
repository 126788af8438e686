"""twinstream demo: a simulation process streams particle states to two consumers at
once, one over shared memory and one over TCP, each printing its live throughput.

    python examples/demo.py [--seconds 6] [--atoms 1000000]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--atoms", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="twinstream-demo-") as rendezvous:
        env = dict(os.environ, TWINSTREAM_DIR=rendezvous)
        py = sys.executable
        writer = subprocess.Popen(
            [py, str(HERE / "demo_writer.py"), "--seconds", str(args.seconds), "--atoms", str(args.atoms)],
            env=env,
        )
        readers = [
            subprocess.Popen([py, str(HERE / "demo_reader.py"), "--plane", plane, "--label", label], env=env)
            for plane, label in (("shm", "trainer  (shm)"), ("tcp", "analysis (tcp)"))
        ]
        codes = [p.wait(timeout=args.seconds + 60) for p in [writer, *readers]]
    if any(codes):
        print(f"demo failed: exit codes {codes}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
