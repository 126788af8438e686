"""Arrays to read steps into (``step.get(..., out=...)``).

A large numpy array starts 16 bytes into a page (malloc's header), while twinstream's step
memory starts on a page. The kernel's single-copy transfers between processes (the ``mpi``
plane over libfabric's ``shm`` provider, ``fabric``'s ``shm`` provider) copy with ``rep
movsb``, which runs at about half speed when source and destination are not aligned alike:
measured here, 16 MiB steps into a numpy array at 11 GB/s, into a page-aligned one at 19.
"""

from __future__ import annotations

import numpy as np

PAGE = 4096


def empty(shape, dtype=np.float64) -> np.ndarray:
    """An uninitialized array like ``np.empty(shape, dtype)`` whose data starts on a page
    boundary: the destination to pass as ``out=`` when reading large steps."""
    dtype = np.dtype(dtype)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + PAGE, np.uint8)
    start = (-raw.ctypes.data) % PAGE
    # The slice keeps `raw` alive through its base.
    return raw[start:start + nbytes].view(dtype).reshape(shape)
