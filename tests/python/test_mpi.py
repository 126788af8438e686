"""The mpi data plane's launches: writer and readers in one MPMD launch (paired out of
MPI_COMM_WORLD by MPI_APPNUM's programs), and launched separately (MPI_Open_port /
MPI_Comm_connect, the port handed over in the Welcome), plus a reader killed while it
holds a step. Every process runs under the MPICH wheel's mpiexec, bounded in time.

Each runs under MPICH's defaults and under the one-node RMA settings the README gives
(MPIR_CVAR_NOLOCAL=1 FI_PROVIDER=shm: RMA through libfabric's shm provider, single copy).
There MPICH cannot finalize while a window is open, so these also check that every window
is freed with its reader (exit status 0, no finalize error)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import AVAILABLE, MPIEXEC, ts

pytestmark = pytest.mark.skipif(not AVAILABLE.get("mpi"), reason="mpi plane not built")


WRITER = textwrap.dedent(
    """
    import sys, numpy as np, twinstream as ts
    d, readers, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with ts.open("mpistream", "w", dir=d, min_readers=readers, open_timeout=30,
                 close_timeout=30, queue_limit=2) as w:
        for i in range(steps):
            with w.step() as s:
                s.put("x", np.arange(300_000, dtype=np.int64) + i)
                s.put("f", np.full((64, 64), i, np.float32), shape=(128, 64), start=(64 * (i % 2), 0))
        stats = w.stats()
    print("WRITER", stats["steps"], stats["readers"], flush=True)
    """
)

READER = textwrap.dedent(
    """
    import os, sys, time, numpy as np, twinstream as ts
    d, hold = sys.argv[1], int(sys.argv[2])
    r = ts.open("mpistream", "r", dir=d, data_plane="mpi", timeout=30)
    n = 0
    for step in r:
        assert (step["x"] == np.arange(300_000) + step.index).all(), step.index
        tile = step.get("f", start=(64 * (step.index % 2) + 3, 5), count=(10, 7))
        assert (tile == step.index).all()
        n += 1
        if step.index == hold:
            print("HOLD", os.getpid(), flush=True)
            time.sleep(300)
    print("READER", n, r.stats()["data_plane"], flush=True)
    # mpiexec merges the programs' output (lines can interleave): results go to files too.
    with open(os.path.join(d, f"reader-{os.getpid()}.done"), "w") as f:
        f.write(f"{n} {r.stats()['data_plane']}")
    """
)


def _scripts(tmp_path: Path) -> tuple[str, str]:
    w, r = tmp_path / "writer.py", tmp_path / "reader.py"
    w.write_text(WRITER)
    r.write_text(READER)
    return str(w), str(r)


def _run(cmd: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_writer_and_readers_in_one_mpmd_launch(tmp_path, mpi_env):
    w, r = _scripts(tmp_path)
    d = str(tmp_path)
    cmd = [str(MPIEXEC), "-n", "1", sys.executable, w, d, "2", "6", ":", "-n", "2", sys.executable, r, d, "-1"]
    out = _run(cmd, mpi_env, 90)
    assert out.returncode == 0, out.stdout + out.stderr
    done = sorted(p.read_text() for p in tmp_path.glob("reader-*.done"))
    assert done == ["6 mpi", "6 mpi"], out.stdout + out.stderr


def test_writer_and_reader_launched_separately_connect_through_a_port(tmp_path, mpi_env):
    w, r = _scripts(tmp_path)
    d, env = str(tmp_path), mpi_env
    writer = subprocess.Popen([str(MPIEXEC), "-n", "1", sys.executable, w, d, "1", "6"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = _run([str(MPIEXEC), "-n", "1", sys.executable, r, d, "-1"], env, 90)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "READER 6 mpi" in out.stdout
        wout, werr = writer.communicate(timeout=60)
        assert writer.returncode == 0 and "WRITER 6" in wout, wout + werr
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate(timeout=30)


def test_reader_killed_while_holding_a_step_does_not_hang_the_writer(tmp_path, mpi_env):
    """Two separately launched readers; one is SIGKILLed while it holds step 2. The writer
    releases that step, the other reader gets every step, the writer ends (with exit status
    0 even where MPICH cannot finalize over the dead reader's window)."""
    w, r = _scripts(tmp_path)
    d, env = str(tmp_path), mpi_env
    writer = subprocess.Popen([str(MPIEXEC), "-n", "1", sys.executable, w, d, "2", "8"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The victim runs without mpiexec (an MPI singleton), so that killing it kills no launcher.
    victim = subprocess.Popen([sys.executable, r, d, "2"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    survivor = subprocess.Popen([str(MPIEXEC), "-n", "1", sys.executable, r, d, "-1"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = victim.stdout.readline()
        assert line.startswith("HOLD"), line + victim.stderr.read()
        t0 = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        sout, serr = survivor.communicate(timeout=60)
        assert survivor.returncode == 0 and "READER 8 mpi" in sout, sout + serr
        wout, werr = writer.communicate(timeout=60)
        assert writer.returncode == 0 and "WRITER 8" in wout, wout + werr
        assert time.monotonic() - t0 < 30
    finally:
        for p in (victim, survivor, writer):
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=30)


def test_reader_in_the_writers_own_process_is_refused_with_the_fix(ctx):
    ctx.open_writer()
    with pytest.raises(ts.Unavailable) as ei:
        ctx.open_reader("mpi", open_timeout=20)
    msg = str(ei.value)
    assert ctx.name in msg and "own process" in msg and "inproc" in msg, msg


STALE_REGION = textwrap.dedent(
    """
    import os, sys, twinstream as ts
    # What a killed MPI process with this pid would have left: libfabric's shm provider
    # names its region "<pid>:<n>:<n>" (a process that got the recycled pid hung in
    # MPI_Init_thread on one).
    stale = f"/dev/shm/{os.getpid()}:0:0"
    with open(stale, "wb") as f:
        f.write(bytes(4096))
    inode = os.stat(stale).st_ino
    try:
        ts.open("nobody", "r", dir=sys.argv[1], data_plane="mpi", open_timeout=0.2)
    except ts.TimeoutError:
        pass  # no writer: MPI was initialized on the way, which is what is looked at
    # Under FI_PROVIDER=shm this process's own region now has that name: a new object.
    left = os.path.exists(stale) and (os.stat(stale).st_ino, os.stat(stale).st_size) == (inode, 4096)
    print("STALE", left, flush=True)
    """
)


def test_region_left_under_this_pid_is_removed_before_mpi_init(tmp_path, mpi_env):
    """A process that initializes MPI through twinstream first removes libfabric shm
    regions named after its own pid (stale by definition: MPI is not up yet)."""
    script = tmp_path / "stale.py"
    script.write_text(STALE_REGION)
    p = _run([sys.executable, str(script), str(tmp_path)], mpi_env, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "STALE False" in p.stdout, p.stdout + p.stderr[-2000:]
