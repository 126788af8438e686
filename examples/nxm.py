"""N x M: an MPI simulation of P ranks publishes one stream, a trainer job of Q ranks
reads it, each rank its own box. Launch both at once (the programs are told apart by
MPI_APPNUM), or each with its own mpiexec:

    mpiexec -n 2 python examples/nxm.py sim : -n 3 python examples/nxm.py train

The simulation's ranks each own a slab of a 3-D field along x, a varying number of
particles (a joined array) and one refined patch per rank, of its own size (a local
array); each trainer rank reads a slab along y, which spans every simulation rank, the
particles whole and the patches one by one.
"""

import sys

import numpy as np
from mpi4py import MPI

import twinstream as ts

NX, NY, NZ, STEPS = 12, 9, 4, 5

world = MPI.COMM_WORLD
comm = world.Split(world.Get_attr(MPI.APPNUM) or 0, world.Get_rank())  # this program's ranks
rank, ranks = comm.Get_rank(), comm.Get_size()

if sys.argv[1] == "sim":
    lo, hi = NX * rank // ranks, NX * (rank + 1) // ranks
    # Launched together, the other program's ranks are the trainer: wait for all of them.
    trainers = world.Get_size() - ranks or 1
    with ts.open("nxm-demo", "w", comm=comm, min_readers=trainers) as w:
        for step in range(STEPS):
            x = np.arange(lo, hi)[:, None, None] + 0.01 * step + np.zeros((1, NY, NZ))
            with w.step() as s:
                s.put("field", x, shape=(NX, NY, NZ), start=(lo, 0, 0))
                s.put("particles", np.full((rank + step % 2, 3), float(rank)), joined=True)
                s.put("patch", np.full((2 + rank, 2 + rank), rank), local=True)
            comm.Barrier()
else:
    a, b = NY * rank // ranks, NY * (rank + 1) // ranks
    with ts.open("nxm-demo", "r", comm=comm) as r:
        for step in r:
            slab = step.get("field", start=(0, a, 0), count=(NX, b - a, NZ))
            assert np.allclose(slab[:, 0, 0], np.arange(NX) + 0.01 * step.index)
            owners = sorted({blk.owner for blk in step.blocks("field")})
            patches = [step.get_block("patch", blk.index).shape for blk in step.blocks("patch")]
            print(f"trainer rank {rank}: step {step.index} field[:, {a}:{b}] {slab.shape} "
                  f"from sim ranks {owners}, {len(step['particles'])} particles, "
                  f"patches {patches}", flush=True)
