"""twinstream: the streaming data layer for coupled HPC + AI workflows.

A simulation publishes steps of arrays; trainers, surrogates and analyses consume them
while it runs, through shared memory on the same host or TCP across hosts::

    import numpy as np, twinstream as ts
    with ts.open("sim", "w") as w:
        with w.step() as s:
            s.put("x", np.zeros((1000, 3)))
    with ts.open("sim", "r") as r:
        for step in r:
            x = step["x"]
"""

from twinstream._core import (
    ConnectionError,
    Error,
    InvalidArgument,
    ProtocolError,
    TimeoutError,
    Unavailable,
)
from twinstream import ops
from twinstream.buffers import empty
from twinstream.stream import (
    Block,
    Reader,
    Step,
    StepStatus,
    StepWriter,
    VariableInfo,
    Writer,
    data_planes,
    open,
)

__version__ = "0.1.0"

__all__ = [
    "Block",
    "ConnectionError",
    "Error",
    "InvalidArgument",
    "ProtocolError",
    "Reader",
    "Step",
    "StepStatus",
    "StepWriter",
    "TimeoutError",
    "Unavailable",
    "VariableInfo",
    "Writer",
    "__version__",
    "cmake_dir",
    "data_planes",
    "empty",
    "open",
    "ops",
]


def cmake_dir() -> str:
    """Directory holding twinstreamConfig.cmake: pass it as twinstream_DIR or add its
    prefix to CMAKE_PREFIX_PATH to find_package(twinstream) from a C++ simulation."""
    import pathlib

    return str(pathlib.Path(__file__).parent / "lib" / "cmake" / "twinstream")
