"""Hostile clients on the writer's control port, talking raw bytes, while a real reader
streams: each is refused or dropped with a log line, and neither the writer nor the real
reader notices anything else."""

from __future__ import annotations

import mmap
import os
import socket
import struct
import time
import uuid

import numpy as np
import pytest
from conftest import (
    PROTOCOL_VERSION,
    RING_CAPACITY,
    RING_DATA,
    RING_MAGIC,
    RING_UP_HEAD,
    RING_VERSION,
    T_ACK,
    T_DOORBELL,
    T_END,
    T_ERROR,
    T_HELLO,
    T_WELCOME,
    Bg,
    check_counter_records,
    consume,
    decode_error,
    frame,
    hello_payload,
    read_contact,
    recv_frame,
    wait_closed,
    wire_str,
)

pytestmark = pytest.mark.timeout(60)

N, K = 6, 1  # steps; the writer pauses after step K while the hostile client acts


def _connect(ctx) -> socket.socket:
    c = read_contact(ctx.contact_path())
    s = socket.create_connection((c["host"], int(c["port"])), timeout=10)
    return ctx.track_socket(s)


def _token(ctx) -> bytes:
    return bytes.fromhex(read_contact(ctx.contact_path())["token"])


def _wrong_token(ctx) -> str:
    good = _token(ctx)
    bad = bytes([good[0] ^ 0xFF]) + good[1:]
    s = _connect(ctx)
    s.sendall(frame(T_HELLO, hello_payload(bad)))
    f = recv_frame(s)
    assert f is not None, "closed without an error frame"
    _, type_, payload = f
    assert type_ == T_ERROR
    code, msg = decode_error(payload)
    assert code == 1 and "token" in msg and ctx.name in msg, (code, msg)
    assert wait_closed(s, 10), "the connection stayed open after the refusal"
    return "token refused"


def _version_next(ctx) -> str:
    s = _connect(ctx)
    nxt = PROTOCOL_VERSION + 1
    s.sendall(frame(T_HELLO, hello_payload(_token(ctx), version=nxt), version=nxt))
    f = recv_frame(s)
    assert f is not None, "closed without an error frame"
    _, type_, payload = f
    assert type_ == T_ERROR
    code, msg = decode_error(payload)
    assert code == 2, (code, msg)
    assert "version" in msg and f"v{nxt}" in msg and f"v{PROTOCOL_VERSION}" in msg, msg
    assert wait_closed(s, 10)
    return "protocol version mismatch"


def _truncated(ctx) -> str:
    s = _connect(ctx)
    s.sendall(frame(T_HELLO, hello_payload(_token(ctx)))[:8])  # half a header
    s.close()
    return "closed before completing its handshake"


def _truncated_payload(ctx) -> str:
    s = _connect(ctx)
    whole = frame(T_HELLO, hello_payload(_token(ctx)))
    s.sendall(whole[: len(whole) - 10])
    s.close()
    return "closed before completing its handshake"


def _absurd_length(ctx) -> str:
    s = _connect(ctx)
    s.sendall(frame(T_HELLO, b"", length=2**31))
    assert wait_closed(s, 10), "a 2 GiB frame header did not close the connection"
    return "exceeds"


def _oversized_prehello(ctx) -> str:
    s = _connect(ctx)
    # A legal length (16 MiB), but more than 8 KiB arrive before a hello completes.
    s.sendall(frame(T_HELLO, b"\0" * 9000, length=16 << 20))
    assert wait_closed(s, 10)
    return "without a complete hello"


def _garbage(ctx) -> str:
    s = _connect(ctx)
    rng = np.random.default_rng(5)
    s.sendall(b"GET / HTTP/1.1\r\n" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert wait_closed(s, 10)
    return "bad magic"


def _reserved_bits(ctx) -> str:
    s = _connect(ctx)
    s.sendall(frame(T_HELLO, hello_payload(_token(ctx)), reserved=1))
    assert wait_closed(s, 10)
    return "reserved"


def _not_hello_first(ctx) -> str:
    s = _connect(ctx)
    s.sendall(frame(T_ACK, struct.pack("<Q", 0)))
    assert wait_closed(s, 10)
    return "not hello"


def _bad_hello_body(ctx) -> str:
    s = _connect(ctx)
    p = hello_payload(_token(ctx))
    s.sendall(frame(T_HELLO, p[:2] + struct.pack("<Q", 2**40) + p[10:]))  # token length 2^40
    assert wait_closed(s, 10)
    return "closing connection"


def _data_role_unknown_reader(ctx) -> str:
    s = _connect(ctx)
    s.sendall(frame(T_HELLO, hello_payload(_token(ctx), role=2, reader_id=999_999)))
    f = recv_frame(s)
    assert f is not None and f[1] == T_ERROR, f
    code, msg = decode_error(f[2])
    assert code == 3 and "unknown reader" in msg, (code, msg)
    assert wait_closed(s, 10)
    return "unknown reader"


def _unknown_role(ctx) -> str:
    s = _connect(ctx)
    s.sendall(frame(T_HELLO, hello_payload(_token(ctx), role=7)))
    assert wait_closed(s, 10)
    return "role"


HOSTILE = {
    "data_role_unknown_reader": _data_role_unknown_reader,
    "unknown_role": _unknown_role,
    "wrong_token": _wrong_token,
    "version_next": _version_next,
    "truncated_header": _truncated,
    "truncated_payload": _truncated_payload,
    "absurd_length": _absurd_length,
    "oversized_before_hello": _oversized_prehello,
    "garbage": _garbage,
    "reserved_bits": _reserved_bits,
    "not_hello_first": _not_hello_first,
    "bad_hello_body": _bad_hello_body,
}


def stream_around(ctx, plane, meddle, **options):
    """Streams N steps to a real reader while `meddle()` runs with the writer paused at
    step K; checks the reader got every step intact and the writer finished. Returns the
    writer (for its log) and what `meddle` returned."""
    go = ctx.signal_file()
    w = ctx.spawn_writer(plane, steps=N, options={"min_readers": 1, **options}, pauses={str(K): go})
    r = ctx.open_reader(plane)
    recs = Bg(consume, r, name="real-reader")
    w.wait_line(f"STEP {K}")
    meddled = meddle()
    ctx.fire(go)
    records = recs.result(30)
    assert [rec["index"] for rec in records] == list(range(N))
    check_counter_records(records)
    res = w.result()
    assert res["ok"], res
    assert w.returncode == 0
    return w, meddled


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_client_is_dropped_and_stream_goes_on(ctx, plane, kind):
    w, expect_log = stream_around(ctx, plane, lambda: HOSTILE[kind](ctx))
    log = w.stderr()
    assert expect_log in log, f"writer log lacks {expect_log!r}:\n{log}"
    assert "twinstream: warning:" in log


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00" * 64,  # not a frame at all
        "ack-not-handed",  # a well-formed ack for a step it was never handed
        "absurd-length",
    ],
)
def test_joined_client_sending_junk_is_dropped(ctx, plane, junk):
    """A client with the right token joins as a reader, then breaks the protocol: it is
    dropped (its pending steps released) and the real reader and the writer go on."""

    def join_and_break_the_protocol():
        s = _connect(ctx)
        s.sendall(frame(T_HELLO, hello_payload(_token(ctx), data_plane="tcp", pid=1)))
        f = recv_frame(s)
        assert f is not None and f[1] == T_WELCOME, f
        if junk == "ack-not-handed":
            payload = frame(T_ACK, struct.pack("<Q", 12345))
        elif junk == "absurd-length":
            payload = frame(T_ACK, b"", length=2**31)
        else:
            payload = junk
        s.sendall(payload)
        assert wait_closed(s, 10), "the writer kept a reader that broke the protocol"

    w, _ = stream_around(ctx, plane, join_and_break_the_protocol, queue_limit=2)
    assert "bad data" in w.stderr()


@pytest.mark.parametrize("damage", ["impossible-position", "not-an-ack"])
def test_joined_client_corrupting_its_control_ring_is_dropped(ctx, plane, damage):
    """A same-host client offers a control ring, as a real reader does, then writes into
    it what no reader writes: it is dropped, and the real reader and the writer go on."""

    def join_with_a_ring_and_break_it():
        name = f"ts-ctl-{os.getpid()}-{uuid.uuid4().hex[:16]}"
        path = f"/dev/shm/{name}"
        size = RING_DATA + 2 * RING_CAPACITY
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            ring = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        struct.pack_into("<QII", ring, 0, RING_MAGIC, RING_VERSION, RING_CAPACITY)
        s = _connect(ctx)
        host_id = read_contact(ctx.contact_path())["host_id"]
        # Trailing hello fields: plane option, writer_ops, then the ring's name.
        hello = hello_payload(_token(ctx), data_plane="tcp", pid=1, host_id=host_id)
        s.sendall(frame(T_HELLO, hello + wire_str("") + wire_str("") + wire_str("/" + name)))
        f = recv_frame(s)
        assert f is not None and f[1] == T_WELCOME, f
        assert f[2][-1] == 1, "the writer did not take the control ring"
        assert not os.path.exists(path), "the writer left the ring's name behind"
        if damage == "impossible-position":
            struct.pack_into("<Q", ring, RING_UP_HEAD, 2**40)
        else:
            end = frame(T_END, b"")
            ring[RING_DATA + RING_CAPACITY:RING_DATA + RING_CAPACITY + len(end)] = end
            struct.pack_into("<Q", ring, RING_UP_HEAD, len(end))
        s.sendall(frame(T_DOORBELL, b""))
        assert wait_closed(s, 10), "the writer kept a reader that corrupted its ring"
        ring.close()

    w, _ = stream_around(ctx, plane, join_with_a_ring_and_break_it, queue_limit=2)
    log = w.stderr()
    assert "bad data" in log and "control ring" in log, log


def test_silent_client_does_not_stall_the_writer(ctx, plane):

    def hold_silent_connections():
        silent = _connect(ctx)  # connects and says nothing, held open meanwhile
        half = _connect(ctx)
        half.sendall(frame(T_HELLO, hello_payload(_token(ctx)))[:20])  # stops mid-hello
        return silent, half

    w, held = stream_around(ctx, plane, hold_silent_connections)
    assert w.has_line("CLOSING")
    for s in held:
        s.close()


def test_silent_client_is_closed_after_the_handshake_deadline(ctx):
    w = ctx.open_writer()
    s = _connect(ctx)
    t0 = time.monotonic()
    assert wait_closed(s, 20), "a client that never says hello is kept forever"
    assert time.monotonic() - t0 > 1.0  # not at once: it had time to speak
    assert "no handshake within" in ctx.test_stderr()
    w.close()


def test_valid_raw_hello_is_welcomed(ctx):
    """Control for the tests above: the raw hello they corrupt is accepted when intact,
    so their refusals come from the corruption."""
    w = ctx.open_writer()
    s = _connect(ctx)
    s.sendall(frame(T_HELLO, hello_payload(_token(ctx), pid=os.getpid())))
    f = recv_frame(s)
    assert f is not None and f[1] == T_WELCOME, f
    assert wait_until_readers(w, 1)
    s.close()
    assert wait_until_readers(w, 0)


def test_many_hostile_connections_do_not_lock_out_a_real_reader(ctx, plane):
    go = ctx.signal_file()
    w = ctx.spawn_writer(plane, steps=N, options={"min_readers": 1}, pauses={"-1": go})
    w.wait_line("OPEN")
    socks = []
    for _ in range(20):
        s = _connect(ctx)
        s.sendall(b"\x00" * 7)
        socks.append(s)
    r = ctx.open_reader(plane)
    ctx.fire(go)
    assert [rec["index"] for rec in consume(r)] == list(range(N))
    assert w.result()["ok"]


def wait_until_readers(w, n: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if w.stats()["readers"] == n:
            return True
        time.sleep(0.02)
    return False
