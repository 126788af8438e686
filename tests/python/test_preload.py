"""preload="on": on the mpi plane a reader reads the next announced step ahead (the pieces
the step before read) while it works on the current one. Every step's bytes must still be that
step's, whatever the reader does: the same selection each step (served from memory), a
selection that moves, steps it skips, blocks whose size changes, a reader that leaves with
a step read ahead. Writer and reader are one MPMD launch of the MPICH wheel's mpiexec,
bounded in time, under MPICH's defaults and the one-node RMA settings."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import AVAILABLE, MPIEXEC, ts

pytestmark = pytest.mark.skipif(not AVAILABLE.get("mpi"), reason="mpi plane not built")

STEPS = 12

# Every value names its step, so a byte of another step (a read ahead served to the wrong
# one) fails the reader's check.
WRITER = textwrap.dedent(
    """
    import os, sys, numpy as np, twinstream as ts
    d, steps = sys.argv[1], int(sys.argv[2])
    # Every step queued and announced (the reader's prefetch is as deep) before the reader
    # reads one: what is read ahead then does not depend on timing.
    with ts.open("pre", "w", dir=d, min_readers=1, open_timeout=30, close_timeout=30,
                 queue_limit=steps) as w:
        for i in range(steps):
            with w.step() as s:
                s.put("x", np.arange(50_000, dtype=np.float64) + 1e6 * i)
                s.put("g", np.arange(128 * 96, dtype=np.float32).reshape(128, 96) + 1e5 * i)
                # joined: this rank's block changes length with the step
                s.put("j", np.full(1000 + 37 * (i % 3), i, np.int32), joined=True)
        open(os.path.join(d, "written"), "w").close()
    """
)

READER = textwrap.dedent(
    """
    import json, os, sys, time, numpy as np, twinstream as ts
    d, mode, preload = sys.argv[1], sys.argv[2], sys.argv[3]
    g_all = np.arange(128 * 96, dtype=np.float32).reshape(128, 96)
    out = ts.empty((20, 30), np.float32)
    n, kept = 0, []
    with ts.open("pre", "r", dir=d, data_plane="mpi", timeout=30, prefetch=int(sys.argv[4]),
                 preload=preload) as r:
        until = time.monotonic() + 30
        while not os.path.exists(os.path.join(d, "written")) and time.monotonic() < until:
            time.sleep(0.01)
        for step in r:
            i = step.index
            if mode == "skip" and i % 3 == 1:
                n += 1
                continue  # nothing read: what was read ahead for it goes unused
            a, b = (10, 20) if mode != "move" else (i % 7 * 9, i % 5 * 11)
            step.get("g", start=(a, b), count=(20, 30), out=out)
            assert (out == g_all[a:a + 20, b:b + 30] + 1e5 * i).all(), (mode, i)
            x = step.get("x", start=(100,), count=(40_000,))
            assert (x == np.arange(100, 40_100) + 1e6 * i).all(), (mode, i)
            if mode == "keep":
                kept.append((i, step.get("g")))  # one whole block: handed without a copy
            if mode == "joined":
                j = step.get("j")
                assert j.shape == (1000 + 37 * (i % 3),) and (j == i).all(), (mode, i)
            n += 1
            if mode == "early" and n == 4:
                break  # leaves with the next step read ahead
        st = r.stats()
    for i, g in kept:
        assert (g == g_all + 1e5 * i).all(), ("kept", i)
    with open(os.path.join(d, "reader.json"), "w") as f:
        json.dump({"steps": n, "preload": st["preload_bytes"], "unused": st["preload_unused_bytes"],
                   "plane": st["data_plane"]}, f)
    """
)


def _launch(tmp_path, env, mode: str, preload: str = "on") -> dict:
    (tmp_path / "w.py").write_text(WRITER)
    (tmp_path / "r.py").write_text(READER)
    d = str(tmp_path)
    cmd = [str(MPIEXEC), "-n", "1", sys.executable, str(tmp_path / "w.py"), d, str(STEPS), ":",
           "-n", "1", sys.executable, str(tmp_path / "r.py"), d, mode, preload, str(STEPS)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads((tmp_path / "reader.json").read_text())


# Steps read ahead of the one being read (kPreloadDepth in cpp/src/core/read_ahead.hpp).
DEPTH = 1
# Bytes one step's reads take: the tile of g and the slice of x.
TILE_BYTES = 20 * 30 * 4
STEP_BYTES = TILE_BYTES + 40_000 * 8


def test_the_same_selection_each_step_is_served_from_the_step_read_ahead(tmp_path, mpi_env):
    got = _launch(tmp_path, mpi_env, "same")
    assert got["steps"] == STEPS and got["plane"] == "mpi"
    # The first step is read on demand (nothing learned yet). Its first read (the tile)
    # starts reading the next DEPTH steps ahead with what it knows so far, the tile; every
    # step after those is read ahead with all that the step before it read.
    assert got["preload"] == DEPTH * TILE_BYTES + (STEPS - 1 - DEPTH) * STEP_BYTES, got
    assert got["unused"] == 0, got


def test_arrays_handed_without_a_copy_keep_their_steps_values(tmp_path, mpi_env):
    """get() of a whole block that was read ahead returns the read-ahead memory itself.
    The reader keeps every such array to the end: none may be overwritten by a later
    step's read ahead."""
    got = _launch(tmp_path, mpi_env, "keep")
    whole_g = 128 * 96 * 4
    assert got["preload"] == DEPTH * TILE_BYTES + (STEPS - 1 - DEPTH) * (STEP_BYTES + whole_g), got
    assert got["unused"] == 0, got


def test_preload_off_reads_every_step_on_demand(tmp_path, mpi_env):
    got = _launch(tmp_path, mpi_env, "same", preload="off")
    assert got == {"steps": STEPS, "preload": 0, "unused": 0, "plane": "mpi"}


@pytest.mark.parametrize("mode", ["move", "skip", "joined", "early"])
def test_reads_that_differ_from_the_step_before_get_their_own_steps_bytes(tmp_path, mpi_env, mode):
    """move: the tile moves each step, so what was read ahead of it is not what is asked
    (read on demand, counted unused). skip: every third step reads nothing. joined: j's
    block changes length, so it is never carried over. early: the reader leaves after four
    steps with the fifth read ahead, and its window is still freed (exit status 0)."""
    got = _launch(tmp_path, mpi_env, mode)
    assert got["steps"] == (4 if mode == "early" else STEPS), got
    assert got["preload"] > 0, got  # x's slice stays the same in every mode
    if mode in ("move", "skip"):
        assert got["unused"] > 0, got


def test_preload_takes_on_or_off_and_names_the_choices(tmp_path):
    with pytest.raises(ts.InvalidArgument, match=r"preload.*off, on"):
        ts.open("pre", "r", dir=str(tmp_path), preload="sometimes", timeout=0.1)
