"""The build has what this environment offers: with the mpich wheel installed (make deps
installs it), the mpi and fabric planes must be built in. Their own tests skip when a
plane is absent, so this is the test that says so loudly instead."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import AVAILABLE, ts


def _reason(plane: str) -> str:
    return next(why for name, ok, why in ts.data_planes() if name == plane)


def test_mpi_plane_is_built_when_the_mpich_wheel_is_installed():
    libmpi = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if libmpi.exists():
        assert AVAILABLE.get("mpi"), f"{libmpi} is installed but the mpi plane is not built: {_reason('mpi')}"


def test_fabric_plane_is_built_when_the_wheels_libfabric_is_installed():
    libfabric = Path(sys.prefix) / "lib" / "mpich" / "libfabric.so.1"
    if libfabric.exists():
        assert AVAILABLE.get("fabric"), (
            f"{libfabric} is installed but the fabric plane is not built: {_reason('fabric')}"
        )


def test_make_deps_installs_the_mpich_wheel():
    # CI runs `make test` on a fresh machine: the wheel must be there, or the two tests above
    # and the mpi/fabric suites would pass by skipping.
    assert (Path(sys.prefix) / "lib" / "libmpi.so.12").exists(), (
        "the mpich wheel is missing from this environment: run `make deps` "
        "(pip install mpich==5.0.2 mpi4py)"
    )
