"""Pre-processing on the stream: writer and reader placement give the same bytes over
every data plane, both sides report their operator time per step, the reader's cache is
bounded and evicts the least recently used result, and a bad pipeline is refused when it
is defined (or at the first put), never in the middle of a stream."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import Bg, ts, tsproc

STEPS = 4
FIELD_OPS = [ts.ops.cast("float32"), ts.ops.standardize(axis=-1), ts.ops.patches((4, 4))]
IMG_OPS = [ts.ops.cast("float32"), ts.ops.log1p(), ts.ops.clip(0.5, 5.0),
           ts.ops.subsample((2, 2)), ts.ops.stats()]
FIELD_KEY = ts.ops.Pipeline(FIELD_OPS).key
IMG_KEY = ts.ops.Pipeline(IMG_OPS).key


def expected_outputs() -> list[tuple[np.ndarray, np.ndarray]]:
    """What both placements must give: the pipelines run locally, running statistics
    folded in step by step as the writer does."""
    state = ts.ops.RunningState()
    out = []
    for i in range(STEPS):
        field, img = tsproc.fields_step(i)
        out.append((ts.ops.apply(field, FIELD_OPS, state=state), ts.ops.apply(img, IMG_OPS)))
    return out


def read_fields(r) -> list[dict]:
    records = []
    for step in r:
        records.append({
            "index": step.index,
            "field": np.array(step["field"]),
            "img": np.array(step["img"]),
            "sub": np.array(step.get("img", ops=[ts.ops.subsample((2, 2))])),
            "box": np.array(step.get("field", start=(1, 0, 0, 0), count=(2, 4, 4, 3))),
            "info": step.variables["field"],
            "attrs": {k: v for k, v in step.attrs.items() if k.startswith("ops.")},
            "ops_seconds": step.ops_seconds,
        })
    return records


def run_placement(ctx, plane: str, placement: str) -> tuple[list[dict], dict, dict]:
    name = f"{ctx.name}_{placement}"
    w = ctx.spawn_writer(plane, steps=STEPS, name=name, scenario="fields",
                         options={"min_readers": 1, "queue_limit": 2},
                         define=[["field", FIELD_KEY, placement], ["img", IMG_KEY, placement]])
    r = ctx.open_reader(plane, name=name)
    records = read_fields(r)
    stats = r.stats()
    r.close()
    result = w.result(60)
    assert result["ok"], result
    return records, stats, result["stats"]


def test_placements_give_the_same_bytes(ctx, plane):
    expected = expected_outputs()
    by_placement = {p: run_placement(ctx, plane, p) for p in ("writer", "reader")}
    for placement, (records, rstats, wstats) in by_placement.items():
        assert [rec["index"] for rec in records] == list(range(STEPS)), placement
        for i, rec in enumerate(records):
            field, img = expected[i]
            what = f"{placement} placement, step {i}"
            # Bit for bit, running statistics included (the reader uses the writer's).
            assert rec["field"].dtype == field.dtype and rec["field"].shape == field.shape, what
            assert rec["field"].tobytes() == field.tobytes(), what
            assert rec["img"].tobytes() == img.tobytes(), what
            assert rec["info"].shape == field.shape and rec["info"].dtype == field.dtype, what
            assert np.array_equal(rec["box"], field[1:3], equal_nan=True), what
            assert np.array_equal(rec["sub"], img[::2, ::2]), what
            a = rec["attrs"]
            assert a["ops.field.pipeline"] == FIELD_KEY and a["ops.img.pipeline"] == IMG_KEY
            assert a["ops.field.placement"] == placement
            assert "ops.field.1.standardize.mean" in a and "ops.field.seconds" in a
        # Each side reports the time its operators took, per step.
        if placement == "writer":
            assert all(rec["attrs"]["ops.img.seconds"] > 0 for rec in records)
            assert all(rec["attrs"]["ops.img.4.stats.count"] == 400 for rec in records)
            assert wstats["ops_steps"] == STEPS and wstats["ops_seconds"] > 0
        else:
            assert all(rec["attrs"]["ops.img.seconds"] == 0 for rec in records)
            assert all(rec["ops_seconds"] > 0 for rec in records)
            assert rstats["ops_runs"] >= 2 * STEPS and rstats["ops_seconds"] > 0
            # The writer still keeps the running statistics (for the readers' standardize).
            assert wstats["ops_steps"] == STEPS
    # Writer placement: the output is what travels (smaller here: float32 and subsampled).
    assert by_placement["writer"][1]["bytes"] < by_placement["reader"][1]["bytes"]


def test_writer_placement_feeds_shuffle_batches(ctx):
    """A shuffle group samples the processed rows: the pipeline ran once per step."""
    w = ctx.open_writer(min_readers=1, queue_limit=4)
    w.define("x", [ts.ops.cast("float32"), ts.ops.clip(0, 250)], "writer")
    r = ctx.open_reader("inproc", group="g", policy="shuffle", window=2, batch_size=4,
                        variables=["x"], seed=3)
    rows = {}

    def write():
        for i in range(4):
            with w.step() as s:
                s.put("x", np.arange(8 * 2, dtype=np.int64).reshape(8, 2) * 20 + i)
        w.close()

    writer = Bg(write)
    for batch in r:
        x = batch["x"]
        assert x.dtype == np.float32
        for (step, row), values in zip(batch.sample_id, x):
            rows[(int(step), int(row))] = values
    writer.result(30)
    assert len(rows) == 32
    for (step, row), values in rows.items():
        assert np.array_equal(values, np.clip([row * 40 + step, row * 40 + 20 + step], 0, 250))


def test_reader_placement_on_shuffle_batches_runs_row_wise_pipelines_only(ctx):
    """A row-wise pipeline runs over each batch (its rows equal the steps' outputs); one
    that depends on the whole step (running statistics) is refused naming the fix."""
    w = ctx.open_writer(min_readers=1, queue_limit=4)
    w.define("x", [ts.ops.cast("float32"), ts.ops.clip(0, 250)], "reader")
    w.define("y", [ts.ops.cast("float32"), ts.ops.standardize()], "reader")
    r = ctx.open_reader("inproc", group="g", policy="shuffle", window=2, batch_size=4,
                        variables=["x", "y"], seed=3)
    rows = {}

    def write():
        for i in range(4):
            with w.step() as s:
                s.put("x", np.arange(8 * 2, dtype=np.int64).reshape(8, 2) * 20 + i)
                s.put("y", np.arange(8, dtype=np.int64) + i)
        w.close()

    writer = Bg(write)
    for batch in r:
        assert batch.variables["x"].dtype == np.float32
        x = batch["x"]
        for (step, row), values in zip(batch.sample_id, x):
            rows[(int(step), int(row))] = values
        with pytest.raises(ts.InvalidArgument) as e:
            batch["y"]
        assert "'y'" in str(e.value) and "placement='writer'" in str(e.value)
    writer.result(30)
    assert len(rows) == 32
    for (step, row), values in rows.items():
        assert np.array_equal(values, np.clip([row * 40 + step, row * 40 + 20 + step], 0, 250))


def test_reader_cache_is_bounded_and_evicts_least_recently_used(ctx):
    ops = [ts.ops.cast("float32"), ts.ops.log1p()]
    result_bytes = 64 * 64 * 4
    bound = result_bytes * 5 // 2  # room for two results
    w = ctx.open_writer(min_readers=1, queue_limit=8)
    w.define("x", ops, "reader", dtype=np.float64, shape=(64, 64))
    r = ctx.open_reader("inproc", cache="on", cache_bytes=bound)
    raw = [np.random.default_rng(i).random((64, 64)) for i in range(6)]

    def write():
        for x in raw:
            with w.step() as s:
                s.put("x", x)
        w.close()

    writer = Bg(write)
    for step in r:
        i = step.index
        if i == 5:
            assert r.cached(3, "x") is not None  # step 3 is now more recent than step 4
        a = step["x"]
        b = step["x"]  # a re-read: the same memory, no recompute
        assert np.shares_memory(a, b)
        assert a.tobytes() == ts.ops.apply(raw[i], ops).tobytes()  # cached == recomputed
        assert r.stats()["cache_bytes"] <= bound
    writer.result(30)
    assert r.cached(5, "x") is not None and r.cached(3, "x") is not None
    assert r.cached(4, "x") is None  # least recently used when step 5 came in
    assert r.cached(2, "x") is None
    kept = r.cached(3, "x")
    assert kept.tobytes() == ts.ops.apply(raw[3], ops).tobytes()
    s = r.stats()
    # 6 steps read twice (6 misses, 6 hits), four cached() hits and two misses.
    assert (s["cache_hits"], s["cache_misses"], s["cache_evictions"]) == (10, 8, 4), s
    assert s["cache_entries"] == 2 and s["cache_bytes"] == 2 * result_bytes
    assert s["cache_max_bytes"] == bound


def test_reader_pipeline_without_cache_recomputes(ctx):
    w = ctx.open_writer(min_readers=1, queue_limit=4)
    r = ctx.open_reader("inproc")

    def write():
        with w.step() as s:
            s.put("y", np.arange(100, dtype=np.float64))
        w.close()

    writer = Bg(write)
    for step in r:
        a = step.get("y", ops=[ts.ops.log1p()])
        b = step.get("y", ops=[ts.ops.log1p()])
        assert not np.shares_memory(a, b) and a.tobytes() == b.tobytes()
        into = np.empty(100)
        assert step.get("y", out=into) is into and np.array_equal(into, np.arange(100))
        assert step.get("y", ops=[ts.ops.log1p()], out=into) is into
        assert into.tobytes() == a.tobytes()
        # A reader's own running statistics: kept per variable, updated per step read.
        z = step.get("y", ops=[ts.ops.standardize()])
        assert abs(float(z.mean())) < 1e-6
    writer.result(30)
    assert r.stats()["ops_runs"] == 4 and "cache_hits" not in r.stats()
    assert r.cached(0, "y", [ts.ops.log1p()]) is None


def test_bad_pipelines_are_refused_at_define(ctx):
    w = ctx.open_writer()
    stream = ctx.name

    def refused(*args, **kw) -> str:
        with pytest.raises(ts.InvalidArgument) as e:
            w.define(*args, **kw)
        msg = str(e.value)
        assert stream in msg, msg
        return msg

    msg = refused("x", "cast(to=float32)|blur(radius=2)")
    assert "'x'" in msg and "unknown operator 'blur'" in msg and "standardize" in msg
    msg = refused("img", [ts.ops.log1p()], dtype=np.uint8, shape=(40, 40))
    assert "'img'" in msg and "log1p" in msg and "cast('float32')" in msg
    msg = refused("f", [ts.ops.patches((64, 64))], dtype=np.float32, shape=(32, 100))
    assert "patch 64x64 is larger than the array 32x100" in msg and "smaller patch" in msg
    msg = refused("f", [ts.ops.cast("float32")], "gpu")
    assert "placement must be 'writer' or 'reader'" in msg
    msg = refused("f", [ts.ops.python(np.sqrt)])
    assert "step.get(name, ops=[...])" in msg
    msg = refused("f", ["log1p"])
    assert "ts.ops operators" in msg
    msg = refused("f", [ts.ops.log1p()], shape=(3,))
    assert "dtype= and shape=" in msg
    with w.step():
        msg = refused("f", [ts.ops.log1p()])
        assert "before begin_step" in msg


def test_bad_pipeline_without_shape_is_refused_at_the_first_put(ctx):
    w = ctx.open_writer(min_readers=1, queue_limit=4)
    w.define("f", [ts.ops.cast("float32"), ts.ops.patches((64, 64))], "writer")
    r = ctx.open_reader("inproc")
    s = w.begin_step()
    with pytest.raises(ts.InvalidArgument) as e:
        s.put("f", np.zeros((32, 100)))
    msg = str(e.value)
    assert ctx.name in msg and "'f'" in msg and "patches" in msg and "refused at put" in msg
    w.abort_step()
    # Defined again to fit, the stream goes on; the refused put published nothing.
    w.define("f", [ts.ops.cast("float32"), ts.ops.patches((16, 50))], "writer")

    def write():
        with w.step() as s:
            s.put("f", np.ones((32, 100)))
        w.close()

    writer = Bg(write)
    got = [(step.index, np.array(step["f"])) for step in r]
    writer.result(30)
    assert len(got) == 1 and got[0][1].shape == (4, 16, 50) and got[0][1].dtype == np.float32


def test_history_newcomer_reads_the_processed_steps_without_recompute(ctx):
    """A writer-placed result is the published step: a reader joining later gets the kept
    steps as processed, and the writer ran its operators once per step."""
    ops = [ts.ops.cast("float32"), ts.ops.log1p()]
    w = ctx.open_writer(history=2, queue_limit=4)
    w.define("x", ops, "writer")
    for i in range(3):
        with w.step() as s:
            s.put("x", np.full(8, float(i)))
    r = ctx.open_reader("inproc")
    closer = Bg(w.close)
    got = {step.index: np.array(step["x"]) for step in r}
    closer.result(30)
    assert sorted(got) == [1, 2]
    for i, x in got.items():
        assert x.tobytes() == ts.ops.apply(np.full(8, float(i)), ops).tobytes()
    assert w.stats()["ops_steps"] == 3
