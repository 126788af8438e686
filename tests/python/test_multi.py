"""Several readers at once: different data planes on one stream, reader groups."""

from __future__ import annotations

import pytest
from conftest import Bg, check_counter_records, consume

pytestmark = pytest.mark.timeout(60)


def test_one_stream_feeds_inproc_shm_and_tcp_readers_at_once(ctx):
    n = 10
    w = ctx.spawn_writer("inproc", steps=n, options={"min_readers": 3, "queue_limit": 2})
    remote = {
        plane: ctx.spawn_reader(options={"data_plane": plane, "dir": str(ctx.dir)}, sleep=0.01)
        for plane in ("shm", "tcp")
    }
    local = ctx.open_reader("inproc")
    records = consume(local)
    assert [rec["index"] for rec in records] == list(range(n))
    check_counter_records(records)
    for plane, h in remote.items():
        res = h.result(60)
        assert res["ok"], h.describe()
        assert res["indices"] == list(range(n)), plane
        assert res["values_ok"], plane
        assert res["stats"]["data_plane"] == plane
        assert h.returncode == 0
    assert w.result()["ok"]


def test_group_members_with_policy_all_each_get_every_step(ctx, plane):
    n = 6
    w = ctx.spawn_writer(plane, steps=n, options={"min_readers": 3})
    members = [ctx.open_reader(plane, group="trainer", policy="all") for _ in range(2)]
    other = ctx.open_reader(plane, group="analysis")
    bgs = [Bg(consume, r, name=f"reader-{i}") for i, r in enumerate(members + [other])]
    for bg in bgs:
        recs = bg.result(40)
        assert [rec["index"] for rec in recs] == list(range(n))
        check_counter_records(recs)
    assert w.result()["ok"]
