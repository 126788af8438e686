"""N x M: a writer job of P ranks, each putting its own blocks, read by readers that pull
each box only from the ranks whose blocks overlap it; joined and local arrays.

Two kinds of runs. In this process: P writers opened with rank=/ranks=/job= (what comm=
sets), so that hypothesis can throw random decompositions and boxes at the real read path
over every data plane. Under mpiexec: writer and reader jobs of 1-4 ranks each, launched
separately and together (MPMD), over shm, tcp, fabric and mpi (procs/nxm_job.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import AVAILABLE, FABRIC_PROVIDERS, PROCS, ts

BIN = Path(sys.executable).parent
MPIEXEC = BIN / "mpiexec"


class Job:
    """P writer ranks in this process (one Writer each, as comm= would open them) and a
    reader; a step is written by every rank, then read."""

    def __init__(self, d: Path, name: str, ranks: int, plane: str = "shm", job: str = "j1",
                 **reader_opts):
        self.writers = [
            ts.open(name, "w", dir=str(d), rank=r, ranks=ranks, job=job, queue_limit=4)
            for r in range(ranks)
        ]
        opts = {"dir": str(d), "data_plane": plane, "timeout": 10, **reader_opts}
        if plane.startswith("fabric-"):
            opts.update(data_plane="fabric", fabric_provider=plane.split("-", 1)[1])
        self.reader = ts.open(name, "r", **opts)

    @contextlib.contextmanager
    def step(self, put_by_rank):
        """Each rank runs put_by_rank(rank, step_writer); yields the reader's step."""
        for r, w in enumerate(self.writers):
            with w.step() as s:
                put_by_rank(r, s)
        status = self.reader.begin_step(timeout=10)
        assert status is ts.StepStatus.OK, f"the job's step did not arrive: {status}"
        try:
            yield self.reader.current_step
        finally:
            self.reader.end_step()

    def close(self):
        self.reader.close()
        for w in self.writers:
            w.close()


def _planes():
    return ["inproc", "shm", "tcp"] + [f"fabric-{p}" for p in FABRIC_PROVIDERS]


@pytest.fixture
def job(tmp_path, request):
    jobs = []

    def make(ranks, plane="shm", **kw):
        jobs.append(Job(tmp_path, f"nxm-{len(jobs)}", ranks, plane, **kw))
        return jobs[-1]

    yield make
    for j in jobs:
        j.close()


def _decomposition(data, shape, ranks):
    """Blocks per rank: axis 0 cut into P contiguous ranges (any may be empty) with gaps,
    each range cut along the last axis into 1-3 blocks."""
    cuts = sorted(data.draw(st.integers(0, shape[0])) for _ in range(ranks - 1))
    edges = [0, *cuts, shape[0]]
    blocks = []
    for r in range(ranks):
        lo, hi = edges[r], edges[r + 1]
        if hi > lo and data.draw(st.booleans()):
            hi -= 1  # a gap: the last row of this range is never put
        mine = []
        if hi > lo:
            n = data.draw(st.integers(1, 3))
            last = shape[-1]
            inner = sorted({0, last, *(data.draw(st.integers(0, last)) for _ in range(n - 1))})
            for a, b in zip(inner[:-1], inner[1:]):
                start = [lo] + [0] * (len(shape) - 1)
                count = [hi - lo, *shape[1:]]
                start[-1] = a if len(shape) > 1 else lo
                count[-1] = b - a if len(shape) > 1 else hi - lo
                if len(shape) == 1:
                    mine = [((lo,), (hi - lo,))]
                    break
                mine.append((tuple(start), tuple(count)))
        blocks.append(mine)
    return blocks


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_random_decompositions_and_boxes(job, ranks):
    """Hypothesis: any decomposition of a 1-3-D array over P ranks (uneven, gaps, empty
    ranks) and any box: the reader gets exactly the reference box, zeros where no rank put
    anything."""
    j = job(ranks)

    @settings(max_examples=25, deadline=None, database=None, derandomize=True)
    @given(st.data())
    def one(data):
        shape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)))
        full = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) + 1
        blocks = _decomposition(data, shape, ranks)
        want = np.zeros(shape)
        for mine in blocks:
            for start, count in mine:
                sl = tuple(slice(s, s + c) for s, c in zip(start, count))
                want[sl] = full[sl]

        def put(r, s):
            s.put("marker", np.zeros(1))  # every rank has something in the step
            for start, count in blocks[r]:
                sl = tuple(slice(a, a + c) for a, c in zip(start, count))
                s.put("x", full[sl], shape=shape, start=start)

        with j.step(put) as step:
            if not any(blocks):
                assert "x" not in step
                return
            assert step.variables["x"].shape == shape
            assert sorted({b.owner for b in step.blocks("x")}) == [
                r for r in range(ranks) if blocks[r]
            ]
            assert np.array_equal(step["x"], want)
            for _ in range(3):
                start = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
                count = tuple(data.draw(st.integers(0, n - s)) for s, n in zip(start, shape))
                sl = tuple(slice(s, s + c) for s, c in zip(start, count))
                assert np.array_equal(step.get("x", start, count), want[sl]), (start, count)

    one()


@pytest.mark.parametrize("plane", _planes())
def test_every_kind_over_every_plane(job, plane):
    """Global, joined (rank 0 with no atoms) and local arrays from 3 ranks, over each plane."""
    j = job(3, plane)
    shape = (9, 4)
    full = np.arange(36, dtype=np.int64).reshape(shape)
    for i in range(3):
        def put(r, s):
            s.put("f", full[3 * r:3 * r + 3] + i, shape=shape, start=(3 * r, 0))
            s.put("atoms", np.full((2 * r, 3), 10 * r + i, np.float32), joined=True)
            for k in range(r + 1):
                s.put("patch", np.full((k + 1, r + 2), 100 * r + k, np.int16), local=True)
            if r == 0:
                s.attrs["i"] = i
            if r == 2:
                s.attrs["from_rank_2"] = "yes"

        with j.step(put) as step:
            assert step.index == i and step.attrs["i"] == i
            assert step.attrs["from_rank_2"] == "yes"  # ranks' attributes are merged
            assert np.array_equal(step["f"], full + i)
            assert np.array_equal(step.get("f", (2, 1), (5, 2)), full[2:7, 1:3] + i)
            atoms = step["atoms"]
            assert step.variables["atoms"].kind == "joined"
            assert atoms.shape == (6, 3)  # 0 + 2 + 4 rows
            assert np.array_equal(atoms[:, 0], [10 + i] * 2 + [20 + i] * 4)
            assert np.array_equal(step.get("atoms", (1, 0), (3, 2)), atoms[1:4, :2])
            blocks = step.blocks("patch")
            assert [(b.owner, b.count) for b in blocks] == [
                (0, (1, 2)), (1, (1, 3)), (1, (2, 3)), (2, (1, 4)), (2, (2, 4)), (2, (3, 4))
            ]
            for b in blocks:
                k = sum(1 for c in blocks[: b.index] if c.owner == b.owner)
                got = step.get_block("patch", b.index)
                assert got.shape == b.count and np.all(got == 100 * b.owner + k)
            with pytest.raises(ts.InvalidArgument, match="local array"):
                step["patch"]
            with pytest.raises(ts.InvalidArgument, match="6 blocks"):
                step.get_block("patch", 6)


def test_single_rank_joined_and_local_arrays(job):
    j = job(1, "tcp")

    def put(r, s):
        s.put("atoms", np.ones((0, 3)), joined=True)  # empty first block
        s.put("atoms", np.full((2, 3), 2.0), joined=True)
        s.put("atoms", np.full((1, 3), 3.0), joined=True)
        s.put("tile", np.arange(6).reshape(2, 3), local=True)

    with j.step(put) as step:
        assert np.array_equal(step["atoms"][:, 0], [2, 2, 3])
        assert [b.start for b in step.blocks("atoms")] == [(0, 0), (0, 0), (2, 0)]
        assert np.array_equal(step.get_block("tile", 0), np.arange(6).reshape(2, 3))


def test_ranks_that_disagree_are_named_and_other_variables_stay_readable(job):
    j = job(2)

    def put(r, s):
        s.put("ok", np.full(3, r), shape=(6,), start=(3 * r,))
        s.put("bad", np.zeros(2, np.float32 if r == 1 else np.float64), shape=(4,), start=(2 * r,))
        s.put("rows", np.zeros((1, 2 + r)), joined=True)

    with j.step(put) as step:
        with pytest.raises(ts.InvalidArgument, match=r"'bad': writer rank 1 put float32"):
            step["bad"]
        with pytest.raises(ts.InvalidArgument, match=r"'rows': writer rank 1"):
            step["rows"]
        assert np.array_equal(step["ok"], [0, 0, 0, 1, 1, 1])


def test_writer_side_mistakes_are_refused_at_once(tmp_path):
    with pytest.raises(ts.InvalidArgument, match="ranks count from 0"):
        ts.open("m", "w", dir=str(tmp_path), rank=2, ranks=2)
    w = ts.open("m", "w", dir=str(tmp_path), rank=0, ranks=2, job="x")
    try:
        with pytest.raises(ts.InvalidArgument, match="not supported"):
            w.define("x", [ts.ops.log1p()], "reader")
        with w.step() as s:
            with pytest.raises(ts.InvalidArgument, match="exclude each other"):
                s.put("a", np.zeros(2), joined=True, local=True)
            with pytest.raises(ts.InvalidArgument, match="has no shape"):
                s.put("a", np.zeros(2), joined=True, shape=(4,))
            with pytest.raises(ts.InvalidArgument, match="at least one axis"):
                s.put("a", np.float64(1.0), joined=True)
            s.put("a", np.zeros(2), joined=True)
            with pytest.raises(ts.InvalidArgument, match="joined array, now as a local"):
                s.put("a", np.zeros(2), local=True)
            with pytest.raises(ts.InvalidArgument, match="every axis but the first"):
                s.put("a", np.zeros((2, 2)), joined=True)
    finally:
        w.close()


def test_policies_a_job_cannot_honour_are_refused(tmp_path):
    ws = [ts.open("p", "w", dir=str(tmp_path), rank=r, ranks=2, job="x") for r in range(2)]
    try:
        with pytest.raises(ts.InvalidArgument, match="policy='all'"):
            ts.open("p", "r", dir=str(tmp_path), group="g", policy="round_robin", timeout=5)
    finally:
        for w in ws:
            w.close()


def test_a_rank_file_from_another_job_is_refused(tmp_path):
    a = ts.open("s", "w", dir=str(tmp_path), rank=0, ranks=2, job="first")
    b = ts.open("s", "w", dir=str(tmp_path), rank=1, ranks=2, job="second")
    try:
        with pytest.raises(ts.ConnectionError, match="another writer job"):
            ts.open("s", "r", dir=str(tmp_path), timeout=5)
    finally:
        a.close()
        b.close()


# -- under mpiexec -------------------------------------------------------------------------


def _env(readers: int) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MPIR_CVAR_CH4_NETMOD"] = "ofi"  # MPI_Open_port / MPI_Comm_connect (mpi plane)
    env["NXM_READERS"] = str(readers)
    env.pop("TWINSTREAM_LOG", None)
    return env


def _job(role: str, ranks: int, d: Path, steps: int, *flags: str) -> list[str]:
    return ["-n", str(ranks), sys.executable, str(PROCS / "nxm_job.py"), role, str(d), str(steps),
            *flags]


def _results(d: Path, q: int) -> list[dict]:
    return [json.loads((d / f"reader-{r}.json").read_text()) for r in range(q)]


def _launch_apart(writer_cmd: list[str], reader_cmd: list[str], env: dict):
    """Starts the writer job, runs the reader job to its end, then waits for the writer
    (killed if it outlives its timeout): (reader result, writer exit code, writer output)."""
    writer = subprocess.Popen(writer_cmd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        reader = subprocess.run(reader_cmd, env=env, capture_output=True, text=True, timeout=120)
        wout, _ = writer.communicate(timeout=120)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate(timeout=30)
    return reader, writer.returncode, wout


def _separate(d: Path, p: int, q: int, steps: int, *flags: str, readers: int | None = None):
    return _launch_apart([str(MPIEXEC), *_job("writer", p, d, steps, *flags)],
                         [str(MPIEXEC), *_job("reader", q, d, steps, *flags)],
                         _env(q if readers is None else readers))


@pytest.fixture
def mpi():
    assert MPIEXEC.exists(), f"{MPIEXEC} missing: install the mpich wheel (make deps does)"
    pytest.importorskip("mpi4py", reason="mpi4py missing: make deps installs it")


@pytest.mark.parametrize("q", [1, 2, 3, 4])
@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_mpiexec_writer_job_to_reader_job(mpi, tmp_path, p, q):
    """P writer ranks, Q reader ranks, launched separately: every reader rank checks random
    boxes, the joined and the local array of every step, and all see the same steps."""
    reader, wrc, wout = _separate(tmp_path, p, q, 4)
    assert reader.returncode == 0, reader.stdout + reader.stderr
    assert wrc == 0, wout
    for res in _results(tmp_path, q):
        assert res["seen"] == [0, 1, 2, 3] and res["checked"] == 12, res


@pytest.mark.parametrize("plane", ["tcp", "fabric", "mpi"])
def test_mpiexec_over_each_network_plane(mpi, tmp_path, plane):
    if not AVAILABLE.get(plane):
        pytest.fail(f"data plane {plane} is not built here (test_build.py says why)")
    reader, wrc, wout = _separate(tmp_path, 2, 2, 3, plane)
    assert reader.returncode == 0 and wrc == 0, reader.stdout + reader.stderr + wout
    assert [r["plane"] for r in _results(tmp_path, 2)] == [plane, plane]


def test_mpmd_launch_over_the_mpi_plane(mpi, tmp_path):
    """mpiexec -n 2 writer : -n 3 reader, split by MPI_APPNUM, bytes over MPI RMA."""
    if not AVAILABLE.get("mpi"):
        pytest.fail("the mpi data plane is not built here (test_build.py says why)")
    cmd = [str(MPIEXEC), *_job("writer", 2, tmp_path, 3, "mpi"), ":",
           *_job("reader", 3, tmp_path, 3, "mpi")]
    out = subprocess.run(cmd, env=_env(3), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for res in _results(tmp_path, 3):
        assert res["seen"] == [0, 1, 2] and res["plane"] == "mpi", res


def test_mpmd_launch_over_the_mpi_plane_with_preload(mpi, tmp_path):
    """The same with every reader rank reading the next step ahead from each writer rank
    while it spends 0.2 s on each step: its random boxes move (mostly read on demand), its
    local blocks keep their shapes (read ahead, handed without a copy); every value is
    still checked."""
    if not AVAILABLE.get("mpi"):
        pytest.fail("the mpi data plane is not built here (test_build.py says why)")
    cmd = [str(MPIEXEC), *_job("writer", 2, tmp_path, 4, "preload", "mpi"), ":",
           *_job("reader", 3, tmp_path, 4, "preload", "mpi")]
    out = subprocess.run(cmd, env=_env(3), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for res in _results(tmp_path, 3):
        assert res["seen"] == [0, 1, 2, 3] and res["checked"] == 12, res
        assert res["preload_bytes"] > 0, res


def test_reader_ranks_joining_at_different_steps_start_together(mpi, tmp_path):
    """The writer starts at its first reader; rank r of the reader job opens 0.4 r s later.
    The collective open makes every rank start at the same step and see the same ones."""
    reader, wrc, wout = _separate(tmp_path, 2, 3, 12, "late", readers=1)
    assert reader.returncode == 0 and wrc == 0, reader.stdout + reader.stderr + wout
    seen = [r["seen"] for r in _results(tmp_path, 3)]
    assert seen[0] == seen[1] == seen[2], seen
    assert seen[0] == list(range(seen[0][0], 12)), seen


def test_reader_rank_killed_mid_step_does_not_hang_the_writer_job(mpi, tmp_path):
    """Reader rank 1 is SIGKILLed while it holds step 1 (mpiexec then ends its job); the
    writer ranks drop the dead readers and finish."""
    reader, wrc, wout = _separate(tmp_path, 2, 2, 6, "die")
    assert reader.returncode != 0  # the reader job did die
    assert wrc == 0, wout
    assert wout.count("done") == 2, wout


def _tool(name: str) -> str:
    found = BIN / name
    assert found.exists(), f"{name} is not installed in the venv; run `make deps`"
    return str(found)


@pytest.mark.timeout(400)
def test_cpp_mpi_simulation_to_python_reader_job(mpi, tmp_path):
    """examples/cpp_mpi_writer (twinstream/mpi.hpp, find_package(twinstream)) as a 3-rank
    writer job, read by a 2-rank Python reader job that checks every value."""
    build = tmp_path / "build"
    env = dict(_env(2), MPI_HOME=sys.prefix)  # FindMPI: the mpich wheel's MPI
    root = Path(__file__).resolve().parents[2]
    subprocess.run([_tool("cmake"), "-S", str(root / "examples" / "cpp_mpi_writer"), "-B",
                    str(build), "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}",
                    f"-Dtwinstream_DIR={ts.cmake_dir()}"],
                   check=True, capture_output=True, timeout=120, env=env)
    subprocess.run([_tool("cmake"), "--build", str(build)], check=True, capture_output=True,
                   timeout=300, env=env)
    d = tmp_path / "run"
    d.mkdir()
    reader, wrc, wout = _launch_apart(
        [str(MPIEXEC), "-n", "3", str(build / "cpp_mpi_writer"), str(d), "4", "2"],
        [str(MPIEXEC), *_job("reader", 2, d, 4)], env)
    assert reader.returncode == 0, reader.stdout + reader.stderr
    assert wrc == 0 and wout.count("done") == 3, wout
    for res in _results(d, 2):
        assert res["seen"] == [0, 1, 2, 3] and res["checked"] == 12, res


def test_writer_rank_killed_ends_the_reader_with_an_error_naming_it(mpi, tmp_path):
    """Writer rank 1 is SIGKILLed after step 1 (mpiexec then ends its job): the reader job
    does not hang; its error names the stream and the writer rank."""
    reader, _, _ = _launch_apart([str(MPIEXEC), *_job("writer", 2, tmp_path, 6, "crash")],
                                 [str(MPIEXEC), *_job("reader", 1, tmp_path, 6)], _env(1))
    assert reader.returncode != 0
    err = reader.stdout + reader.stderr
    assert "ConnectionError" in err and "stream 'nxm'" in err and "writer rank" in err, err


def test_reader_joining_between_ranks_steps_starts_at_the_first_whole_step(tmp_path):
    """Rank 0 is a step ahead when the reader joins: the reader starts at the first step
    every rank will offer it, and that is not counted as a drop."""
    d = str(tmp_path)
    ws = [ts.open("skew", "w", dir=d, rank=r, ranks=2, job="k") for r in range(2)]

    def one(w, i):
        with w.step() as s:
            s.put("x", np.full(2, i), shape=(4,), start=(2 * ws.index(w),))

    try:
        for i in range(2):
            for w in ws:
                one(w, i)
        one(ws[0], 2)  # rank 0 runs ahead
        r = ts.open("skew", "r", dir=d, timeout=10)
        assert r._r.first_step == 3
        one(ws[1], 2)
        for w in ws:
            one(w, 3)
        assert r.begin_step(timeout=10) is ts.StepStatus.OK
        step = r.current_step
        assert step.index == 3 and np.array_equal(step["x"], [3, 3, 3, 3])
        r.end_step()
        assert r.stats()["dropped"] == 0
        r.close()
    finally:
        for w in ws:
            w.close()
