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


def _reader_lines(out: str) -> dict[str, list[str]]:
    return {m.group(1): m.group(2).split() for m in re.finditer(r"^reader (\w): ?(.*)$", out, re.M)}


@pytest.mark.timeout(150)
def test_groups_example_each_policy():
    every = [str(i) for i in range(12)]
    got = _reader_lines(run("groups.py", "all"))
    assert got == {"A": every, "B": every}
    for policy in ("round_robin", "on_demand"):
        got = _reader_lines(run("groups.py", policy))
        assert sorted(got["A"] + got["B"], key=int) == every, (policy, got)
    out = run("groups.py", "shuffle")
    batches = _reader_lines(out)
    # 3 windows of 4 steps x 8 rows = 32 samples each, in batches of 6: 6 batches a window.
    assert len(batches["A"]) + len(batches["B"]) == 3 * 6, out
    out = run("groups.py", "latest")
    for who, seen in _reader_lines(out).items():
        steps = [int(x) for x in seen if x.isdigit()]
        # Each gets the newest step it can, never going back, and the last one in the end
        # (how many it skips depends on its speed against the writer's).
        assert steps[-1] == 11 and steps == sorted(set(steps)), (who, out)


@pytest.mark.timeout(120)
def test_ensemble_example():
    out = run("ensemble.py")
    assert re.search(r"^run-00: 8 steps, ended$", out, re.M), out
    assert re.search(r"^run-02: 8 steps, ended$", out, re.M), out
    assert re.search(r"^run-01: \d steps, failed$", out, re.M), out


@pytest.mark.timeout(150)
def test_nxm_example_mpmd():
    """The N x M example as the README launches it: 2 simulation ranks, 3 trainer ranks."""
    bindir = pathlib.Path(sys.executable).parent
    mpiexec = bindir / "mpiexec"
    assert mpiexec.exists(), "mpiexec missing: install the mpich wheel (make deps does)"
    proc = subprocess.run(
        [str(mpiexec), "-n", "2", sys.executable, "nxm.py", "sim", ":",
         "-n", "3", sys.executable, "nxm.py", "train"],
        cwd=EXAMPLES, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rank in range(3):
        # mpiexec merges the ranks' output: lines may run into each other, so no anchors.
        lines = re.findall(rf"trainer rank {rank}: step (\d) [^\n]*? from sim ranks \[0, 1\], "
                           r"(\d) particles, patches \[\(2, 2\), \(3, 3\)\]", proc.stdout)
        assert [int(s) for s, _ in lines] == list(range(5)), proc.stdout
        assert [int(n) for _, n in lines] == [1 + s % 2 * 2 for s in range(5)], proc.stdout
