"""Attributes: stream-level (w.attrs) and step-level (s.attrs), every kind (bool, int,
float, str, numpy arrays of any dtype and rank), values changing between steps."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_attrs_same, ts, tsproc

pytestmark = pytest.mark.timeout(60)

STEPS = 4


def test_stream_and_step_attributes(ctx, plane):
    w = ctx.spawn_writer(plane, steps=STEPS, scenario="attrs", options={"min_readers": 1})
    r = ctx.open_reader(plane)
    seen_stream = []
    for i in range(STEPS):
        assert r.begin_step(timeout=30) is ts.StepStatus.OK
        step = r.current_step
        exp = tsproc.expected_step("attrs", i)
        assert step.index == i
        # Step attributes: exactly what this step set (nothing carried over).
        assert_attrs_same(step.attrs, exp["attrs"], f"step {i} attrs")
        # Stream attributes: everything set so far, the latest value of each.
        assert_attrs_same(r.attrs, exp["stream_attrs"], f"stream attrs at step {i}")
        seen_stream.append(r.attrs)
        assert (step["x"] == i).all()
        r.end_step()
    assert r.begin_step(timeout=30) is ts.StepStatus.END_OF_STREAM
    assert seen_stream[1]["n_atoms"] == 1000 and seen_stream[2]["n_atoms"] == 2000
    assert "box" not in seen_stream[1] and "box" in seen_stream[2]
    res = w.result()
    assert res["ok"], res


def test_stream_attribute_is_seen_from_the_next_step_on(ctx, plane):
    """Stream attributes are "as of the current step": one set after step 1 was published
    shows from step 2 on, even when the reader gets to step 1 only later."""
    w = ctx.open_writer(queue_limit=4)
    r = ctx.open_reader(plane)
    w.attrs["phase"] = "a"
    for i in range(3):
        if i == 2:
            w.attrs["phase"] = "b"
            w.attrs["extra"] = 1
        with w.step() as s:
            s.put("x", np.full(2, i))
    seen = []
    for _ in range(3):
        assert r.begin_step(timeout=10) is ts.StepStatus.OK
        seen.append((r.current_step.index, dict(r.attrs)))
        r.end_step()
    assert seen == [(0, {"phase": "a"}), (1, {"phase": "a"}), (2, {"phase": "b", "extra": 1})]


def test_rank0_array_attribute_keeps_rank0(ctx, plane):
    w = ctx.open_writer()
    r = ctx.open_reader(plane)
    w.attrs["origin"] = np.array(1.5)
    with w.step() as s:
        s.attrs["t"] = np.array(7, dtype=np.int32)
    assert r.begin_step(timeout=10) is ts.StepStatus.OK
    t = r.current_step.attrs["t"]
    assert isinstance(t, np.ndarray) and t.shape == () and t.dtype == np.int32 and t[()] == 7
    o = r.attrs["origin"]
    assert isinstance(o, np.ndarray) and o.shape == () and o[()] == 1.5
    r.end_step()


def test_attribute_kinds(ctx, plane):
    """Kinds a user may set, and the type a reader gets back for each (writer in this
    process; the reader on each plane)."""
    w = ctx.open_writer()
    r = ctx.open_reader(plane)
    values = {
        "b": (True, True),
        "i": (-(2**63), -(2**63)),
        "f": (float("inf"), float("inf")),
        "s": ("x" * 1000, "x" * 1000),
        "np_bool": (np.bool_(False), False),
        "np_int": (np.uint8(200), 200),
        "np_float": (np.float64(0.1), 0.1),
        "tuple": ((1.0, 2.0), np.array([1.0, 2.0])),
        "c128": (np.array([[1j, 2], [3, 4j]]), np.array([[1j, 2], [3, 4j]])),
        "be": (np.arange(4, dtype=">i8"), np.arange(4, dtype=np.int64)),
        "strided": (np.arange(10.0)[::3], np.array([0.0, 3.0, 6.0, 9.0])),
        "empty": (np.zeros((0, 2), dtype=np.float32), np.zeros((0, 2), dtype=np.float32)),
        "r4": (np.arange(24, dtype=np.int16).reshape(1, 2, 3, 4), np.arange(24, dtype=np.int16).reshape(1, 2, 3, 4)),
    }
    with w.step() as s:
        for k, (v, _) in values.items():
            s.attrs[k] = v
    assert r.begin_step(timeout=10) is ts.StepStatus.OK
    assert_attrs_same(r.current_step.attrs, {k: e for k, (_, e) in values.items()})
    r.end_step()


@pytest.mark.parametrize("dtype", ["longdouble", "clongdouble"])
def test_extended_precision_array_attribute(ctx, plane, dtype):
    """Array attributes take every dtype variables take, longdouble and clongdouble too."""
    w = ctx.open_writer()
    r = ctx.open_reader(plane)
    value = (np.arange(1, 4, dtype=np.longdouble) / 3).astype(dtype)
    with w.step() as s:
        s.attrs["ld"] = value
    assert r.begin_step(timeout=10) is ts.StepStatus.OK
    assert_attrs_same(r.current_step.attrs, {"ld": value})
    r.end_step()


def test_attribute_errors(ctx):
    w = ctx.open_writer()
    with pytest.raises(ts.InvalidArgument):
        w.attrs["big"] = "x" * (2 << 20)  # above the 1 MiB limit
    with pytest.raises((ts.InvalidArgument, TypeError)):
        w.attrs["obj"] = object()
    with pytest.raises(ts.InvalidArgument):
        w.attrs[""] = 1
    with w.step() as s:
        s.attrs["ok"] = 1
    with pytest.raises(ts.InvalidArgument) as ei:
        s.attrs["late"] = 2  # the step has ended
    assert "outside a step" in str(ei.value)
