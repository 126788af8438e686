"""The control path between a writer and its readers: on one host, announcements and
acknowledgements go through a shared-memory ring beside the TCP connection (reader
option control="auto"); control="socket" keeps them on the connection. Both must carry
the same stream, whatever the data plane, the step sizes and who waits for whom."""

from __future__ import annotations

import pytest
import tsproc
from conftest import Bg, check_counter_records, consume, ts

pytestmark = pytest.mark.timeout(120)

N = 12
# Heartbeats also wake a sleeping side: far apart, they cannot hide a missed doorbell.
QUIET_WRITER = {"min_readers": 1, "heartbeat_interval": 30}
PATIENT_READER = {"heartbeat_timeout": 100}


@pytest.mark.parametrize("control", ["auto", "socket"])
def test_stream_over_either_control_path(ctx, plane, control):
    w = ctx.spawn_writer(plane, steps=N, options={"min_readers": 1})
    r = ctx.open_reader(plane, control=control)
    records = consume(r)
    assert [rec["index"] for rec in records] == list(range(N))
    check_counter_records(records)
    # On one host "auto" takes the ring; the stats say which path the reader is on.
    assert r.stats()["control"] == ("ring" if control == "auto" else "socket")
    assert w.result()["ok"]


def test_announcements_larger_than_the_ring_cross_it_in_parts(ctx, plane):
    """Each announcement carries a 400 kB attribute, more than the 256 KiB ring holds:
    the writer fills the ring, waits until the reader makes room and is rung."""
    n = 6
    w = ctx.spawn_writer(plane, steps=n, scenario="big_attrs", options={"min_readers": 1})
    r = ctx.open_reader(plane, prefetch=4)
    records = consume(r)
    assert [rec["index"] for rec in records] == list(range(n))
    for rec in records:
        assert rec["attrs"]["blob"] == tsproc.big_blob(rec["index"])
        assert (rec["x"] == rec["index"]).all()
    assert r.stats()["control"] == "ring"
    assert w.result()["ok"]


@pytest.mark.parametrize("queue_limit,prefetch", [(1, 1), (2, 2), (4, 4)])
def test_writer_waiting_for_room_is_woken_by_acknowledgements(ctx, queue_limit, prefetch):
    """A writer faster than its reader waits on a full queue; the ring's acknowledgements
    must wake it. Heartbeats (which also wake the writer's service thread) are 30 s apart
    here, so a missed wake-up stalls the stream past the test's timeout."""
    n = 200
    w = ctx.spawn_writer("shm", steps=n, options=QUIET_WRITER | {"queue_limit": queue_limit})
    r = ctx.open_reader("shm", prefetch=prefetch, **PATIENT_READER)
    seen = 0
    for step in r:
        assert step.index == seen
        seen += 1
    assert seen == n
    res = w.result()
    assert res["ok"] and res["steps_done"] == n, res


def test_reader_asleep_between_steps_is_rung(ctx):
    """Steps far apart: the reader sleeps in poll() and the writer rings it for each (with
    heartbeats 30 s apart, a missed ring stalls the stream past the test's timeout)."""
    n = 8
    w = ctx.spawn_writer("shm", steps=n, sleep=0.05, options=QUIET_WRITER)
    r = ctx.open_reader("shm", **PATIENT_READER)
    records = consume(r)
    assert [rec["index"] for rec in records] == list(range(n))
    assert w.result()["ok"]


def test_two_readers_one_on_each_path(ctx):
    """A writer serves a ring reader and a socket reader at once, the same steps to each."""
    w = ctx.spawn_writer("shm", steps=N, options={"min_readers": 2})
    ring = ctx.open_reader("shm")
    sock = ctx.open_reader("shm", control="socket")
    a = Bg(consume, ring, name="ring-reader")
    b = Bg(consume, sock, name="socket-reader")
    for got in (a.result(60), b.result(60)):
        assert [rec["index"] for rec in got] == list(range(N))
        check_counter_records(got)
    assert ring.stats()["control"] == "ring" and sock.stats()["control"] == "socket"
    assert w.result()["ok"]


def test_bad_control_option_is_refused(ctx):
    with pytest.raises(ts.InvalidArgument) as e:
        ctx.open_reader("shm", control="pigeon")
    assert "control" in str(e.value) and "auto" in str(e.value) and "socket" in str(e.value)
