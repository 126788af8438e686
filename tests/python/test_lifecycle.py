"""Joining and leaving: late and early readers, min_readers, open_timeout, close draining,
aborted steps, timeouts, and the GIL being released while a reader waits."""

from __future__ import annotations

import builtins
import os
import threading
import time

import pytest
import numpy as np
from conftest import Bg, check_counter_records, consume, read_contact, ts

pytestmark = pytest.mark.timeout(60)


def test_late_reader_sees_contiguous_steps_from_its_join_point(ctx, plane):
    n, k = 8, 3
    go = ctx.signal_file()
    w = ctx.spawn_writer(plane, steps=n, options={"min_readers": 1}, pauses={str(k): go})
    a = ctx.open_reader(plane)
    a_records = Bg(consume, a, name="reader-a")
    w.wait_line(f"STEP {k}")
    b = ctx.open_reader(plane)  # joins while the writer is paused after step k
    assert b.stats()["data_plane"] == plane
    ctx.fire(go)
    b_records = consume(b)
    assert [rec["index"] for rec in b_records] == list(range(k + 1, n))
    check_counter_records(b_records)
    assert all(rec["dropped"] == 0 for rec in b_records)
    # Stream attributes set before it joined are there too.
    assert b.attrs == {"units": "lj", "version": 3}
    recs = a_records.result(30)
    assert [rec["index"] for rec in recs] == list(range(n))
    check_counter_records(recs)
    res = w.result()
    assert res["ok"], res


def test_early_reader_waits_for_the_writer(ctx, plane):
    n = 4
    r_box: list = []

    def open_and_read():
        r = ctx.open_reader(plane, open_timeout=30)
        r_box.append(r)
        return consume(r)

    bg = Bg(open_and_read, name="early-reader")
    time.sleep(0.5)  # the reader is polling for a contact file that is not there yet
    assert bg.alive, f"reader gave up before the writer started: {bg.exception(1)!r}"
    assert not ctx.contact_path().exists()
    w = ctx.spawn_writer(plane, steps=n, options={"min_readers": 1})
    records = bg.result(40)
    assert [rec["index"] for rec in records] == list(range(n))
    check_counter_records(records)
    assert r_box[0].stats()["data_plane"] == plane
    assert w.result()["ok"]


def test_min_readers_makes_the_writer_wait(ctx, plane):
    n = 4
    w = ctx.spawn_writer(plane, steps=n, options={"min_readers": 2, "open_timeout": 30})
    a = ctx.open_reader(plane)
    # One reader of two: the first step must not come.
    assert a.begin_step(timeout=0.7) is ts.StepStatus.NOT_READY
    assert not w.has_line("STEP 0")
    b = ctx.open_reader(plane)
    a_recs = Bg(consume, a, name="reader-a")
    b_recs = consume(b)
    assert [rec["index"] for rec in b_recs] == list(range(n))
    assert [rec["index"] for rec in a_recs.result(30)] == list(range(n))
    check_counter_records(b_recs)
    assert w.result()["ok"]


def test_writer_open_timeout_expiry_raises_timeout_error(ctx):
    w = ctx.open_writer(min_readers=1, open_timeout=0.3)
    with pytest.raises(ts.TimeoutError) as ei:
        w.begin_step()
    assert isinstance(ei.value, builtins.TimeoutError)
    assert isinstance(ei.value, ts.Error)
    assert ctx.name in str(ei.value)
    assert "min_readers" in str(ei.value)


def test_reader_open_timeout_expiry_raises_timeout_error(ctx, plane):
    t0 = time.monotonic()
    with pytest.raises(ts.TimeoutError) as ei:
        ctx.open_reader(plane, open_timeout=0.3, timeout=30)
    assert time.monotonic() - t0 < 25, "open_timeout was not used (timeout was)"
    assert isinstance(ei.value, builtins.TimeoutError)
    assert ctx.name in str(ei.value)


def test_iteration_raises_timeout_error_when_no_step_comes(ctx, plane):
    go = ctx.signal_file()
    w = ctx.spawn_writer(plane, steps=1, options={"min_readers": 1}, pauses={"-1": go})
    r = ctx.open_reader(plane, timeout=0.3, open_timeout=30)  # the writer may start slowly
    with pytest.raises(ts.TimeoutError) as ei:
        for _ in r:
            pass
    assert isinstance(ei.value, builtins.TimeoutError)
    assert ctx.name in str(ei.value)
    assert r.begin_step(timeout=0.1) is ts.StepStatus.NOT_READY
    ctx.fire(go)
    assert r.begin_step(timeout=30) is ts.StepStatus.OK
    r.end_step()
    assert r.begin_step(timeout=30) is ts.StepStatus.END_OF_STREAM
    # End of stream is sticky.
    assert r.begin_step(timeout=0.1) is ts.StepStatus.END_OF_STREAM
    assert w.result()["ok"]


@pytest.mark.parametrize("nreaders", [1, 2])
def test_close_drains_queued_steps_then_end_of_stream(ctx, plane, nreaders):
    n = 10
    w = ctx.spawn_writer(
        plane, steps=n, options={"min_readers": nreaders, "queue_limit": 4, "close_timeout": 30}
    )
    readers = [ctx.open_reader(plane) for _ in range(nreaders)]
    bgs = [Bg(lambda r=r: consume(r, sleep=0.03), name=f"reader-{i}") for i, r in enumerate(readers)]
    w.wait_line("CLOSING")  # every step published; queued ones are still unread
    for bg, r in zip(bgs, readers):
        recs = bg.result(40)
        assert [rec["index"] for rec in recs] == list(range(n))
        check_counter_records(recs)
        assert r.begin_step(timeout=0.1) is ts.StepStatus.END_OF_STREAM
    res = w.result()
    assert res["ok"], res
    assert res["stats"]["steps"] == n and res["stats"]["dropped"] == 0
    assert w.returncode == 0
    assert not ctx.contact_path().exists(), "a closed writer leaves its contact file behind"


def test_close_without_steps_gives_end_of_stream(ctx, plane):
    go = ctx.signal_file()
    w = ctx.spawn_writer(plane, steps=0, pauses={"-1": go})
    r = ctx.open_reader(plane)
    assert r.begin_step(timeout=0.2) is ts.StepStatus.NOT_READY
    ctx.fire(go)
    assert r.begin_step(timeout=30) is ts.StepStatus.END_OF_STREAM
    assert list(r) == []
    assert w.result()["ok"]


def _shm_names(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix + "-"))


def test_writer_process_exit_leaves_no_shared_memory(ctx, remote_plane):
    w = ctx.spawn_writer(remote_plane, steps=3, options={"min_readers": 1})
    w.wait_line("OPEN")
    prefix = read_contact(ctx.contact_path())["shm_prefix"]
    assert prefix
    r = ctx.open_reader(remote_plane)
    assert len(consume(r)) == 3
    assert w.result()["ok"] and w.returncode == 0
    assert _shm_names(prefix) == []


def test_closed_writer_releases_its_shared_memory(ctx):
    """After close() the stream is over and every reader has drained it: the writer's
    shared-memory segments should not outlive close() (a process that goes on, or exits
    without collecting the object, would otherwise leave them in /dev/shm)."""
    w = ctx.open_writer()
    prefix = read_contact(ctx.contact_path())["shm_prefix"]
    r = ctx.open_reader("shm")
    for i in range(2):
        with w.step() as s:
            s.put("x", np.full(4, i, dtype=np.int64))
    for _ in range(2):
        assert r.begin_step(timeout=10) is ts.StepStatus.OK
        r.end_step()
    assert _shm_names(prefix), "the writer keeps its steps in /dev/shm"
    w.close()
    assert _shm_names(prefix) == []


def test_close_timeout_bounds_close_with_a_stuck_reader(ctx, plane):
    w = ctx.spawn_writer(plane, steps=2, options={"min_readers": 1, "close_timeout": 0.5})
    r = ctx.open_reader(plane)
    assert r.begin_step(timeout=30) is ts.StepStatus.OK  # held, never acknowledged
    res = w.result(timeout=30)
    assert res["ok"], res
    assert "close_timeout" in w.stderr()
    # The reader finds out: an error or end of stream, never a hang.
    try:
        r.end_step()
        status = r.begin_step(timeout=15)
        assert status is not ts.StepStatus.NOT_READY
    except ts.ConnectionError as e:
        assert ctx.name in str(e)


def test_aborted_step_is_not_published_and_does_not_use_an_index(ctx, plane):
    n = 4
    w = ctx.spawn_writer(plane, steps=n, options={"min_readers": 1}, abort_at=[1, 2])
    r = ctx.open_reader(plane)
    records = consume(r)
    assert [rec["index"] for rec in records] == list(range(n))
    check_counter_records(records)  # no "aborted" attribute, no x == -1
    assert w.result()["ok"]


def test_reader_blocked_in_begin_step_releases_the_gil(ctx, plane):
    go = ctx.signal_file()
    w = ctx.spawn_writer(plane, steps=1, options={"min_readers": 1}, pauses={"-1": go})
    r = ctx.open_reader(plane)

    count = 0
    stop = threading.Event()

    def counter():
        nonlocal count
        while not stop.is_set():
            count += 1

    # How far the counter gets in 0.2 s with nobody else wanting the GIL.
    t = threading.Thread(target=counter, daemon=True)
    c0 = count
    t.start()
    time.sleep(0.2)
    rate = (count - c0) / 0.2
    try:
        out = {}

        def wait_step():
            before = count
            t0 = time.monotonic()
            out["status"] = r.begin_step(timeout=2.0)
            out["elapsed"] = time.monotonic() - t0
            out["advanced"] = count - before

        waiter = Bg(wait_step, name="waiter")
        waiter.result(30)
    finally:
        stop.set()
        t.join(10)
    assert out["status"] is ts.StepStatus.NOT_READY
    assert out["elapsed"] >= 1.9
    # With the GIL held for 2 s the counter would stand still; released, it keeps going
    # at a good share of its free-running rate.
    assert out["advanced"] > 0.25 * rate * out["elapsed"], (out, rate)
    ctx.fire(go)
    assert consume(r)[0]["index"] == 0
    assert w.result()["ok"]


@pytest.mark.timeout(60)
def test_writer_left_open_at_exit_is_closed_cleanly(ctx, remote_plane):
    """A script that never closes its writer (no `with`, module level) still ends the
    stream when it exits: readers drain and see the end, and nothing is left in /dev/shm
    or the rendezvous directory."""
    import subprocess
    import sys

    plane = remote_plane

    script = (
        "import numpy as np, twinstream as ts\n"
        f"w = ts.open({ctx.name!r}, 'w', dir={str(ctx.dir)!r}, min_readers=1, open_timeout=30)\n"
        "for i in range(5):\n"
        "    w.begin_step(); w._current.put('x', np.full(3, i)); w.end_step()\n"
        "print('PREFIX', open(w.contact_path).read().split('shm_prefix ')[1].split()[0], flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        with ts.open(ctx.name, "r", dir=str(ctx.dir), data_plane=plane, timeout=30) as r:
            seen = [step.index for step in r]
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert seen == list(range(5))
    prefix = out.split("PREFIX ")[1].strip()
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(prefix + "-")]
    assert not ctx.contact_path().exists()
