"""Data conformance: every dtype, ranks 0..4 and zero-size dimensions, non-contiguous and
big-endian inputs, box selections over blocked global arrays, get(out=...), reserve.

The writer runs in another process (or, for inproc, in a thread of this process) and
publishes deterministic scenarios (procs/tsproc.py); this process reads them on the data
plane under test and compares with what the scenario says it must see.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_array_same, ts, tsproc
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(60)


def read_scenario(ctx, plane, scenario, steps, check):
    """Publishes ``steps`` steps of ``scenario`` and calls check(step, expected, r) on each
    while the step is held; then expects end of stream and a clean writer."""
    w = ctx.spawn_writer(plane, steps=steps, scenario=scenario, options={"min_readers": 1})
    r = ctx.open_reader(plane)
    assert r.stats()["data_plane"] == plane
    for i in range(steps):
        assert r.begin_step(timeout=30) is ts.StepStatus.OK
        step = r.current_step
        assert step.index == i
        check(step, tsproc.expected_step(scenario, i), r)
        r.end_step()
    assert r.begin_step(timeout=30) is ts.StepStatus.END_OF_STREAM
    res = w.result()
    assert res["ok"], res
    assert w.returncode == 0


def check_whole(step, exp, r):
    assert sorted(step.variables) == sorted(exp["arrays"])
    for name, e in exp["arrays"].items():
        info = step.variables[name]
        assert info.name == name
        assert info.dtype == e.dtype, name
        assert info.shape == e.shape, name
        assert info.blocks == exp["blocks"][name], name
        got = step[name]
        assert_array_same(got, e, name)
        assert not got.flags.writeable, f"{name}: arrays a reader gets must be read-only"
        assert_array_same(step.get(name), e, name + " via get()")


@pytest.mark.parametrize("steps", [2])
def test_every_dtype_round_trips_exactly(ctx, plane, steps):
    def check(step, exp, r):
        check_whole(step, exp, r)
        assert {step.variables["d_" + n].dtype for n in tsproc.DTYPES} == {np.dtype(n) for n in tsproc.DTYPES}

    read_scenario(ctx, plane, "dtypes", steps, check)


def test_ranks_1_to_4_and_zero_size_dims(ctx, plane):
    def check(step, exp, r):
        check_whole(step, exp, r)
        for k, shape in enumerate(tsproc.RANK_SHAPES):
            assert step[f"r{k}"].shape == shape

    read_scenario(ctx, plane, "ranks", 2, check)


def test_rank0_scalars_keep_rank0(ctx, plane):
    """A numpy scalar, a 0-d array or a Python number is a rank-0 variable: shape ()."""

    def check(step, exp, r):
        for name in ("s_f32", "s_0d", "s_bool", "s_int", "s_c", "s_ld", "s_py"):
            assert step.variables[name].shape == (), name
            assert step[name].shape == (), name
        check_whole(step, exp, r)
        assert step["s_bool"].dtype == np.bool_
        assert step["s_ld"].dtype == np.longdouble
        assert step["s_ld"][()] == np.longdouble(1) / 3

    read_scenario(ctx, plane, "scalars", 2, check)


def test_noncontiguous_and_big_endian_inputs_arrive_as_native_values(ctx, plane):
    def check(step, exp, r):
        check_whole(step, exp, r)
        for name in step.variables:
            assert step[name].dtype.isnative, name
        assert step["cast"].dtype == np.float32
        assert step["be_i4"].dtype == np.dtype("int32")
        assert step["be_c16"].dtype == np.dtype("complex128")

    read_scenario(ctx, plane, "layouts", 2, check)


def test_blocks_with_gaps_read_as_zeros(ctx, plane):
    def check(step, exp, r):
        check_whole(step, exp, r)
        g2 = step["g2"]
        assert g2[3, 0] == 0 and g2[7, 0] == 0 and g2[7, 9] != 0  # gap, gap, 1x1 block
        assert (step["g1"][12:15] == 0).all()
        off = step["off"]
        assert (off[:2] == 0).all() and (off[2:6, 3:8] != 0).all()
        # Exactly one block: the box that is the block itself.
        (start, count), = step.variables["off"].blocks
        assert_array_same(step.get("off", start, count), exp["arrays"]["off"][2:6, 3:8], "off block")

    read_scenario(ctx, plane, "boxes", 2, check)


def _random_box(rng, shape):
    start = tuple(int(rng.integers(0, s + 1)) for s in shape)
    count = tuple(int(rng.integers(0, s - b + 1)) for s, b in zip(shape, start))
    return start, count


def _slices(start, count):
    return tuple(slice(b, b + c) for b, c in zip(start, count))


def test_box_selections_match_numpy_slicing(ctx, plane):
    rng = np.random.default_rng(20240607)

    def check(step, exp, r):
        for name, e in exp["arrays"].items():
            boxes = [_random_box(rng, e.shape) for _ in range(25)]
            boxes += [((0,) * e.ndim, e.shape), ((0,) * e.ndim, (0,) * e.ndim)]
            boxes += exp["blocks"][name]  # each block exactly
            for k, (start, count) in enumerate(boxes):
                want = e[_slices(start, count)]
                if k % 2:
                    out = np.full(count, 1, dtype=e.dtype)
                    got = step.get(name, start, count, out=out)
                    assert got is out
                else:
                    got = step.get(name, start, count)
                    assert not got.flags.writeable
                assert_array_same(got, want, f"{name}[{start}+{count}]")
            # start alone: to the end of every axis
            start = tuple(s // 2 for s in e.shape)
            assert_array_same(step.get(name, start), e[tuple(slice(b, None) for b in start)], name)

    read_scenario(ctx, plane, "boxes", 2, check)


def test_box_selections_hypothesis(ctx, plane):
    names = sorted(tsproc.expected_step("boxes", 0)["arrays"])

    def check(step, exp, r):
        arrays = exp["arrays"]

        @settings(max_examples=60, deadline=None, database=None, derandomize=True)
        @given(st.data())
        def one_box(data):
            name = data.draw(st.sampled_from(names))
            e = arrays[name]
            start = tuple(data.draw(st.integers(0, s)) for s in e.shape)
            count = tuple(data.draw(st.integers(0, s - b)) for s, b in zip(e.shape, start))
            want = e[_slices(start, count)]
            if data.draw(st.booleans()):
                out = np.empty(count, dtype=e.dtype)
                assert step.get(name, start, count, out=out) is out
                got = out
            else:
                got = step.get(name, start, count)
            assert_array_same(got, want, f"{name}[{start}+{count}]")

        one_box()

    read_scenario(ctx, plane, "boxes", 1, check)


def test_get_out_and_selection_errors(ctx, plane):
    def check(step, exp, r):
        e = exp["arrays"]["a3"]
        start, count = (1, 2, 0), (3, 4, 5)
        with pytest.raises(ValueError):
            step.get("a3", start, count, out=np.empty((3, 4, 4), dtype=e.dtype))  # too small
        with pytest.raises(ValueError):
            step.get("a3", start, count, out=np.empty((3, 4, 6), dtype=e.dtype))  # too large
        with pytest.raises(ValueError):
            step.get("a3", start, count, out=np.empty((3, 4, 10), dtype=e.dtype)[:, :, ::2])  # strided
        ro = np.empty(count, dtype=e.dtype)
        ro.setflags(write=False)
        with pytest.raises(ValueError):
            step.get("a3", start, count, out=ro)
        with pytest.raises(ts.InvalidArgument):
            step.get("a3", (5, 0, 0), (3, 1, 1))  # runs past the global shape
        with pytest.raises(ts.InvalidArgument):
            step.get("a3", (0, 0), (1, 1))  # wrong rank
        # The step is still fine after refused calls.
        out = np.empty(count, dtype=e.dtype)
        step.get("a3", start, count, out=out)
        assert_array_same(out, e[_slices(start, count)], "a3 after errors")
        # Unknown variable: the message lists what the step has.
        with pytest.raises(ts.InvalidArgument) as ei:
            step["nope"]
        for name in exp["arrays"]:
            assert name in str(ei.value)
        with pytest.raises(ValueError):
            step.get("nope", (0,), (1,))
        a = step["a3"]
        with pytest.raises(ValueError):
            a[0, 0, 0] = 1.0  # read-only view

    read_scenario(ctx, plane, "boxes", 1, check)


def test_get_out_with_wrong_dtype_is_refused(ctx, plane):
    """An out= buffer of the right byte size but another dtype must not be filled with
    reinterpreted bytes."""

    def check(step, exp, r):
        count = (7, 9, 5)
        out = np.zeros(count, dtype=np.int64)  # a3 is float64: same itemsize
        with pytest.raises(ValueError):
            step.get("a3", (0, 0, 0), count, out=out)

    read_scenario(ctx, plane, "boxes", 1, check)


def test_reserve_zero_copy_fill_is_seen(ctx, plane):
    def check(step, exp, r):
        check_whole(step, exp, r)
        assert step.attrs == {"i": step.index}
        assert step["empty"].shape == (0, 3)
        assert step["zero_d"].shape == ()
        assert step.variables["tiles"].blocks == [((0, 0), (2, 6)), ((2, 0), (2, 6))]

    read_scenario(ctx, plane, "reserve", 3, check)


def test_large_steps(ctx, plane):
    """Steps of several MiB (larger than socket buffers and the first segment)."""

    def check(step, exp, r):
        check_whole(step, exp, r)
        e = exp["arrays"]["tiles"]
        got = step.get("tiles", (1000, 1000), (48, 24))  # straddles the block edge
        assert_array_same(got, e[1000:1048, 1000:1024], "tiles box")
        # Into a page-aligned array from ts.empty, the whole variable and a box.
        out = ts.empty(e.shape, e.dtype)
        assert out.ctypes.data % 4096 == 0 and out.flags.writeable
        assert step.get("tiles", out=out) is out
        assert_array_same(out, e, "tiles into ts.empty")
        box = ts.empty((48, 24), e.dtype)
        assert_array_same(step.get("tiles", (1000, 1000), (48, 24), out=box),
                          e[1000:1048, 1000:1024], "tiles box into ts.empty")

    read_scenario(ctx, plane, "large", 2, check)


@pytest.mark.parametrize("shape,dtype", [((), np.float64), (0, np.int8), (5, np.uint8),
                                         ((3, 1000), np.float32), ((2, 3, 4096), np.complex128)])
def test_empty_is_page_aligned_like_numpy_empty(shape, dtype):
    a = ts.empty(shape, dtype)
    ref = np.empty(shape, dtype)
    assert a.shape == ref.shape and a.dtype == ref.dtype
    assert a.flags.c_contiguous and a.flags.writeable
    if a.nbytes:
        assert a.ctypes.data % 4096 == 0
    a[...] = 1  # its memory is its own
    assert (a == 1).all()


def test_reserve_in_process_is_writable_view(ctx):
    w = ctx.open_writer()
    with w.step() as s:
        buf = s.reserve("y", (4, 3), np.int32)
        assert buf.shape == (4, 3) and buf.dtype == np.int32 and buf.flags.writeable
        assert buf.flags.c_contiguous
        buf[...] = 5
        one = s.reserve("n", 8)  # int shape, default dtype
        assert one.shape == (8,) and one.dtype == np.float64
        one[:] = 1.0


def test_put_copies_and_reserve_does_not(ctx):
    """put copies (the caller may reuse its array at once); an inproc reader sees reserved
    memory itself, without a copy."""
    w = ctx.open_writer()
    r = ctx.open_reader("inproc")
    src = np.arange(6, dtype=np.float64)
    with w.step() as s:
        s.put("x", src)
        src[:] = -1  # reused right after put
        buf = s.reserve("y", (5,), np.int32)
        buf[:] = 42
    assert r.begin_step(timeout=10) is ts.StepStatus.OK
    step = r.current_step
    assert_array_same(step["x"], np.arange(6, dtype=np.float64), "x")
    y = step["y"]
    assert_array_same(y, np.full(5, 42, dtype=np.int32), "y")
    assert np.shares_memory(y, buf), "inproc reader got a copy of reserved memory"
    r.end_step()
