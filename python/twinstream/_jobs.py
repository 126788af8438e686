"""Collective opens for MPI jobs (``ts.open(name, mode, comm=...)``).

A writer job: every rank opens its own writer with its rank, the job's size and an
identifier rank 0 draws, so readers can tell this job's contact files from a stale run's.
A reader job: every rank joins, then all start at the latest first step any of them was
offered, so no rank sees a step another misses. If one rank fails to open, every rank
raises (none is left waiting in a collective). cpp/include/twinstream/mpi.hpp is the same
for C++.
"""

from __future__ import annotations

import secrets
from typing import Any, Callable, TypeVar

from twinstream import _core

T = TypeVar("T")


def _check(comm: Any) -> None:
    for attr in ("Get_rank", "Get_size", "bcast", "allreduce"):
        if not hasattr(comm, attr):
            raise TypeError(
                f"comm= takes an mpi4py communicator (e.g. MPI.COMM_WORLD); {comm!r} has no {attr}()"
            )


def writer_options(comm: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Options for this rank's writer in a writer job over ``comm``."""
    _check(comm)
    for key in ("rank", "ranks", "job"):
        if key in options:
            raise _core.InvalidArgument(f"option {key}= is set by comm=; pass one or the other")
    job = comm.bcast(secrets.token_hex(8) if comm.Get_rank() == 0 else None, root=0)
    return {**options, "rank": comm.Get_rank(), "ranks": comm.Get_size(), "job": job}


def open_all(comm: Any, name: str, open_one: Callable[[], T], close: Callable[[T], None]) -> T:
    """Runs ``open_one`` on every rank; raises on every rank if it failed on any."""
    _check(comm)
    try:
        out = open_one()
    except BaseException:
        comm.allreduce(0, op=_min())
        raise
    if comm.allreduce(1, op=_min()) == 0:
        close(out)
        raise _core.Error(f"stream {name!r}: another rank of this job failed to open it "
                          "(its error says why)")
    return out


def reader_start(comm: Any, first_step: int) -> int:
    """The step a reader job starts at: the latest first step of its ranks."""
    return comm.allreduce(first_step, op=_max())


def _min() -> Any:
    from mpi4py import MPI  # the communicator came from it

    return MPI.MIN


def _max() -> Any:
    from mpi4py import MPI

    return MPI.MAX
