"""Shared fixtures and helpers of the twinstream Python conformance suite.

Every test gets a ``ctx`` (its own rendezvous directory, a unique stream name, and
bookkeeping that stops whatever the test started). Writers and readers run as separate
processes (``procs/writer.py``, ``procs/reader.py``) except for the ``inproc`` data plane,
where the writer runs in a thread of the test process, next to the readers.

Helpers wait with bounded loops only; every subprocess call has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
PROCS = HERE / "procs"
if str(PROCS) not in sys.path:
    sys.path.insert(0, str(PROCS))

import tsproc  # noqa: E402

ts = tsproc.import_twinstream()

PLANES = ["inproc", "shm", "tcp"]
# Planes where the reader lives in another process than the writer (a test that kills one
# side needs two processes).
REMOTE_PLANES = ["shm", "tcp"]

# The RMA planes join the suite where this build has them: fabric once per libfabric
# provider that runs here (the fixture gives the provider to every reader the test's ctx
# opens or spawns as fabric_provider; not through FI_PROVIDER, which libfabric reads once
# per process).
AVAILABLE = {name: ok for name, ok, _ in ts.data_planes()}
FABRIC_PROVIDERS = ["tcp", "shm"] if AVAILABLE.get("fabric") else []
PLANE_PARAMS = [pytest.param((p, None), id=p) for p in PLANES] + [
    pytest.param(("fabric", prov), id=f"fabric-{prov}") for prov in FABRIC_PROVIDERS
]
REMOTE_PLANE_PARAMS = [pytest.param((p, None), id=p) for p in REMOTE_PLANES] + [
    pytest.param(("fabric", prov), id=f"fabric-{prov}") for prov in FABRIC_PROVIDERS[:1]
]
# mpi runs the data, attribute, queue-policy, prefetch, several-reader, lifecycle and
# placement tests; its launches and failures have tests of their own (test_mpi.py): a
# reader killed while another pairs is a known limit of the plane (README), and the
# contact-file tests look at the writer's pid, which under mpiexec is not the launcher's.
# The writer runs under the MPICH wheel's mpiexec (MPICH cannot connect two processes
# started without it); the test process's readers are MPI singletons.
MPI_PLANE_MODULES = {
    "test_data.py",
    "test_attributes.py",
    "test_queue_policies.py",
    "test_prefetch.py",
    "test_multi.py",
    "test_lifecycle.py",
    "test_placement.py",
}
MPIEXEC = Path(sys.executable).parent / "mpiexec"
if AVAILABLE.get("mpi") and MPIEXEC.exists():
    PLANE_PARAMS.append(pytest.param(("mpi", None), id="mpi"))

# MPICH settings the mpiexec launches run under: its defaults, and the README's one-node
# RMA ones (RMA through libfabric's shm provider, single copy).
MPI_SETTINGS = {
    "mpich-defaults": {},
    "one-node-rma": {"MPIR_CVAR_NOLOCAL": "1", "FI_PROVIDER": "shm"},
}


@pytest.fixture(params=sorted(MPI_SETTINGS))
def mpi_env(request) -> dict:
    """Environment for an mpiexec launch under each of MPI_SETTINGS."""
    env = dict(os.environ)
    env["PATH"] = f"{MPIEXEC.parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPIR_CVAR_CH4_NETMOD"] = "ofi"  # MPI_Open_port / MPI_Comm_connect need it
    for k in ("TWINSTREAM_LOG", "MPIR_CVAR_NOLOCAL", "FI_PROVIDER"):
        env.pop(k, None)
    env.update(MPI_SETTINGS[request.param])
    return env


def pytest_collection_modifyitems(config, items):
    items[:] = [
        it
        for it in items
        if not (getattr(it, "callspec", None) and it.callspec.params.get("plane") == ("mpi", None)
                and it.path.name not in MPI_PLANE_MODULES)
    ]


def _use_plane(param, ctx) -> str:
    name, provider = param
    ctx.fabric_provider = provider
    ctx.plane = name
    return name

WRITER_OPTIONS = [
    "queue_limit",
    "queue_policy",
    "min_readers",
    "open_timeout",
    "host",
    "port",
    "advertise",
    "dir",
    "shm",
    "heartbeat_interval",
    "close_timeout",
]
READER_OPTIONS = ["group", "policy", "data_plane", "timeout", "open_timeout", "heartbeat_timeout", "dir", "fabric_provider"]

# Wire constants (cpp/src/core/wire.hpp, messages.hpp).
MAGIC = 0x31535754
#: The control protocol version this build speaks (core/wire.hpp kProtocolVersion).
PROTOCOL_VERSION = 4
T_HELLO, T_WELCOME, T_ERROR, T_ACK, T_END, T_DOORBELL = 1, 2, 3, 5, 6, 11
# The same-host control ring (cpp/src/control/control_ring.cpp): a header page, then the
# down (writer -> reader) and up (reader -> writer) rings of RING_CAPACITY bytes each.
RING_MAGIC, RING_VERSION, RING_CAPACITY = 0x676E69724C544354, 1, 256 * 1024
RING_UP_HEAD = 192  # byte offset of the up ring's write position in the header
RING_DATA = 4096


_FABRIC_REGION = re.compile(r"^(\d+):[\d:]+$")


@pytest.fixture(autouse=True)
def _no_stale_fabric_regions():
    """libfabric's shm provider names its /dev/shm region after the process's pid; one
    left by a killed MPI process (tests kill some on purpose) makes a later process that
    gets the same pid hang in MPI_Init. Removes this user's regions of processes that are
    gone, before each test (twinstream itself removes only its own process's: see
    mpi_runtime.cpp)."""
    try:
        names = os.listdir("/dev/shm")
    except OSError:
        names = []
    for n in names:
        m = _FABRIC_REGION.match(n)
        if not m:
            continue
        try:
            if os.stat(f"/dev/shm/{n}").st_uid != os.getuid():
                continue
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(f"/dev/shm/{n}")
        except OSError:
            continue
    yield


@pytest.fixture(params=PLANE_PARAMS)
def plane(request, ctx) -> str:
    return _use_plane(request.param, ctx)


@pytest.fixture(params=REMOTE_PLANE_PARAMS)
def remote_plane(request, ctx) -> str:
    return _use_plane(request.param, ctx)


# --------------------------------------------------------------------------- lines


def _matches(token: str) -> Callable[[str], bool]:
    return lambda line: line == token or line.startswith(token + " ")


class Lines:
    """Lines a helper printed, with a bounded wait for one of them."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._cv = threading.Condition()
        self.closed = False

    def add(self, line: str) -> None:
        with self._cv:
            self._lines.append(line)
            self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def snapshot(self) -> list[str]:
        with self._cv:
            return list(self._lines)

    def find(self, token: str) -> str | None:
        m = _matches(token)
        for line in self.snapshot():
            if m(line):
                return line
        return None

    def wait(self, token: str, timeout: float) -> str | None:
        m = _matches(token)
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for line in self._lines:
                    if m(line):
                        return line
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    return None
                self._cv.wait(min(left, 0.2))


def _payload(line: str) -> Any:
    return tsproc.dec(json.loads(line.split(" ", 1)[1]))


# Pids of every helper process this session started (for the shared-memory report).
STARTED_PIDS: list[int] = []


def pytest_terminal_summary(terminalreporter):
    """Reports /dev/shm segments left by writers this session ran (it ran them, and
    deliberately killed some; a replacement writer should have removed theirs)."""
    if not os.path.isdir("/dev/shm"):
        return
    mine = {f"twinstream-{pid}-" for pid in STARTED_PIDS + [os.getpid()]}
    left = sorted(n for n in os.listdir("/dev/shm") if any(n.startswith(m) for m in mine))
    if left:
        terminalreporter.write_line(f"twinstream: shared memory left by this session: {left}")


class _Handle:
    """What a test does with a helper, whether it is a process or a thread: wait for the
    lines it prints and collect its RESULT line."""

    label: str
    out: Lines

    def describe(self) -> str:
        raise NotImplementedError

    def wait_exit(self, timeout: float = 60.0) -> int:
        raise NotImplementedError

    def wait_line(self, token: str, timeout: float = 30.0) -> str:
        line = self.out.wait(token, timeout)
        if line is None:
            raise AssertionError(f"no line {token!r} within {timeout} s from {self.describe()}")
        return line

    def has_line(self, token: str) -> bool:
        return self.out.find(token) is not None

    def result(self, timeout: float = 60.0) -> dict:
        self.wait_exit(timeout)
        line = self.out.find("RESULT")
        if line is None:
            raise AssertionError(f"no RESULT line: {self.describe()}")
        return _payload(line)


class ProcHandle(_Handle):
    """A helper script running in its own process."""

    kind = "process"

    def __init__(self, script: str, args: dict, env: dict, cwd: Path, label: str, launcher: list[str] | None = None):
        self.label = label
        self.args = args
        self.out = Lines()
        self._err: list[str] = []
        self.p = subprocess.Popen(
            [*(launcher or []), sys.executable, str(PROCS / script), json.dumps(args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=str(cwd),
            text=True,
            bufsize=1,
        )
        STARTED_PIDS.append(self.p.pid)
        self._threads = [
            threading.Thread(target=self._pump, args=(self.p.stdout, self.out.add, self.out.close), daemon=True),
            threading.Thread(target=self._pump, args=(self.p.stderr, self._err.append, None), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, add, done) -> None:
        try:
            for line in stream:
                add(line.rstrip("\n"))
        finally:
            stream.close()
            if done:
                done()

    @property
    def pid(self) -> int:
        return self.p.pid

    def describe(self) -> str:
        return (
            f"{self.label} (pid {self.p.pid}, rc {self.p.poll()})\n--- stdout:\n"
            + "\n".join(self.out.snapshot())[-4000:]
            + "\n--- stderr:\n"
            + self.stderr()[-4000:]
        )

    def stderr(self) -> str:
        return "\n".join(list(self._err))

    def wait_exit(self, timeout: float = 60.0) -> int:
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"did not exit within {timeout} s: {self.describe()}") from None
        for t in self._threads:
            t.join(10)
        return rc

    @property
    def returncode(self) -> int | None:
        return self.p.poll()

    def kill(self) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(timeout=30)

    def cleanup(self) -> None:
        # Give it a chance to finish (its abort file was touched: it stops waiting and
        # closes, removing its shared memory), then kill what is left.
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.p.pid, signal.SIGKILL)
        try:
            self.p.wait(timeout=30)
        finally:
            for t in self._threads:
                t.join(10)


class ThreadHandle(_Handle):
    """The same helper running in a thread of the test process (inproc data plane)."""

    kind = "thread"

    def __init__(self, fn: Callable[[dict, Callable[[str], None]], dict], args: dict, label: str, stderr: Callable[[], str]):
        self.label = label
        self.args = args
        self.out = Lines()
        self._stderr = stderr
        self._result: dict | None = None
        self._exc: BaseException | None = None
        self.t = threading.Thread(target=self._run, args=(fn,), daemon=True, name=label)
        self.t.start()

    def _run(self, fn) -> None:
        try:
            self._result = fn(self.args, self.out.add)
        except BaseException as e:  # reported by result()
            self._exc = e
        finally:
            self.out.close()

    pid = os.getpid()

    def describe(self) -> str:
        return f"{self.label} (thread)\n--- lines:\n" + "\n".join(self.out.snapshot())[-4000:]

    def stderr(self) -> str:
        return self._stderr()

    def wait_exit(self, timeout: float = 60.0) -> int:
        self.t.join(timeout)
        if self.t.is_alive():
            raise AssertionError(f"did not finish within {timeout} s: {self.describe()}")
        if self._exc is not None:
            raise self._exc
        return 0 if self._result and self._result.get("ok") else 1

    @property
    def returncode(self) -> int | None:
        if self.t.is_alive():
            return None
        return 0 if self._result and self._result.get("ok") else 1

    def kill(self) -> None:
        raise RuntimeError("a writer thread in the test process cannot be killed")

    def cleanup(self) -> None:
        self.t.join(60)


class Bg:
    """A function running in a daemon thread; result() joins with a bound and re-raises."""

    def __init__(self, fn: Callable, *args: Any, name: str = "bg"):
        self._value: Any = None
        self._exc: BaseException | None = None
        self.t = threading.Thread(target=self._run, args=(fn, args), daemon=True, name=name)
        self.t.start()

    def _run(self, fn, args) -> None:
        try:
            self._value = fn(*args)
        except BaseException as e:
            self._exc = e

    @property
    def alive(self) -> bool:
        return self.t.is_alive()

    def join(self, timeout: float) -> bool:
        self.t.join(timeout)
        return not self.t.is_alive()

    def result(self, timeout: float = 60.0) -> Any:
        self.t.join(timeout)
        if self.t.is_alive():
            raise AssertionError(f"background call did not finish within {timeout} s")
        if self._exc is not None:
            raise self._exc
        return self._value

    def exception(self, timeout: float = 60.0) -> BaseException | None:
        self.t.join(timeout)
        if self.t.is_alive():
            raise AssertionError(f"background call did not finish within {timeout} s")
        return self._exc


# --------------------------------------------------------------------------- context


def _unique_name(request) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "_", request.node.name)[:60]
    return f"{base}-{uuid.uuid4().hex[:8]}"


class Ctx:
    def __init__(self, tmp_path: Path, request, capfd):
        self.dir = tmp_path
        self.name = _unique_name(request)
        self._capfd = capfd
        self._err_seen = ""
        self._handles: list = []
        self._readers: list = []
        self._writers: list = []
        self._sockets: list = []
        self._abort_files: list[str] = []
        self._n = 0
        self.fabric_provider: str | None = None  # set by the plane fixtures
        self.plane: str | None = None

    def _reader_defaults(self, opts: dict) -> None:
        if opts.get("data_plane") == "fabric" and self.fabric_provider:
            opts.setdefault("fabric_provider", self.fabric_provider)

    # -- files
    def signal_file(self, label: str = "go") -> str:
        self._n += 1
        return str(self.dir / f"signal-{label}-{self._n}")

    @staticmethod
    def fire(path: str) -> None:
        Path(path).touch()

    def contact_path(self, name: str | None = None) -> Path:
        return self.dir / f"{name or self.name}.twin"

    def test_stderr(self) -> str:
        """Everything written to this process's stderr so far (the C++ log lines of
        in-process writers and readers), accumulated across calls."""
        out, err = self._capfd.readouterr()
        if out:
            sys.stdout.write(out)
        self._err_seen += err
        return self._err_seen

    def env(self) -> dict:
        env = dict(os.environ)
        env["TWINSTREAM_DIR"] = str(self.dir)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("TWINSTREAM_LOG", None)
        return env

    # -- writers
    def spawn_writer(self, plane: str, *, steps: int, name: str | None = None, options: dict | None = None, **kw) -> ProcHandle | ThreadHandle:
        """A writer for a reader on ``plane``: a thread of this process for inproc, a
        separate process otherwise (which finds the rendezvous dir through TWINSTREAM_DIR)."""
        opts = {"close_timeout": 30}
        opts.update(options or {})
        abort = self.signal_file("abort")
        self._abort_files.append(abort)
        args = {"name": name or self.name, "steps": steps, "options": opts, "abort_file": abort, **kw}
        label = f"writer[{args['name']}]"
        if plane == "inproc":
            args["options"] = {"dir": str(self.dir), **opts}
            h: Any = ThreadHandle(tsproc.run_writer, args, label, self.test_stderr)
        elif plane == "mpi":
            env = self.env()
            env["PATH"] = f"{MPIEXEC.parent}{os.pathsep}{env.get('PATH', '')}"
            env["MPIR_CVAR_CH4_NETMOD"] = "ofi"
            h = ProcHandle("writer.py", args, env, self.dir, label, launcher=[str(MPIEXEC), "-n", "1"])
        else:
            h = ProcHandle("writer.py", args, self.env(), self.dir, label)
        self._handles.append(h)
        return h

    def open_writer(self, name: str | None = None, **opts):
        if self.plane == "mpi":
            pytest.skip("the mpi plane cannot serve a reader in the writer's own process")
        opts.setdefault("dir", str(self.dir))
        opts.setdefault("close_timeout", 10)
        w = ts.open(name or self.name, "w", **opts)
        self._writers.append(w)
        return w

    # -- readers
    def spawn_reader(self, *, name: str | None = None, options: dict | None = None, **kw) -> ProcHandle:
        opts = {"timeout": 30}
        opts.update(options or {})
        self._reader_defaults(opts)
        abort = self.signal_file("abort")
        self._abort_files.append(abort)
        args = {"name": name or self.name, "options": opts, "abort_file": abort, **kw}
        h = ProcHandle("reader.py", args, self.env(), self.dir, f"reader[{args['name']}]")
        self._handles.append(h)
        return h

    def open_reader(self, plane: str | None, name: str | None = None, **opts):
        opts.setdefault("dir", str(self.dir))
        opts.setdefault("timeout", 30)
        if plane is not None:
            opts.setdefault("data_plane", plane)
        self._reader_defaults(opts)
        r = ts.open(name or self.name, "r", **opts)
        self._readers.append(r)
        return r

    def track_socket(self, s: socket.socket) -> socket.socket:
        self._sockets.append(s)
        return s

    def cleanup(self) -> None:
        for s in self._sockets:
            s.close()
        for r in self._readers:
            try:
                r.close()
            except Exception:
                pass
        for f in self._abort_files:
            Path(f).touch()
        for h in self._handles:
            h.cleanup()
        for w in self._writers:
            try:
                w.close()
            except Exception:
                pass


@pytest.fixture
def ctx(tmp_path, request, capfd):
    c = Ctx(tmp_path, request, capfd)
    try:
        yield c
    finally:
        c.cleanup()


# --------------------------------------------------------------------------- reading


def consume(r, *, sleep: float = 0.0, on_step: Callable | None = None, limit: int = 10_000) -> list[dict]:
    """Iterates ``r`` to the end of the stream, recording each step."""
    records = []
    for step in r:
        rec = {
            "index": step.index,
            "dropped": step.dropped,
            "attrs": dict(step.attrs),
            "x": np.array(step["x"]) if "x" in step else None,
        }
        records.append(rec)
        if on_step is not None:
            on_step(step, rec)
        if sleep:
            time.sleep(sleep)
        if len(records) >= limit:
            raise AssertionError(f"more than {limit} steps")
    return records


def check_counter_records(records: list[dict]) -> None:
    """Steps of the "counter" scenario carry x == index and attrs {"i": index}."""
    for rec in records:
        assert rec["x"] is not None and rec["x"].dtype == np.int64
        assert (rec["x"] == rec["index"]).all(), f"step {rec['index']} carries {rec['x']}"
        assert rec["attrs"] == {"i": rec["index"]}


# --------------------------------------------------------------------------- comparison


def assert_array_same(got: np.ndarray, exp: np.ndarray, what: str = "") -> None:
    """Exact equality: dtype, shape, values (NaN == NaN, and the sign of zeros)."""
    got = np.asarray(got)
    assert got.dtype == exp.dtype, f"{what}: dtype {got.dtype} != {exp.dtype}"
    assert got.shape == exp.shape, f"{what}: shape {got.shape} != {exp.shape}"
    if exp.dtype.kind == "c":
        assert_array_same(got.real, exp.real, what + ".real")
        assert_array_same(got.imag, exp.imag, what + ".imag")
    elif exp.dtype.kind == "f":
        assert np.array_equal(got, exp, equal_nan=True), f"{what}: values differ\n{got}\n{exp}"
        assert np.array_equal(np.signbit(got), np.signbit(exp)), f"{what}: signs differ"
    else:
        assert np.array_equal(got, exp), f"{what}: values differ\n{got}\n{exp}"


def assert_attrs_same(got: dict, exp: dict, what: str = "attrs") -> None:
    assert set(got) == set(exp), f"{what}: keys {sorted(got)} != {sorted(exp)}"
    for k, e in exp.items():
        g = got[k]
        if isinstance(e, np.ndarray):
            assert isinstance(g, np.ndarray), f"{what}[{k!r}] is {type(g)}, not ndarray"
            assert_array_same(g, e, f"{what}[{k!r}]")
        else:
            assert type(g) is type(e), f"{what}[{k!r}]: {type(g).__name__} != {type(e).__name__}"
            assert g == e, f"{what}[{k!r}]: {g!r} != {e!r}"


# --------------------------------------------------------------------------- wire


def frame(type_: int, payload: bytes, *, version: int = PROTOCOL_VERSION, length: int | None = None, reserved: int = 0) -> bytes:
    n = len(payload) if length is None else length
    return struct.pack("<IHHII", MAGIC, version, type_, n, reserved) + payload


def wire_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def hello_payload(token: bytes, *, version: int = PROTOCOL_VERSION, role: int = 1, reader_id: int = 0, group: str = "", policy: str = "all", data_plane: str = "tcp", host_id: str = "hostile/none", pid: int = 0, prefetch: int = 1) -> bytes:
    return (
        struct.pack("<H", version)
        + struct.pack("<Q", len(token))
        + token
        + struct.pack("<B", role)
        + struct.pack("<Q", reader_id)
        + wire_str(group)
        + wire_str(policy)
        + wire_str(data_plane)
        + wire_str(host_id)
        + struct.pack("<I", pid)
        + struct.pack("<I", prefetch)
        + struct.pack("<B", 0)  # latest
        + struct.pack("<IIQII", 4, 32, 0, 1, 0)  # shuffle: window, batch, seed, passes, variables
    )


def read_contact(path: Path) -> dict:
    out = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(" ")
        out[key] = value
    return out


def recv_exactly(s: socket.socket, n: int) -> bytes:
    """n bytes, or fewer if the peer closed (a reset counts as closed)."""
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def recv_frame(s: socket.socket) -> tuple[int, int, bytes] | None:
    """(version, type, payload) of the next frame, or None if the peer closed."""
    head = recv_exactly(s, 16)
    if len(head) < 16:
        return None
    magic, version, type_, length, reserved = struct.unpack("<IHHII", head)
    assert magic == MAGIC and reserved == 0, head
    payload = recv_exactly(s, length)
    assert len(payload) == length
    return version, type_, payload


def decode_error(payload: bytes) -> tuple[int, str]:
    code, n = struct.unpack_from("<II", payload)
    return code, payload[8 : 8 + n].decode()


def wait_closed(s: socket.socket, timeout: float) -> bool:
    """True once the peer closed ``s`` (EOF or reset) within ``timeout``; bytes it sends
    meanwhile are discarded."""
    s.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not chunk:
            return True
    return False


def host_id() -> str:
    """What the library uses to tell 'same host' (hostname/boot id)."""
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().splitlines()[0]
    return f"{socket.gethostname()}/{boot}"


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, timeout=60, check=True
    )
    return int(out.stdout.strip())


def closed_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def write_stale_contact(path: Path, *, pid: int, port: int, same_host: bool = True, prefix: str = "") -> str:
    token = uuid.uuid4().hex + uuid.uuid4().hex
    text = (
        "twinstream-contact 1\n"
        "host 127.0.0.1\n"
        f"port {port}\n"
        f"token {token}\n"
        f"pid {pid}\n"
        f"host_id {host_id() if same_host else 'some-other-host/00000000-0000-0000-0000-000000000000'}\n"
        f"shm_prefix {prefix}\n"
    )
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return token


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()
