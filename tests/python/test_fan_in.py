"""Fan-in from an ensemble: independent writer processes publish into one logical stream
(member=...), a reader receives every member's steps, merged fairly and tagged with their
source; members may start late, finish early or crash."""

from __future__ import annotations

import signal
from collections import defaultdict

import numpy as np
import pytest
from conftest import ts

pytestmark = pytest.mark.timeout(120)


def _members(ctx, plane, names, steps, queue_limit=2, **kw):
    opts = {"min_readers": 1, "queue_limit": queue_limit}
    return {m: ctx.spawn_writer(plane, steps=steps, options={"member": m, **opts}, **kw) for m in names}


def _by_source(res) -> dict[str, list[int]]:
    out = defaultdict(list)
    for src, i in zip(res["sources"], res["indices"]):
        out[src].append(i)
    return dict(out)


def test_reader_gets_every_members_steps_merged_fairly(ctx, remote_plane):
    names, n = ["run-00", "run-01", "run-02"], 12
    writers = _members(ctx, remote_plane, names, n, queue_limit=n)
    # A slow reader with a deep prefetch: every member always has steps waiting at the
    # reader (even if its writer is descheduled for a while), so fairness shows in the order.
    for w in writers.values():
        w.wait_line("OPEN", 60)
    r = ctx.spawn_reader(options={"members": 3, "data_plane": remote_plane, "prefetch": 8},
                         sleep=0.02)
    res = r.result(90)
    for w in writers.values():
        assert w.result(60)["ok"]
    assert res["ok"] and res["values_ok"], r.describe()
    assert _by_source(res) == {m: list(range(n)) for m in names}
    # No member starves another: while all have steps left, any 6 consecutive steps
    # include every member.
    srcs = res["sources"]
    first_full = max(srcs.index(m) for m in names)  # every member has been heard from
    last_full = min(max(i for i, s in enumerate(srcs) if s == m) for m in names)
    for k in range(first_full, last_full - 5):
        assert set(srcs[k : k + 6]) == set(names), srcs
    assert {m["member"]: m["state"] for m in res["members"]} == {m: "ended" for m in names}


def test_crashed_member_ends_its_substream_and_the_others_go_on(ctx, remote_plane):
    names, n = ["a", "b", "c"], 10
    go = ctx.signal_file()
    writers = _members(ctx, remote_plane, ["a", "c"], n)
    writers["b"] = ctx.spawn_writer(
        remote_plane, steps=n, options={"member": "b", "min_readers": 1}, pauses={"3": go}
    )
    r = ctx.spawn_reader(options={"members": 3, "data_plane": remote_plane}, tolerate_member_failures=True)
    writers["b"].wait_line("STEP 3", 60)
    writers["b"].kill()
    ctx.fire(go)
    res = r.result(90)
    assert writers["a"].result(60)["ok"] and writers["c"].result(60)["ok"]
    assert res["ok"] and res["values_ok"], r.describe()
    got = _by_source(res)
    assert got["a"] == list(range(n)) and got["c"] == list(range(n))
    assert got.get("b", []) == list(range(len(got.get("b", []))))  # a prefix, in order
    states = {m["member"]: m for m in res["members"]}
    assert states["b"]["state"] == "failed" and "'b'" in states["b"]["error"], states
    for err in res.get("step_errors", []):  # a step of b being read when it died
        assert "member 'b'" in err and "the other members go on" in err
    assert states["a"]["state"] == states["c"]["state"] == "ended"


def test_member_starting_late_is_picked_up(ctx, remote_plane):
    early = _members(ctx, remote_plane, ["early"], 5)
    r = ctx.spawn_reader(options={"members": 2, "data_plane": remote_plane})
    r.wait_line("JOINED", 60)  # members=2: it opened with only one of them there
    early["early"].result(60)
    late = ctx.spawn_writer(remote_plane, steps=5, options={"member": "late", "min_readers": 1})
    res = r.result(90)
    assert late.result(60)["ok"]
    assert res["ok"], r.describe()
    assert _by_source(res) == {"early": list(range(5)), "late": list(range(5))}


def test_fan_in_in_one_process(ctx):
    a = ctx.open_writer(member="x")
    b = ctx.open_writer(member="y")
    r = ctx.open_reader("inproc", members=2)
    for w, v in ((a, 1.0), (b, 2.0)):
        with w.step() as s:
            s.put("x", np.full(3, v))
    got = {}
    for _ in range(2):
        assert r.begin_step(timeout=30) is ts.StepStatus.OK
        step = r.current_step
        got[step.source] = float(step["x"][0])
        r.end_step()
    assert got == {"x": 1.0, "y": 2.0}
    a.close()
    b.close()
    assert r.begin_step(timeout=30) is ts.StepStatus.END_OF_STREAM
    assert [m["state"] for m in r.sources] == ["ended", "ended"]


def test_member_names_are_checked(ctx):
    with pytest.raises(ValueError, match="member='a/b'"):
        ctx.open_writer(member="a/b")
    with pytest.raises(ValueError, match="member=''"):
        ctx.open_writer(member="")


def test_members_option_keeps_the_stream_open_for_that_many(ctx):
    w = ctx.open_writer(member="only")
    r = ctx.open_reader("tcp", members=2)
    with w.step() as s:
        s.put("x", np.zeros(2))
    w.close()
    assert r.begin_step(timeout=30) is ts.StepStatus.OK
    r.end_step()
    # The one member has ended, but two were announced: the stream is not over.
    assert r.begin_step(timeout=0.5) is ts.StepStatus.NOT_READY
    with pytest.raises(ts.TimeoutError, match="no ensemble member appeared"):
        ctx.open_reader("tcp", name=ctx.name + "-none", members=1, open_timeout=0.3)


def test_killed_member_before_the_reader_opens_counts_as_failed(ctx):
    w = ctx.spawn_writer("shm", steps=3, options={"member": "dead", "min_readers": 1})
    w.wait_line("OPEN", 60)
    w.kill()
    alive = ctx.spawn_writer("shm", steps=3, options={"member": "alive", "min_readers": 1})
    alive.wait_line("OPEN", 60)
    r = ctx.open_reader("shm", members=2)
    got = [(s.source, s.index) for s in r]
    assert got == [("alive", 0), ("alive", 1), ("alive", 2)]
    states = {m["member"]: m["state"] for m in r.sources}
    assert states == {"alive": "ended", "dead": "failed"}
    assert signal.SIGKILL  # the dead member was killed, not closed
