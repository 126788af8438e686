"""A reader facing a hostile or broken writer (a fake server behind a contact file) gets a
typed error quickly: it never crashes and never hangs past its timeouts."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest
from conftest import (
    MAGIC,
    PROTOCOL_VERSION,
    T_ERROR,
    T_WELCOME,
    frame,
    host_id,
    recv_exactly,
    ts,
    wire_str,
)

pytestmark = pytest.mark.timeout(60)

T_ANNOUNCE = 4


def _parse_hello(payload: bytes) -> dict:
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, payload, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def s():
        nonlocal pos
        n = take("<I")
        v = payload[pos : pos + n].decode()
        pos += n
        return v

    h = {"version": take("<H")}
    n = take("<Q")
    h["token"] = payload[pos : pos + n]
    pos += n
    h["role"] = take("<B")
    h["reader_id"] = take("<Q")
    h["group"], h["policy"], h["data_plane"], h["host_id"] = s(), s(), s(), s()
    h["pid"] = take("<I")
    return h


def _welcome(plane: str) -> bytes:
    return frame(
        T_WELCOME,
        struct.pack("<Q", 1)
        + wire_str(plane)
        + wire_str("twinstream-fake-prefix")
        + struct.pack("<Q", 12345)
        + struct.pack("<I", os.getpid())
        + wire_str("g")
        + struct.pack("<Q", 0),  # first step offered
    )


def _dims(d) -> bytes:
    return struct.pack("<B", len(d)) + b"".join(struct.pack("<Q", x) for x in d)


def _bad_announce() -> bytes:
    """A step whose only block runs past the end of its segment."""
    p = struct.pack("<QQ", 0, 0)
    p += struct.pack("<I", 1) + struct.pack("<IQ", 1, 64)  # one 64-byte segment
    p += struct.pack("<I", 0)  # retired
    p += struct.pack("<I", 1) + wire_str("x") + struct.pack("<BB", 12, 0) + _dims([100])
    p += struct.pack("<I", 1) + _dims([0]) + _dims([100]) + struct.pack("<IQ", 1, 0)
    p += struct.pack("<I", 0) + struct.pack("<B", 0)  # attributes, no stream attributes
    p += struct.pack("<I", 0) + wire_str("")  # flags, source
    return frame(T_ANNOUNCE, p)


class FakeWriter:
    """Listens on loopback and answers every control hello with ``reply`` (bytes, or
    None to say nothing), then keeps the connection open or closes it. Data connections
    (tcp plane) get a welcome."""

    def __init__(self, ctx, reply: bytes | None, then: bytes | None = None, close: bool = False):
        self.reply, self.then, self.close_after = reply, then, close
        self.srv = ctx.track_socket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()
        token = os.urandom(32).hex()
        text = (
            f"twinstream-contact 1\nhost 127.0.0.1\nport {self.srv.getsockname()[1]}\ntoken {token}\n"
            f"pid {os.getpid()}\nhost_id {host_id()}\nshm_prefix twinstream-fake-prefix\n"
        )
        fd = os.open(str(ctx.contact_path()), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, text.encode())
        os.close(fd)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except (socket.timeout, OSError):
                continue
            self.conns.append(c)
            c.settimeout(5)
            head = recv_exactly(c, 16)
            if len(head) < 16:
                continue
            _, _, _, length, _ = struct.unpack("<IHHII", head)
            hello = _parse_hello(recv_exactly(c, length))
            if hello["role"] == 2:
                c.sendall(_welcome("tcp"))
                continue
            if self.reply is not None:
                c.sendall(self.reply)
            if self.then is not None:
                time.sleep(0.2)
                c.sendall(self.then)
            if self.close_after:
                c.close()

    def shutdown(self) -> None:
        self.stop.set()
        self.t.join(10)
        for c in self.conns:
            c.close()


@pytest.fixture
def fake(ctx):
    made = []

    def make(*a, **kw):
        f = FakeWriter(ctx, *a, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.shutdown()


def _open(ctx, plane="shm", **kw):
    kw.setdefault("open_timeout", 10)
    kw.setdefault("timeout", 10)
    return ctx.open_reader(plane, **kw)


def test_garbage_instead_of_welcome(ctx, fake):
    fake(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"\0" * 32)
    t0 = time.monotonic()
    with pytest.raises(ts.ConnectionError) as ei:
        _open(ctx)
    assert not isinstance(ei.value, ts.TimeoutError)
    assert time.monotonic() - t0 < 8


def test_absurd_frame_length_from_writer(ctx, fake):
    fake(struct.pack("<IHHII", MAGIC, PROTOCOL_VERSION, T_WELCOME, 2**31, 0))
    with pytest.raises(ts.ConnectionError):
        _open(ctx)


def test_refusal_by_error_code_is_not_retried(ctx, fake):
    """The error code says "bad token"; the reader must not depend on the wording."""
    fake(frame(T_ERROR, struct.pack("<I", 1) + wire_str("denied")))
    with pytest.raises(ts.ConnectionError) as ei:
        _open(ctx, open_timeout=2)
    assert not isinstance(ei.value, ts.TimeoutError), "a refusal was retried until open_timeout"
    assert "denied" in str(ei.value)


def test_silent_writer_times_out_the_open(ctx, fake):
    fake(None)
    t0 = time.monotonic()
    with pytest.raises(ts.TimeoutError) as ei:
        _open(ctx, open_timeout=1.0)
    assert time.monotonic() - t0 < 8
    assert ctx.name in str(ei.value)


@pytest.mark.parametrize("plane", ["shm", "tcp"])
def test_garbage_after_welcome(ctx, fake, plane):
    fake(_welcome(plane), then=b"\xff" * 64)
    r = _open(ctx, plane)
    with pytest.raises(ts.ConnectionError):
        r.begin_step(timeout=10)


@pytest.mark.parametrize("plane", ["shm", "tcp"])
def test_writer_closing_after_welcome(ctx, fake, plane):
    fake(_welcome(plane), close=True)
    r = _open(ctx, plane, heartbeat_timeout=30)
    t0 = time.monotonic()
    with pytest.raises(ts.ConnectionError) as ei:
        r.begin_step(timeout=30)
    assert time.monotonic() - t0 < 10
    assert ctx.name in str(ei.value)


@pytest.mark.parametrize("plane", ["shm", "tcp"])
def test_announce_with_block_past_its_segment(ctx, fake, plane):
    fake(_welcome(plane), then=_bad_announce())
    r = _open(ctx, plane)
    with pytest.raises(ts.ProtocolError):
        r.begin_step(timeout=10)
