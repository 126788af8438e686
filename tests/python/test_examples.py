"""The examples the README points to run as documented."""

import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def run(*args: str) -> str:
    """stdout of the example; a failure shows both streams."""
    proc = subprocess.run(
        [sys.executable, *args], cwd=EXAMPLES, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout + "\n--- stderr:\n" + proc.stderr


@pytest.mark.timeout(150)
def test_demo_streams_to_both_readers():
    out = run("demo.py", "--seconds", "2", "--atoms", "100000")
    finals = re.findall(r"^(trainer|analysis) +\((shm|tcp)\): (\d+) steps, [\d.]+ GB/s average over (\w+)$", out, re.M)
    assert sorted((who, plane, used) for who, plane, _, used in finals) == [
        ("analysis", "tcp", "tcp"),
        ("trainer", "shm", "shm"),
    ], out
    simulation = re.search(r"simulation: (\d+) steps", out)
    assert simulation, out
    published = int(simulation.group(1))
    # Under queue_policy=block every reader gets every step.
    assert all(int(n) == published for _, _, n, _ in finals), out


@pytest.mark.timeout(60)
def test_selections_example():
    out = run("selections.py")
    assert out.count("in 2 blocks, tile (32, 32)") == 3, out


@pytest.mark.timeout(90)
def test_slow_analysis_example_never_blocks_the_simulation():
    out = run("slow_analysis.py")
    sim = re.search(r"simulation: 50 steps in [\d.]+ s, never waited; dropped (\d+)", out)
    ana = re.search(r"analysis saw (\d+) steps; dropped (\d+)", out)
    assert sim and ana, out
    seen, dropped = int(ana.group(1)), int(ana.group(2))
    assert seen + dropped == 50
    assert dropped == int(sim.group(1)) > 0
