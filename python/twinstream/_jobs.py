"""Collective opens for MPI jobs (``ts.open(name, mode, comm=...)``).

A writer job: every rank opens its own writer with its rank, the job's size and an
identifier rank 0 draws, so readers can tell this job's contact files from a stale run's.
A reader job: every rank joins, then all start at the latest first step any of them was
offered, so no rank sees a step another misses. Only mpi4py communicators' ``Get_rank``,
``Get_size``, ``bcast``, ``allreduce`` and ``Barrier`` are used.
"""

from __future__ import annotations

import secrets
from typing import Any


def _check(comm: Any) -> None:
    for attr in ("Get_rank", "Get_size", "bcast", "allreduce", "Barrier"):
        if not hasattr(comm, attr):
            raise TypeError(
                f"comm= takes an mpi4py communicator (e.g. MPI.COMM_WORLD); {comm!r} has no {attr}()"
            )


def writer_options(comm: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Options for this rank's writer in a writer job over ``comm``."""
    _check(comm)
    for key in ("rank", "ranks", "job"):
        if key in options:
            raise ValueError(f"option {key}= is set by comm=; pass one or the other")
    job = comm.bcast(secrets.token_hex(8) if comm.Get_rank() == 0 else None, root=0)
    return {**options, "rank": comm.Get_rank(), "ranks": comm.Get_size(), "job": job}


def writer_opened(comm: Any) -> None:
    """Every rank's contact file exists once this returns on any rank."""
    comm.Barrier()


def reader_start(comm: Any, first_step: int) -> int:
    """The step a reader job starts at: the latest first step of its ranks."""
    _check(comm)
    return comm.allreduce(first_step, op=_max())


def _max() -> Any:
    from mpi4py import MPI  # the communicator came from it

    return MPI.MAX
