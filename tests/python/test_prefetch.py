"""Prefetch: under queue_policy=block the writer hands a reader up to `prefetch` steps
ahead of its end_step. Whatever the depth, a reader sees every step once, in order, and
a reader that dies holding several steps releases all of them."""

import pytest
from conftest import Bg, check_counter_records, consume, ts

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("prefetch", [1, 2, 8])
def test_every_step_once_in_order_whatever_the_prefetch(ctx, plane, prefetch):
    n = 30
    w = ctx.spawn_writer(plane, steps=n, options={"min_readers": 1, "queue_limit": 4})
    r = ctx.open_reader(plane, prefetch=prefetch)
    records = consume(r)
    assert [rec["index"] for rec in records] == list(range(n))
    check_counter_records(records)
    assert w.result()["ok"]


def test_reader_leaving_with_prefetched_steps_releases_them(ctx, plane):
    """A reader that holds several handed steps and leaves: the writer finishes (it would
    block forever on those steps otherwise) and another reader gets every step."""
    n = 20
    w = ctx.spawn_writer(plane, steps=n, options={"min_readers": 2, "queue_limit": 4})
    greedy = ctx.open_reader(plane, prefetch=4)
    steady = ctx.open_reader(plane, prefetch=1)
    others = Bg(consume, steady, name="steady")
    assert greedy.begin_step(timeout=30) is ts.StepStatus.OK
    # Greedy holds step 0 and has steps 1-3 handed to it: the queue (4) is full of steps
    # it owes, so the writer cannot pass step 3 until greedy goes.
    w.wait_line("STEP 3")
    assert not w.has_line("STEP 5")
    greedy.close()  # leaves holding them, never acknowledging
    records = others.result(30)
    assert [rec["index"] for rec in records] == list(range(n))
    assert w.result()["ok"]


def test_prefetch_must_be_positive(ctx):
    with pytest.raises(ValueError, match="prefetch"):
        ts.open(ctx.name, "r", dir=str(ctx.dir), prefetch=0, open_timeout=1)
