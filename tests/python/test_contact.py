"""The contact file: its contents and mode, stale files of dead writers, tampered tokens."""

from __future__ import annotations

import os
import stat
import time

import pytest
from conftest import (
    Bg,
    check_counter_records,
    closed_port,
    consume,
    dead_pid,
    host_id,
    read_contact,
    ts,
    write_stale_contact,
)

pytestmark = pytest.mark.timeout(60)


def test_contact_file_mode_0600_and_contents(ctx):
    old = os.umask(0)  # whatever the umask says, the file is 0600
    try:
        w = ctx.open_writer()
    finally:
        os.umask(old)
    path = ctx.contact_path()
    assert w.contact_path == str(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    c = read_contact(path)
    assert c["host"] == "127.0.0.1"
    assert int(c["port"]) > 0
    assert w.address == f"{c['host']}:{c['port']}"
    assert len(c["token"]) == 64 and int(c["token"], 16) >= 0
    assert c["pid"] == str(os.getpid())
    assert c["host_id"] == host_id()
    assert "shm_prefix" in c
    # No temporary file left next to it.
    assert sorted(p.name for p in ctx.dir.iterdir() if p.name.startswith(ctx.name)) == [path.name]
    w.close()
    assert not path.exists()


def test_tokens_differ_between_writers(ctx):
    w1 = ctx.open_writer()
    t1 = read_contact(ctx.contact_path())["token"]
    w1.close()
    w2 = ctx.open_writer()
    t2 = read_contact(ctx.contact_path())["token"]
    w2.close()
    assert t1 != t2


def test_second_live_writer_is_refused(ctx):
    w = ctx.open_writer()
    with pytest.raises(ts.Error) as ei:
        ts.open(ctx.name, "w", dir=str(ctx.dir))
    assert ctx.name in str(ei.value) and "live writer" in str(ei.value)
    assert read_contact(ctx.contact_path())["pid"] == str(os.getpid())
    w.close()


def test_twinstream_dir_environment_variable(ctx, monkeypatch):
    monkeypatch.setenv("TWINSTREAM_DIR", str(ctx.dir))
    w = ts.open(ctx.name, "w", close_timeout=5)
    try:
        assert ctx.contact_path().exists()
        r = ts.open(ctx.name, "r", timeout=10, data_plane="inproc")
        with w.step() as s:
            s.put("x", [1, 2])
        assert r.begin_step(timeout=10) is ts.StepStatus.OK
        r.end_step()
        r.close()
    finally:
        w.close()


@pytest.mark.parametrize("where", ["same_host", "other_host"])
def test_new_writer_replaces_stale_contact_file(ctx, plane, where):
    pid = dead_pid()
    stale_token = write_stale_contact(ctx.contact_path(), pid=pid, port=closed_port(), same_host=where == "same_host")
    w = ctx.spawn_writer(plane, steps=3, options={"min_readers": 1})
    w.wait_line("OPEN")
    c = read_contact(ctx.contact_path())
    assert c["token"] != stale_token
    assert c["pid"] == str(w.pid)
    r = ctx.open_reader(plane)
    records = consume(r)
    assert [rec["index"] for rec in records] == [0, 1, 2]
    check_counter_records(records)
    assert w.result()["ok"]
    log = w.stderr()
    assert "stale contact file" in log and str(pid) in log, log


def test_reader_waits_behind_stale_contact_file_until_a_writer_appears(ctx, plane):
    pid = dead_pid()
    write_stale_contact(ctx.contact_path(), pid=pid, port=closed_port())
    box = []

    def open_and_read():
        r = ctx.open_reader(plane, open_timeout=30)
        box.append(r)
        return consume(r)

    bg = Bg(open_and_read, name="reader")
    time.sleep(0.7)
    assert bg.alive, f"the reader gave up on a stale contact file: {bg.exception(1)!r}"
    w = ctx.spawn_writer(plane, steps=3, options={"min_readers": 1})
    records = bg.result(40)
    assert [rec["index"] for rec in records] == [0, 1, 2]
    assert box[0].stats()["data_plane"] == plane
    assert w.result()["ok"]


def test_reader_times_out_on_stale_contact_file_alone(ctx, plane):
    pid = dead_pid()
    write_stale_contact(ctx.contact_path(), pid=pid, port=closed_port())
    with pytest.raises(ts.TimeoutError) as ei:
        ctx.open_reader(plane, open_timeout=0.5)
    assert ctx.name in str(ei.value)


def test_tampered_token_is_refused_quickly_with_connection_error(ctx, plane):
    w = ctx.spawn_writer(plane, steps=2, options={"min_readers": 1})
    w.wait_line("OPEN")
    text = ctx.contact_path().read_text()
    c = read_contact(ctx.contact_path())
    bad = ("0" if c["token"][0] != "0" else "1") + c["token"][1:]
    other = ctx.dir / "tampered"
    other.mkdir()
    fd = os.open(str(other / f"{ctx.name}.twin"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, text.replace(c["token"], bad).encode())
    os.close(fd)

    t0 = time.monotonic()
    with pytest.raises(ts.ConnectionError) as ei:
        ctx.open_reader(plane, dir=str(other), open_timeout=20, timeout=20)
    elapsed = time.monotonic() - t0
    assert not isinstance(ei.value, ts.TimeoutError)
    assert isinstance(ei.value, ConnectionError)
    assert "token" in str(ei.value) and ctx.name in str(ei.value)
    assert elapsed < 15, f"refusal took {elapsed:.1f} s: retried until the timeout?"
    # The writer is unharmed: a reader with the real token streams.
    r = ctx.open_reader(plane)
    assert [rec["index"] for rec in consume(r)] == [0, 1]
    res = w.result()
    assert res["ok"], res
    assert "token" in w.stderr()
