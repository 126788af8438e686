"""Queue policies with a slow reader.

block: the writer waits on a full queue; nothing is lost, indices are contiguous.
drop_oldest / drop_newest: the writer never waits; the reader sees index skips, and the
drops are counted on both sides.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import check_counter_records, consume, ts

pytestmark = pytest.mark.timeout(60)


def test_block_policy_writer_waits_and_nothing_is_lost(ctx, plane):
    n = 8
    w = ctx.spawn_writer(
        plane, steps=n, options={"queue_policy": "block", "queue_limit": 2, "min_readers": 1}
    )
    r = ctx.open_reader(plane)
    # Hold step 0: one more step fits in the queue, then the writer must wait.
    assert r.begin_step(timeout=30) is ts.StepStatus.OK
    first = r.current_step
    assert first.index == 0
    w.wait_line("STEP 1")
    time.sleep(0.5)
    assert not w.has_line("STEP 2"), "the writer published past a full queue under block"
    r.end_step()
    records = [{"index": 0, "dropped": 0}]
    records += consume(r, sleep=0.02)
    assert [rec["index"] for rec in records] == list(range(n))
    assert all(rec["dropped"] == 0 for rec in records)
    check_counter_records(records[1:])
    assert r.stats()["dropped"] == 0
    assert r.stats()["steps"] == n
    res = w.result()
    assert res["ok"], res
    stats = res["stats"]
    assert stats["steps"] == n
    assert stats["dropped"] == 0
    assert stats["blocked_s"] > 0
    assert w.returncode == 0


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_drop_policies_never_block_and_count_drops(ctx, plane, policy):
    n = 10
    go = ctx.signal_file()
    w = ctx.spawn_writer(
        plane,
        steps=n,
        options={"queue_policy": policy, "queue_limit": 2, "min_readers": 1},
        pauses={str(n - 2): go},
    )
    r = ctx.open_reader(plane)
    assert r.begin_step(timeout=30) is ts.StepStatus.OK
    records = [{"index": r.current_step.index, "dropped": r.current_step.dropped}]
    assert records[0]["index"] == 0
    # While this reader sleeps on step 0, the writer gets through n - 1 steps.
    w.wait_line(f"STEP {n - 2}", timeout=30)
    r.end_step()
    # Drain what was kept, then let the writer publish its last step and close.
    for _ in range(n):
        status = r.begin_step(timeout=1.0)
        if status is not ts.StepStatus.OK:
            break
        step = r.current_step
        assert (step["x"] == step.index).all(), f"step {step.index} carries another step's data"
        records.append({"index": step.index, "dropped": step.dropped})
        r.end_step()
    assert status is ts.StepStatus.NOT_READY
    ctx.fire(go)
    records += consume(r)
    check_counter_records(records[-1:])

    indices = [rec["index"] for rec in records]
    dropped = [rec["dropped"] for rec in records]
    assert indices == sorted(set(indices)), indices
    assert indices[0] == 0 and indices[-1] == n - 1, indices
    skipped = n - len(indices)
    assert skipped > 0, f"no step was dropped under {policy}: {indices}"
    # Every drop is reported, no later than the first step after it.
    assert dropped == sorted(dropped)
    for idx, d in zip(indices, dropped):
        assert d >= sum(1 for k in range(idx) if k not in indices), (indices, dropped)
    assert dropped[-1] == skipped, (indices, dropped)
    assert r.stats()["dropped"] == skipped
    assert r.stats()["steps"] == len(indices)

    res = w.result()
    assert res["ok"], res
    stats = res["stats"]
    assert stats["steps"] == n
    assert stats["dropped"] == skipped
    assert stats["blocked_s"] == 0
    assert w.returncode == 0


def _publish(w, n: int) -> None:
    for i in range(n):
        with w.step() as s:
            s.put("x", np.full(4, i, dtype=np.int64))


def _take(r, limit: int) -> list[tuple[int, int]]:
    """(index, dropped so far) of the steps the reader gets before it would wait."""
    got = []
    for _ in range(limit):
        if r.begin_step(timeout=0.5) is not ts.StepStatus.OK:
            break
        got.append((r.current_step.index, r.current_step.dropped))
        r.end_step()
    return got


def test_drop_oldest_keeps_the_newest_steps(ctx, plane):
    """Under drop_oldest the steps kept are the newest ones (writer in this process, so
    the order of events is fixed)."""
    w = ctx.open_writer(queue_policy="drop_oldest", queue_limit=3)
    r = ctx.open_reader(plane)
    _publish(w, 10)
    got = _take(r, 10)
    # Step 0 was handed to the reader at once; of the rest the newest queue_limit survive
    # (one queue place is held by step 0 while the reader has it).
    assert [i for i, _ in got][-2:] == [8, 9]
    assert got[-1][1] == 10 - len(got)
    assert w.stats()["dropped"] == 10 - len(got)


def test_drop_newest_keeps_the_oldest_steps(ctx, plane):
    w = ctx.open_writer(queue_policy="drop_newest", queue_limit=3)
    r = ctx.open_reader(plane)
    _publish(w, 10)
    got = [index for index, _ in _take(r, 10)]
    assert got == [0, 1, 2]
    assert r.stats()["dropped"] == 7
    assert w.stats()["dropped"] == 7
