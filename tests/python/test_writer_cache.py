"""The writer-side cache: readers ask the writer to run their pipelines (``writer_ops``),
and each distinct (step, variable, pipeline) is computed once, whoever asks, and re-served
from the cache to other groups, history newcomers and re-readers; its byte bound holds,
evicted results are recomputed to the same bytes, and a bad request is refused at open."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import (T_ERROR, T_HELLO, assert_array_same, decode_error, frame, hello_payload,
                      read_contact, recv_frame, ts, tsproc, wait_closed, wait_until, wire_str)

STEPS = 4
IMG_OPS = [ts.ops.cast("float32"), ts.ops.log1p(), ts.ops.clip(0.5, 5.0),
           ts.ops.subsample((2, 2)), ts.ops.stats()]
# Running statistics: the writer folds each step in once, whoever asks first.
FIELD_OPS = [ts.ops.cast("float32"), ts.ops.standardize(axis=-1)]
OTHER_OPS = [ts.ops.cast("float16")]


def expected(steps: int = STEPS) -> list[dict[str, np.ndarray]]:
    state = ts.ops.RunningState()
    out = []
    for i in range(steps):
        field, img = tsproc.fields_step(i)
        out.append({"field": ts.ops.apply(field, FIELD_OPS, state=state),
                    "img": ts.ops.apply(img, IMG_OPS),
                    "img_other": ts.ops.apply(img, OTHER_OPS),
                    "img_raw": img, "field_raw": field})
    return out


def read_steps(r, n: int, names: tuple[str, ...] = ("img", "field")) -> list[dict]:
    """Reads ``n`` steps (bounded by the reader's timeout) and keeps their arrays and ops
    attributes."""
    out = []
    for _ in range(n):
        status = r.begin_step(30)
        assert status is ts.StepStatus.OK, status
        step = r.current_step
        rec = {"index": step.index, "vars": set(step.variables),
               "attrs": {k: v for k, v in step.attrs.items() if k.startswith("ops.")}}
        for name in names:
            if name in step.variables:
                rec[name] = np.array(step[name])
        out.append(rec)
        r.end_step()
    return out


def finish(r) -> None:
    assert r.begin_step(30) is ts.StepStatus.END_OF_STREAM
    r.close()


def test_groups_asking_the_same_pipeline_share_one_compute(ctx, plane):
    go = ctx.signal_file()
    w = ctx.spawn_writer(plane, steps=STEPS, scenario="fields", pauses={"-1": go},
                         options={"min_readers": 4, "queue_limit": STEPS})
    ops = {"img": IMG_OPS, "field": FIELD_OPS}
    ra = ctx.open_reader(plane, group="a", writer_ops=ops)
    rb = ctx.open_reader(plane, group="b", writer_ops=ops)
    rc = ctx.open_reader(plane, group="c", writer_ops={"img": OTHER_OPS})
    rd = ctx.open_reader(plane, group="d")
    ctx.fire(go)
    exp = expected()
    got = {k: read_steps(r, STEPS) for k, r in (("a", ra), ("b", rb), ("c", rc), ("d", rd))}
    for r in (ra, rb, rc, rd):
        finish(r)
    result = w.result(60)
    assert result["ok"], result
    stats = result["stats"]

    for i in range(STEPS):
        for k in ("a", "b"):
            rec = got[k][i]
            assert rec["index"] == i
            assert_array_same(rec["img"], exp[i]["img"], f"{k} img step {i}")
            # Running standardize: the writer's statistics, to float32 rounding.
            np.testing.assert_allclose(rec["field"], exp[i]["field"], rtol=1e-5, atol=1e-5,
                                       equal_nan=True)
            assert rec["attrs"]["ops.img.placement"] == "writer"
            assert rec["attrs"]["ops.img.pipeline"] == ts.ops.Pipeline(IMG_OPS).key
            assert "ops.img.4.stats.min" in rec["attrs"], rec["attrs"]
        # Exactly one of the two groups computed each result; the other got it cached.
        for var in ("img", "field"):
            flags = [got[k][i]["attrs"][f"ops.{var}.cached"] for k in ("a", "b")]
            assert sorted(flags) == [False, True], (i, var, flags)
        # Both got the very same bytes.
        assert_array_same(got["a"][i]["field"], got["b"][i]["field"], f"field step {i}")
        assert_array_same(got["c"][i]["img"], exp[i]["img_other"], f"c img step {i}")
        assert got["c"][i]["attrs"]["ops.img.cached"] is False
        assert_array_same(got["c"][i]["field"], exp[i]["field_raw"], f"c field step {i}")
        assert_array_same(got["d"][i]["img"], exp[i]["img_raw"], f"d img step {i}")
        assert not got["d"][i]["attrs"], got["d"][i]["attrs"]

    # Per step: img and field for a/b (computed once, then hit), img for c (its own).
    assert stats["cache_misses"] == 3 * STEPS, stats
    assert stats["cache_hits"] == 2 * STEPS, stats
    assert stats["cache_evictions"] == 0 and stats["cache_rejected"] == 0, stats
    assert stats["cache_max_bytes"] == 256 << 20
    assert stats["ops_seconds"] > 0


def test_history_newcomer_and_tiny_cache(ctx):
    """Kept steps re-read by a newcomer are hits while their results are cached; a cache
    of two entries evicts (or does not keep) the rest, its bound holds, and what is
    recomputed after an eviction is the same bytes (running statistics included)."""
    plane = "shm"
    go, done = ctx.signal_file(), ctx.signal_file("done")
    cache_bytes = 2 * 4096  # every result here is charged one page
    pauses = {"-1": go, str(STEPS - 1): done}
    w = ctx.spawn_writer(plane, steps=STEPS, scenario="fields", pauses=pauses,
                         options={"min_readers": 2, "queue_limit": STEPS, "history": STEPS,
                                  "cache_bytes": cache_bytes})
    ops = {"img": IMG_OPS, "field": FIELD_OPS}
    ra = ctx.open_reader(plane, group="a", writer_ops=ops, prefetch=1)
    rb = ctx.open_reader(plane, group="b", writer_ops=ops, prefetch=1)
    ctx.fire(go)
    exp = expected()
    first = {k: read_steps(r, STEPS) for k, r in (("a", ra), ("b", rb))}
    # Every step is kept (history): a newcomer gets all of them again.
    rn = ctx.open_reader(plane, group="late", writer_ops=ops)
    late = read_steps(rn, STEPS)
    ctx.fire(done)
    for r in (ra, rb, rn):
        finish(r)
    result = w.result(60)
    assert result["ok"], result
    before, stats = result["stats_before_close"], result["stats"]

    for i in range(STEPS):
        for rec in (first["a"][i], first["b"][i], late[i]):
            assert_array_same(rec["img"], exp[i]["img"], f"img step {i}")
            np.testing.assert_allclose(rec["field"], exp[i]["field"], rtol=1e-5, atol=1e-5,
                                       equal_nan=True)
        # A recompute after an eviction standardizes with the values of the first run.
        assert_array_same(late[i]["field"], first["a"][i]["field"], f"late field step {i}")
    requests = 3 * 2 * STEPS
    assert stats["cache_hits"] + stats["cache_misses"] == requests, stats
    assert stats["cache_misses"] > 2 * STEPS, stats  # two entries cannot hold 8 results
    assert stats["cache_evictions"] + stats["cache_rejected"] > 0, stats
    assert before["cache_bytes"] <= cache_bytes and before["cache_max_bytes"] == cache_bytes
    assert before["cache_entries"] <= 2


def test_history_newcomer_hits_with_room(ctx):
    plane = "tcp"
    go, done = ctx.signal_file(), ctx.signal_file("done")
    pauses = {"-1": go, str(STEPS - 1): done}
    w = ctx.spawn_writer(plane, steps=STEPS, scenario="fields", pauses=pauses,
                         options={"min_readers": 1, "queue_limit": STEPS, "history": STEPS})
    ra = ctx.open_reader(plane, writer_ops={"img": IMG_OPS})
    ctx.fire(go)
    first = read_steps(ra, STEPS)
    rn = ctx.open_reader(plane, writer_ops={"img": IMG_OPS})
    late = read_steps(rn, STEPS)
    ctx.fire(done)
    for r in (ra, rn):
        finish(r)
    result = w.result(60)
    assert result["ok"], result
    stats = result["stats"]
    assert [rec["attrs"]["ops.img.cached"] for rec in first] == [False] * STEPS
    assert [rec["attrs"]["ops.img.cached"] for rec in late] == [True] * STEPS
    for a, b in zip(first, late):
        assert_array_same(a["img"], b["img"])
    assert stats["cache_misses"] == STEPS and stats["cache_hits"] == STEPS, stats


def test_absent_variable_and_failing_pipeline(ctx):
    plane = "shm"
    w = ctx.spawn_writer(plane, steps=2, scenario="fields", options={"min_readers": 1})
    r = ctx.open_reader(plane, writer_ops={"nothere": OTHER_OPS,
                                           "img": [ts.ops.patches((64, 64))]})
    recs = read_steps(r, 2, names=("field",))
    finish(r)
    result = w.result(60)
    assert result["ok"], result
    for i, rec in enumerate(recs):
        assert "nothere" not in rec["vars"]
        assert not any(k.startswith("ops.nothere.") for k in rec["attrs"])
        # The pipeline does not fit this step's img: the variable is left out, with why.
        assert "img" not in rec["vars"]
        assert "patches" in rec["attrs"]["ops.img.error"], rec["attrs"]
        assert_array_same(rec["field"], tsproc.fields_step(i)[0])
    assert result["stats"]["cache_hits"] == 0 and result["stats"]["cache_misses"] == 2


def test_bad_requests_are_refused_at_open(ctx):
    w = ctx.open_writer()
    with pytest.raises(ts.InvalidArgument, match="frobnicate"):
        ctx.open_reader("tcp", writer_ops="img=frobnicate()")
    with pytest.raises(ts.InvalidArgument, match="python"):
        ctx.open_reader("tcp", writer_ops={"img": [ts.ops.python(lambda a: a, "double")]})
    with pytest.raises(ts.InvalidArgument, match="variable=<pipeline>"):
        ctx.open_reader("tcp", writer_ops="cast(to=float16)")
    with pytest.raises(ts.InvalidArgument, match="shuffle"):
        ctx.open_reader("tcp", writer_ops={"img": OTHER_OPS}, policy="shuffle")
    # The writer checks too: a hello with a bad request (not from our reader) is refused
    # with the variable and the operator named.
    contact = read_contact(ctx.contact_path())
    token = bytes.fromhex(contact["token"])
    s = ctx.track_socket(socket.create_connection((contact["host"], int(contact["port"])),
                                                  timeout=10))
    payload = hello_payload(token) + wire_str("") + wire_str("img=frobnicate()")
    s.sendall(frame(T_HELLO, payload))
    f = recv_frame(s)
    assert f is not None and f[1] == T_ERROR, f
    code, msg = decode_error(f[2])
    assert code == 3, (code, msg)
    assert "writer_ops" in msg and "'img'" in msg and "frobnicate" in msg and ctx.name in msg, msg
    assert wait_closed(s, 10)
    w.close()


@pytest.mark.timeout(120)
def test_readme_example_runs_as_written(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                 if "writer_ops=" in b)
    (tmp_path / "example.py").write_text(block)
    env = dict(os.environ, TWINSTREAM_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["8", "8", "8"], out.stdout


def test_results_are_released_on_end_step_and_departure(ctx):
    """An entry is pinned while a reader holds its step: it goes with the step once the
    reader acknowledges it, or once the reader leaves without doing so."""
    w = ctx.open_writer(queue_limit=4)
    ra = ctx.open_reader("tcp", group="a", writer_ops={"img": IMG_OPS})
    rb = ctx.open_reader("tcp", group="b", writer_ops={"img": IMG_OPS})
    assert wait_until(lambda: w.stats()["readers"] == 2, 10)
    for i in range(2):
        with w.step() as s:
            s.put("img", tsproc.fields_step(i)[1])
    for r in (ra, rb):
        assert r.begin_step(30) is ts.StepStatus.OK
        assert_array_same(np.array(r.current_step["img"]), expected(1)[0]["img"])
    st = w.stats()
    assert st["cache_entries"] >= 1 and st["cache_bytes"] >= 4096, st
    ra.end_step()
    rb.end_step()
    # Step 0 acknowledged by both: its result goes. Step 1 is held (prefetched) by both.
    assert wait_until(lambda: w.stats()["cache_entries"] == 1, 10), w.stats()
    ra.close()
    rb.close()  # left holding step 1: its result goes too
    assert wait_until(lambda: w.stats()["cache_entries"] == 0, 10), w.stats()
    st = w.stats()
    assert st["cache_bytes"] == 0 and st["cache_misses"] == 2 and st["cache_hits"] == 2, st
    w.close()
