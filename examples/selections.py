"""Global arrays, blocks and box selections.

A writer puts a 2-D field as two blocks (as two ranks of a simulation would); a reader in
the same process (inproc data plane) reads a tile that straddles both blocks, and copies
another into its own buffer.

    python examples/selections.py
"""

import tempfile
import threading

import numpy as np

import twinstream as ts

field = np.arange(64 * 128, dtype=np.float32).reshape(64, 128)
rendezvous = tempfile.mkdtemp(prefix="twinstream-example-")


def simulation():
    with ts.open("field", "w", dir=rendezvous, min_readers=1) as w:
        for step in range(3):
            with w.step() as s:
                s.put("T", field[:, :64] + step, shape=(64, 128), start=(0, 0))
                s.put("T", field[:, 64:] + step, shape=(64, 128), start=(0, 64))


threading.Thread(target=simulation).start()
with ts.open("field", "r", dir=rendezvous, timeout=30) as r:
    mine = np.empty((8, 8), np.float32)
    for step in r:
        info = step.variables["T"]
        tile = step.get("T", start=(16, 48), count=(32, 32))  # spans both blocks
        assert np.array_equal(tile, field[16:48, 48:80] + step.index)
        step.get("T", start=(0, 0), count=(8, 8), out=mine)
        assert np.array_equal(mine, field[:8, :8] + step.index)
        print(f"step {step.index}: {info.dtype}{info.shape} in {len(info.blocks)} blocks, "
              f"tile {tile.shape} mean {tile.mean():.1f}")
