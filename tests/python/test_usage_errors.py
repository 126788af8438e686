"""Invalid usage gets a typed error that says what is wrong and what would be right;
help(ts.open) documents every option."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
from conftest import READER_OPTIONS, WRITER_OPTIONS, ts

pytestmark = pytest.mark.timeout(60)


def test_exception_hierarchy():
    assert issubclass(ts.TimeoutError, builtins.TimeoutError) and issubclass(ts.TimeoutError, ts.Error)
    assert issubclass(ts.ConnectionError, builtins.ConnectionError) and issubclass(ts.ConnectionError, ts.Error)
    assert issubclass(ts.ProtocolError, ts.ConnectionError)
    assert issubclass(ts.InvalidArgument, ValueError) and issubclass(ts.InvalidArgument, ts.Error)
    assert issubclass(ts.Error, Exception)


def test_help_documents_every_option():
    doc = ts.open.__doc__
    assert doc
    writer_part, _, reader_part = doc.partition("Reader options")
    assert reader_part, "no reader section in ts.open.__doc__"
    for key in WRITER_OPTIONS:
        assert f"\n{key} :" in writer_part, f"writer option {key} undocumented"
    for key in READER_OPTIONS:
        assert f"\n{key} :" in reader_part, f"reader option {key} undocumented"
    for key in ("block", "drop_oldest", "drop_newest", "inproc", "shm", "tcp"):
        assert key in doc


def test_documented_options_are_accepted(ctx):
    """Every option the doc names is one the parser takes (no unknown-option error)."""
    w = ctx.open_writer(
        queue_limit=3,
        queue_policy="drop_newest",
        min_readers=0,
        open_timeout=5,
        host="127.0.0.1",
        port=0,
        advertise="127.0.0.1",
        shm=False,
        heartbeat_interval=0.2,
        close_timeout=2,
    )
    r = ctx.open_reader(
        "inproc", group="g", policy="all", timeout=5, open_timeout=5, heartbeat_timeout=5
    )
    with w.step() as s:
        s.put("x", np.arange(3))
    assert r.begin_step(timeout=5) is ts.StepStatus.OK
    assert list(r.current_step["x"]) == [0, 1, 2]
    r.end_step()


@pytest.mark.parametrize("mode", ["w", "r"])
def test_unknown_option_lists_valid_options(ctx, mode):
    with pytest.raises(ts.InvalidArgument) as ei:
        ts.open(ctx.name, mode, dir=str(ctx.dir), queue_size=3)
    msg = str(ei.value)
    assert "queue_size" in msg
    for key in WRITER_OPTIONS if mode == "w" else READER_OPTIONS:
        assert key in msg, f"{key} missing from: {msg}"


def test_bad_option_values(ctx):
    with pytest.raises(ts.InvalidArgument) as ei:
        ctx.open_writer(queue_policy="fifo")
    for p in ("block", "drop_oldest", "drop_newest"):
        assert p in str(ei.value)
    with pytest.raises(ts.InvalidArgument):
        ctx.open_writer(queue_limit=0)
    with pytest.raises(ts.InvalidArgument):
        ctx.open_writer(queue_limit=-1)
    with pytest.raises(ts.InvalidArgument):
        ctx.open_writer(open_timeout="soon")
    with pytest.raises(ts.InvalidArgument):
        ctx.open_writer(shm="maybe")
    with pytest.raises(ts.InvalidArgument):
        ctx.open_writer(port=70000)
    with pytest.raises(ts.InvalidArgument) as ei:
        ctx.open_reader(None, data_plane="carrier-pigeon", open_timeout=0.1)
    assert "tcp" in str(ei.value) and "shm" in str(ei.value)
    with pytest.raises((ValueError, ts.InvalidArgument)):
        ctx.open_reader(None, timeout="never")
    with pytest.raises(ts.InvalidArgument):
        ctx.open_reader(None, policy="lottery", open_timeout=0.1)


@pytest.mark.parametrize("mode", ["x", "rw", "a", ""])
def test_mode_must_be_r_or_w(ctx, mode):
    with pytest.raises(ts.InvalidArgument) as ei:
        ts.open(ctx.name, mode, dir=str(ctx.dir))
    assert "'r'" in str(ei.value) and "'w'" in str(ei.value)


@pytest.mark.parametrize("name", ["", "a/b", "../up", ".hidden", "sp ace", "x" * 201])
def test_bad_stream_names(ctx, name):
    with pytest.raises(ts.InvalidArgument):
        ts.open(name, "w", dir=str(ctx.dir))


def test_writer_step_misuse(ctx):
    w = ctx.open_writer()
    with pytest.raises(ts.InvalidArgument):
        w.end_step()  # no step
    with pytest.raises(ts.InvalidArgument):
        w.abort_step()
    s = w.begin_step()
    with pytest.raises(ts.InvalidArgument):
        w.begin_step()  # twice
    s.put("x", np.zeros(3))
    with pytest.raises(ts.InvalidArgument) as ei:
        s.put("x", np.zeros(3, dtype=np.int32))  # same name, other dtype
    assert "x" in str(ei.value)
    with pytest.raises(ts.InvalidArgument):
        s.put("g", np.zeros((2, 2)), shape=(3, 3), start=(2, 0))  # block outside the shape
    with pytest.raises(ts.InvalidArgument):
        s.put("g", np.zeros((2, 2)), shape=(3, 3, 3), start=(0, 0, 0))  # rank mismatch
    with pytest.raises(ts.InvalidArgument):
        s.put("s", np.array(["a", "b"]))  # not numeric
    with pytest.raises(ts.InvalidArgument):
        s.put("o", np.array([object()]))
    with pytest.raises(ts.InvalidArgument):
        s.put("", np.zeros(1))
    w.end_step()
    # put and attributes outside a step
    with pytest.raises(ts.InvalidArgument) as ei:
        s.put("late", np.zeros(3))
    assert "outside a step" in str(ei.value) and ctx.name in str(ei.value)
    with pytest.raises(ts.InvalidArgument):
        s.reserve("late", (3,))
    w.close()
    with pytest.raises(ts.InvalidArgument):
        w.begin_step()  # after close
    w.close()  # idempotent


def test_with_step_aborts_on_exception(ctx):
    w = ctx.open_writer()
    r = ctx.open_reader("inproc")
    with pytest.raises(KeyError):
        with w.step() as s:
            s.put("x", np.full(2, -1))
            raise KeyError("boom")
    with w.step() as s:
        s.put("x", np.full(2, 7))
    assert r.begin_step(timeout=5) is ts.StepStatus.OK
    assert r.current_step.index == 0
    assert list(r.current_step["x"]) == [7, 7]
    r.end_step()
    assert w.stats()["steps"] == 1


def test_reader_step_misuse(ctx):
    w = ctx.open_writer()
    r = ctx.open_reader("inproc")
    with pytest.raises(ts.InvalidArgument):
        r.current_step
    with pytest.raises(ts.InvalidArgument):
        r.end_step()
    with w.step() as s:
        s.put("x", np.zeros(2))
    assert r.begin_step(timeout=5) is ts.StepStatus.OK
    with pytest.raises(ts.InvalidArgument):
        r.begin_step(timeout=0)  # twice
    r.end_step()
    r.close()
    with pytest.raises(ts.InvalidArgument):
        r.begin_step(timeout=0)
    r.close()  # idempotent


@pytest.mark.parametrize("unavailable", ["mpi", "fabric"])
def test_unavailable_data_plane_says_why(ctx, unavailable):
    planes = {name: (ok, why) for name, ok, why in ts.data_planes()}
    assert set(planes) >= {"inproc", "shm", "tcp", "mpi", "fabric"}
    assert all(planes[p][0] for p in ("inproc", "shm", "tcp"))
    if planes[unavailable][0]:
        pytest.skip(f"{unavailable} is built in here")
    assert planes[unavailable][1]
    ctx.open_writer()
    with pytest.raises(ts.Error) as ei:
        ctx.open_reader(unavailable, open_timeout=20)
    assert not isinstance(ei.value, ts.TimeoutError), "refused planes must not be retried until the timeout"
    msg = str(ei.value)
    assert unavailable in msg and "unavailable" in msg and ctx.name in msg, msg
    assert "without" in msg  # says why: built without it


def test_inproc_from_another_process_is_refused(ctx):
    w = ctx.spawn_writer("shm", steps=1, options={"min_readers": 1})  # a separate process
    w.wait_line("OPEN")
    with pytest.raises(ts.InvalidArgument) as ei:
        ctx.open_reader("inproc", open_timeout=20)
    msg = str(ei.value)
    assert "inproc" in msg and ctx.name in msg and "process" in msg, msg
    r = ctx.open_reader("auto")
    assert r.stats()["data_plane"] == "shm"


def test_auto_data_plane_choice(ctx):
    w = ctx.open_writer()
    r = ctx.open_reader("auto")
    assert r.stats()["data_plane"] == "inproc"
    w2 = ctx.open_writer(name=ctx.name + "-noshm", shm=False)
    r2 = ctx.open_reader("auto", name=ctx.name + "-noshm")
    assert r2.stats()["data_plane"] == "inproc"
    with pytest.raises(ts.InvalidArgument):
        ctx.open_reader("shm", name=ctx.name + "-noshm", open_timeout=10)
    del w, w2


def test_unusable_rendezvous_dir(ctx):
    missing = ctx.dir / "does-not-exist"
    with pytest.raises(ts.Error) as ei:
        ts.open(ctx.name, "w", dir=str(missing))
    assert str(missing) in str(ei.value)
    with pytest.raises(ts.TimeoutError) as ei:
        ts.open(ctx.name, "r", dir=str(missing), open_timeout=0.2)
    assert str(missing) in str(ei.value)
