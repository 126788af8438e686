"""An MPI reader job: every rank joins one reader group of the stream and reads its share.

mpiexec -n N python mpi_reader.py '<json args>'   args: name, options (ts.open keywords).
Rank 0 prints RESULT {json} with each rank's step indices (gathered over MPI)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tsproc  # noqa: E402
from mpi4py import MPI  # noqa: E402


def main() -> int:
    args = json.loads(sys.argv[1])
    ts = tsproc.import_twinstream()
    comm = MPI.COMM_WORLD
    indices, ok, error = [], True, None
    try:
        with ts.open(args["name"], "r", **args.get("options", {})) as r:
            for step in r:
                ok = ok and bool((np.array(step["x"]) == step.index).all())
                indices.append(step.index)
    except Exception as e:  # reported through rank 0
        ok, error = False, tsproc.error_info(e)
    everyone = comm.gather({"rank": comm.Get_rank(), "indices": indices, "ok": ok, "error": error}, root=0)
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps({"ranks": everyone, "size": comm.Get_size()}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
