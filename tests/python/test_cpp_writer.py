"""A C++ simulation built outside the tree with find_package(twinstream) streams to a
Python reader (examples/cpp_writer)."""

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import twinstream as ts

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    # cmake and ninja come from the venv (pip), next to this interpreter.
    local = pathlib.Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed; run `make test` (it installs the build tools)")
    return found


@pytest.fixture(scope="module")
def cpp_writer(tmp_path_factory) -> pathlib.Path:
    build = tmp_path_factory.mktemp("cpp_writer_build")
    subprocess.run(
        [
            _tool("cmake"),
            "-S",
            str(ROOT / "examples" / "cpp_writer"),
            "-B",
            str(build),
            "-G",
            "Ninja",
            f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}",
            f"-Dtwinstream_DIR={ts.cmake_dir()}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run([_tool("cmake"), "--build", str(build)], check=True, capture_output=True, timeout=300)
    return build / "cpp_writer"


@pytest.mark.timeout(400)
def test_cpp_writer_streams_to_python_reader(cpp_writer, tmp_path):
    steps, atoms = 12, 500
    env = dict(os.environ, TWINSTREAM_DIR=str(tmp_path))
    proc = subprocess.Popen(
        [str(cpp_writer), "md", str(steps), str(atoms)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        with ts.open("md", "r", dir=str(tmp_path), timeout=30) as r:
            for step in r:
                x = step["x"]
                ke = step["ke"]
                assert x.shape == (atoms, 3) and x.dtype == np.float64
                assert ke.dtype == np.float32
                t = step.index * 0.005
                i = np.arange(atoms)
                np.testing.assert_allclose(x[:, 0], np.cos(t + i))
                np.testing.assert_array_equal(x[:, 2], step.index)
                np.testing.assert_array_equal(ke, (step.index + i).astype(np.float32))
                assert step.attrs["step"] == step.index
                assert step.attrs["time"] == pytest.approx(t)
                assert r.attrs == {"units": "lj", "atoms": atoms}
                seen.append(step.index)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert seen == list(range(steps))
    assert f"published {steps} steps" in out
