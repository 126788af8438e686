"""Crashes: a writer or a reader killed with SIGKILL in the middle of a stream.

A reader whose writer dies gets ts.ConnectionError promptly (never a hang), and a writer
whose reader dies goes on serving the others. These need two processes, so the writer
killing test runs on the planes where the reader is in another process (shm, tcp); for
inproc the reader would die with the writer.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from conftest import Bg, check_counter_records, consume, read_contact, ts

pytestmark = pytest.mark.timeout(90)

PROMPT = 10.0  # seconds within which a reader must learn that its writer died


def _shm_entries(prefix: str) -> list[str]:
    if not prefix or not os.path.isdir("/dev/shm"):
        return []
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefix + "-")]


def test_writer_killed_readers_get_connection_error(ctx, remote_plane):
    plane = remote_plane
    k = 2
    never = ctx.signal_file("never")
    w = ctx.spawn_writer(
        plane, steps=100, options={"min_readers": 2, "queue_limit": 4}, pauses={str(k): never}
    )
    # heartbeat_timeout far above PROMPT: the death must be noticed from the socket, not
    # from missing heartbeats.
    waiting = ctx.open_reader(plane, heartbeat_timeout=60, timeout=60)
    holding = ctx.open_reader(plane, heartbeat_timeout=60, timeout=60)
    prefix = read_contact(ctx.contact_path())["shm_prefix"]

    killed = threading.Event()
    holds = threading.Event()

    def wait_for_steps():
        seen = []
        try:
            for step in waiting:
                seen.append(step.index)
            return ("end", seen, None)
        except ts.ConnectionError as e:
            return ("error", seen, e, time.monotonic())
        except BaseException as e:
            return ("other", seen, e, time.monotonic())

    def hold_a_step():
        for _ in range(k + 1):
            assert holding.begin_step(timeout=30) is ts.StepStatus.OK
            if holding.current_step.index == k:
                break
            holding.end_step()
        holds.set()
        killed.wait(30)
        step = holding.current_step
        try:
            step.get("x")  # the bytes may still be mapped (shm); a pull must fail (tcp)
            holding.end_step()
            status = holding.begin_step(timeout=60)
            return ("no error", status, None, time.monotonic())
        except ts.ConnectionError as e:
            return ("error", None, e, time.monotonic())
        except BaseException as e:
            return ("other", None, e, time.monotonic())

    a = Bg(wait_for_steps, name="waiting-reader")
    b = Bg(hold_a_step, name="holding-reader")
    w.wait_line(f"STEP {k}")
    assert holds.wait(30)
    time.sleep(0.2)  # let the waiting reader block in begin_step
    segments_before = _shm_entries(prefix)
    t_kill = time.monotonic()
    w.kill()
    killed.set()

    for who, bg in (("waiting", a), ("holding", b)):
        kind, _, err, t_err = bg.result(PROMPT + 30)
        assert kind == "error", f"{who} reader: {kind} {err!r}"
        assert isinstance(err, ConnectionError)
        assert ctx.name in str(err), str(err)
        assert t_err - t_kill < PROMPT, f"{who} reader took {t_err - t_kill:.1f} s to notice"
    assert a.result(1)[1] == list(range(k + 1))

    # The dead writer's contact file is stale now; a new writer replaces it and removes
    # the shared memory the dead one left behind.
    assert ctx.contact_path().exists()
    w2 = ctx.open_writer()
    assert f"pid {w.pid}" in ctx.test_stderr()
    assert read_contact(ctx.contact_path())["pid"] == str(os.getpid())
    assert segments_before, "a writer with shm=True keeps its steps in /dev/shm"
    assert _shm_entries(prefix) == [], "the dead writer's shared memory was left behind"
    w2.close()


def test_reader_killed_writer_goes_on_and_other_reader_is_untouched(ctx, plane):
    n, k = 12, 3
    w = ctx.spawn_writer(plane, steps=n, options={"min_readers": 2, "queue_limit": 2, "queue_policy": "block"})
    survivor = ctx.open_reader(plane)
    # The victim is another process (shm or tcp; an inproc reader cannot be killed alone).
    victim_plane = plane if plane != "inproc" else "shm"
    victim = ctx.spawn_reader(
        options={"data_plane": victim_plane, "dir": str(ctx.dir)},
        hold_at=k,
        hold_file=ctx.signal_file("never"),
    )
    recs = Bg(consume, survivor, name="survivor")
    victim.wait_line(f"HOLD {k}", timeout=30)
    victim.kill()
    records = recs.result(60)
    assert [rec["index"] for rec in records] == list(range(n))
    assert all(rec["dropped"] == 0 for rec in records)
    check_counter_records(records)
    res = w.result(60)
    assert res["ok"], res
    assert res["stats"]["steps"] == n
    assert w.returncode == 0


def test_reader_killed_while_pulling_over_tcp(ctx):
    """A tcp reader dies between steps with its data connection open; the writer and a
    second tcp reader carry on."""
    n, k = 8, 2
    w = ctx.spawn_writer("tcp", steps=n, options={"min_readers": 2, "queue_limit": 2})
    survivor = ctx.open_reader("tcp")
    victim = ctx.spawn_reader(options={"data_plane": "tcp", "dir": str(ctx.dir)}, hold_at=k, hold_file=ctx.signal_file("never"))
    recs = Bg(consume, survivor, name="survivor")
    victim.wait_line(f"HOLD {k}", timeout=30)
    victim.kill()
    assert [rec["index"] for rec in recs.result(60)] == list(range(n))
    assert w.result(60)["ok"]


def test_hung_writer_is_detected_by_heartbeat_timeout(ctx, remote_plane):
    """A writer that stops (SIGSTOP: alive, sockets open, silent) is declared dead after
    the reader's heartbeat_timeout: ConnectionError, not an endless wait."""
    plane = remote_plane
    never = ctx.signal_file("never")
    w = ctx.spawn_writer(plane, steps=3, options={"min_readers": 1, "heartbeat_interval": 0.1}, pauses={"0": never})
    r = ctx.open_reader(plane, heartbeat_timeout=1.0, timeout=60)
    assert r.begin_step(timeout=30) is ts.StepStatus.OK
    r.end_step()
    # Idle but alive: heartbeats keep it from being declared dead.
    assert r.begin_step(timeout=2.0) is ts.StepStatus.NOT_READY
    os.kill(w.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(ts.ConnectionError) as ei:
            for _ in range(100):  # bounded: each call waits at most 1 s
                assert r.begin_step(timeout=1.0) is ts.StepStatus.NOT_READY
        assert time.monotonic() - t0 < PROMPT
        assert ctx.name in str(ei.value) and "heartbeat_timeout" in str(ei.value)
    finally:
        os.kill(w.pid, signal.SIGCONT)
        w.kill()
    ctx.open_writer().close()  # replaces the stale contact file, removing the dead one's memory


def test_slow_consumer_is_not_mistaken_for_a_dead_writer(ctx, plane):
    """Holding a step longer than heartbeat_timeout is the reader's business: the next
    begin_step gets the next step."""
    w = ctx.spawn_writer(plane, steps=3, options={"min_readers": 1, "heartbeat_interval": 0.1})
    r = ctx.open_reader(plane, heartbeat_timeout=0.5)
    assert r.begin_step(timeout=30) is ts.StepStatus.OK
    time.sleep(1.5)
    r.end_step()
    records = consume(r)
    assert [rec["index"] for rec in records] == [1, 2]
    assert w.result()["ok"]


def test_reader_that_leaves_mid_stream_releases_its_steps(ctx, plane):
    n = 8
    w = ctx.spawn_writer(plane, steps=n, options={"min_readers": 2, "queue_limit": 2})
    stays = ctx.open_reader(plane)
    leaves = ctx.open_reader(plane)
    recs = Bg(consume, stays, name="stays")
    assert leaves.begin_step(timeout=30) is ts.StepStatus.OK
    leaves.close()  # while holding step 0
    records = recs.result(60)
    assert [rec["index"] for rec in records] == list(range(n))
    res = w.result()
    assert res["ok"] and res["stats"]["dropped"] == 0, res
