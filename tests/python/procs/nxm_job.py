"""One rank of an N x M run under mpiexec: a writer job of P ranks putting blocks of a 3-D
global array (uneven, 1-3 blocks per rank, one row left out: a gap), a joined array (rank
r puts 2r rows: rank 0 none) and local blocks; or a reader job of Q ranks, opened
collectively, each reading random boxes and checking every value.

    nxm_job.py writer|reader DIR STEPS [late] [die] [crash] [preload] [PLANE]

late: reader ranks open at different times (the collective open aligns them); die: reader
rank 1 SIGKILLs itself while it holds step 1 (the writer job must not hang); crash: writer
rank 1 SIGKILLs itself after step 1 (readers must not hang either); preload: readers read
the next step ahead (preload="on", the mpi plane), and spend 0.2 s on each step before
reading it.

Launched together (MPMD, ``-n P ... writer : -n Q ... reader``) the ranks split
MPI_COMM_WORLD by MPI_APPNUM. Each reader rank writes DIR/reader-<rank>.json.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy as np
from mpi4py import MPI

import twinstream as ts

ROWS_PER_RANK, NY, NZ = 5, 7, 4


def global_shape(ranks: int) -> tuple[int, int, int]:
    return (ROWS_PER_RANK * ranks + ranks, NY, NZ)  # uneven: rank r has 5 + (r > 0) rows


def rows_of(rank: int, ranks: int) -> tuple[int, int]:
    lo = sum(ROWS_PER_RANK + (q > 0) for q in range(rank))
    hi = lo + ROWS_PER_RANK + (rank > 0)
    if rank == ranks - 1:
        hi -= 1  # the last row is never put: readers see zeros there
    return lo, hi


def value(step: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.float64).reshape(shape) + 1000.0 * step


def expected(step: int, ranks: int) -> np.ndarray:
    shape = global_shape(ranks)
    out = value(step, shape)
    out[rows_of(ranks - 1, ranks)[1]:] = 0
    return out


def write(comm, d: str, steps: int, late: bool, crash: bool, plane: str, preload: bool) -> None:
    rank, ranks = comm.Get_rank(), comm.Get_size()
    shape = global_shape(ranks)
    full = None
    opts = dict(dir=d, queue_limit=2, close_timeout=60, open_timeout=60,
                min_readers=1 if late else int(os.environ.get("NXM_READERS", "1")))
    with ts.open("nxm", "w", comm=comm, **opts) as w:
        for i in range(steps):
            full = value(i, shape)
            lo, hi = rows_of(rank, ranks)
            with w.step() as s:
                # 1-3 blocks per rank, cut along axis 1.
                cuts = np.linspace(0, NY, 1 + 1 + rank % 3).astype(int)
                for a, b in zip(cuts[:-1], cuts[1:]):
                    s.put("field", full[lo:hi, a:b], shape=shape, start=(lo, a, 0))
                s.put("atoms", np.full((2 * rank, 3), rank + i, np.float32), joined=True)
                for k in range(rank + 1):
                    s.put("patch", np.full((k + 1, 2), 100 * rank + k + i, np.int32), local=True)
                if rank == 0:
                    s.attrs["step"] = i
            if crash and rank == 1 and i == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            comm.Barrier()  # a simulation's ranks advance together
    print("WRITER", rank, "done", flush=True)


def read(comm, d: str, steps: int, late: bool, die: bool, plane: str, preload: bool) -> None:
    rank = comm.Get_rank()
    if late:
        time.sleep(0.4 * rank)  # ranks join at different steps; the open aligns them
    r = ts.open("nxm", "r", comm=comm, dir=d, data_plane=plane, timeout=60,
                preload="on" if preload else "off")
    rng = np.random.default_rng(rank)
    seen, checked = [], 0
    for step in r:
        i = step.index
        if preload:
            # Busy before reading: meanwhile the writer job makes and announces the next
            # step (its queue has room once this one began), which is then read ahead.
            time.sleep(0.2)
        assert step.attrs["step"] == i
        ranks = len({b.owner for b in step.blocks("field")})
        want = expected(i, ranks)
        shape = step.variables["field"].shape
        assert shape == want.shape, (shape, want.shape)
        for _ in range(3):
            start = [int(rng.integers(0, n)) for n in shape]
            count = [int(rng.integers(1, n - s + 1)) for s, n in zip(start, shape)]
            box = step.get("field", start, count)
            sl = tuple(slice(s, s + c) for s, c in zip(start, count))
            assert np.array_equal(box, want[sl]), (i, start, count)
            checked += 1
        atoms = step["atoms"]
        assert atoms.shape == (sum(2 * q for q in range(ranks)), 3), atoms.shape
        assert np.array_equal(atoms[:, 0], np.repeat(np.arange(ranks) + i, 2 * np.arange(ranks)))
        blocks = step.blocks("patch")
        assert len(blocks) == ranks * (ranks + 1) // 2
        for b in blocks:
            k = sum(1 for c in blocks[: b.index] if c.owner == b.owner)
            assert np.all(step.get_block("patch", b.index) == 100 * b.owner + k + i)
        seen.append(i)
        if die and rank == 1 and i == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # holding step 1
    with open(os.path.join(d, f"reader-{rank}.json"), "w") as f:
        json.dump({"seen": seen, "checked": checked, "plane": r.stats()["data_plane"],
                   "preload_bytes": r.stats()["preload_bytes"]}, f)
    print("READER", rank, len(seen), flush=True)


def main() -> None:
    role, d, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    flags = sys.argv[4:]
    late = "late" in flags
    die = ("crash" if role == "writer" else "die") in flags
    plane = next((a for a in flags if a not in ("late", "die", "crash", "preload")), "auto")
    world = MPI.COMM_WORLD
    appnum = world.Get_attr(MPI.APPNUM)
    # MPMD launch: each program's ranks form their own job.
    comm = world.Split(appnum if appnum is not None else 0, world.Get_rank())
    (write if role == "writer" else read)(comm, d, steps, late, die, plane, "preload" in flags)


if __name__ == "__main__":
    main()
