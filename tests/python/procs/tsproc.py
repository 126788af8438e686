"""Code shared by the conformance tests and the helper processes they spawn.

The writer side (``run_writer``) and the reader side (``run_reader``) run either in a
thread of the test process (the ``inproc`` data plane needs the reader in the writer's
process) or as the main function of ``writer.py`` / ``reader.py`` in a separate process.
Both talk to the test through text lines (``emit``): progress lines such as ``STEP 3``
and one final ``RESULT {json}`` line.

Step contents come from deterministic *scenarios*: ``build_step(scenario, i)`` says what
the writer puts in step ``i`` and ``expected_step(scenario, i)`` what a reader must see,
so a test can check a remote writer's data without shipping arrays around.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import time
from typing import Any, Callable

import numpy as np

Emit = Callable[[str], None]


def import_twinstream():
    """Imports twinstream, retrying a few times: the package may be reinstalled while
    the suite runs, which makes the import fail for a moment."""
    last = None
    for _ in range(5):
        try:
            import twinstream

            return twinstream
        except ImportError as e:  # pragma: no cover - only during a reinstall
            last = e
            time.sleep(2.0)
    raise last  # type: ignore[misc]


# --------------------------------------------------------------------------- encoding


def enc(v: Any) -> Any:
    """JSON-able form of attribute values, arrays and containers (arrays exactly)."""
    if isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v)
        return {"__nd__": [a.dtype.str, list(a.shape), base64.b64encode(a.tobytes()).decode()]}
    if isinstance(v, np.generic):
        return enc(np.asarray(v))
    if isinstance(v, dict):
        return {str(k): enc(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [enc(x) for x in v]
    return v


def dec(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"__nd__"}:
            dt, shape, data = v["__nd__"]
            raw = base64.b64decode(data)
            return np.frombuffer(raw, dtype=np.dtype(dt)).reshape(shape).copy()
        return {k: dec(x) for k, x in v.items()}
    if isinstance(v, list):
        return [dec(x) for x in v]
    return v


def error_info(e: BaseException) -> dict:
    return {
        "type": type(e).__name__,
        "classes": [c.__name__ for c in type(e).__mro__],
        "module": type(e).__module__,
        "msg": str(e),
    }


# --------------------------------------------------------------------------- data

DTYPES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "longdouble",
    "complex64",
    "complex128",
    "clongdouble",
]


def _floats(ft: np.dtype, n: int, rng: np.random.Generator) -> np.ndarray:
    ft = np.dtype(ft)
    a = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(ft)
    if ft == np.dtype(np.longdouble):
        # Bits a float64 cannot hold: a lossy path through double shows up here.
        a = a + np.longdouble(1) / np.arange(3, n + 3, dtype=ft)
    fi = np.finfo(ft)
    specials = [np.nan, np.inf, -np.inf, -0.0, fi.max, fi.min, fi.tiny, fi.smallest_subnormal]
    a[: len(specials)] = np.array(specials, dtype=ft)
    return a


def sample(dtype: Any, n: int, seed: int) -> np.ndarray:
    """``n`` values of ``dtype`` including the extremes of the type."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        a = rng.integers(0, 2, n).astype(bool)
        a[:2] = [True, False]
        return a
    if dt.kind in "iu":
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, size=n, dtype=dt, endpoint=True)
        a[:3] = [info.min, info.max, 0]
        return a
    if dt.kind == "f":
        return _floats(dt, n, rng)
    if dt.kind == "c":
        ft = np.finfo(dt).dtype
        a = np.empty(n, dtype=dt)
        a.real = _floats(ft, n, rng)
        a.imag = _floats(ft, n, rng)[::-1]
        return a
    raise ValueError(dt)


RANK_SHAPES = [(0,), (7,), (3, 0), (4, 5), (0, 3, 2), (2, 3, 4), (2, 1, 3, 2), (1, 0, 2, 2), (3, 2, 1, 4)]

# Global arrays put as several blocks, with gaps no block covers (they read as zeros).
BLOCKED = {
    "g1": ("uint8", (20,), [((0,), (5,)), ((5,), (7,)), ((15,), (5,))]),
    "g2": ("int32", (8, 10), [((0, 0), (2, 3)), ((0, 5), (3, 5)), ((4, 2), (3, 4)), ((7, 9), (1, 1))]),
    "g3": ("complex128", (6, 5, 4), [((0, 0, 0), (3, 5, 4)), ((4, 1, 1), (2, 3, 2))]),
    "off": ("float32", (10, 10), [((2, 3), (4, 5))]),
    "g4": ("int16", (3, 4, 2, 5), [((0, 0, 0, 0), (2, 2, 2, 5)), ((1, 2, 0, 1), (2, 2, 1, 3))]),
}


def _block_values(dtype: str, count: tuple, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(count))
    dt = np.dtype(dtype)
    if dt.kind == "c":
        v = rng.integers(1, 1000, n) + 1j * rng.integers(1, 1000, n)
    else:
        v = rng.integers(1, 120, n)  # never zero: zeros mark the gaps
    return v.astype(dt).reshape(count)


def _attrs_for(i: int) -> tuple[dict, dict]:
    """(values the writer sets, values a reader must see) for step ``i`` of "attrs"."""
    if i == 0:
        raw = {
            "flag": True,
            "count": 0,
            "big": 2**62 + 1,
            "neg": -5,
            "time": 0.0,
            "label": "step-0",
            "unicode": "Å∑ 漢字",
            "empty": "",
            "f32": np.float32(1.5),
            "i16": np.int16(-7),
            "vec": np.arange(3, dtype=np.float64) * 0.5,
            "mat": np.arange(4, dtype=np.int32).reshape(2, 2),
            "cplx": np.array([1 + 2j, -3.5j], dtype=np.complex64),
            "bools": np.array([True, False, True]),
            "lst": [1, 2, 3],
            "u8": np.arange(5, dtype=np.uint8),
        }
        exp = dict(raw)
        exp["f32"] = 1.5
        exp["i16"] = -7
        exp["lst"] = np.array([1, 2, 3])
        return raw, exp
    if i == 1:
        raw = {"time": 0.01, "label": "step-1", "flag": False}
        return raw, dict(raw)
    if i == 2:
        raw = {
            "flag": True,
            "count": 2,
            "time": 0.02,
            "label": "step-2 changed",
            "vec": np.arange(5, dtype=np.float64) * -1.25,
            "mat": np.arange(6, dtype=np.int32).reshape(3, 2),
        }
        return raw, dict(raw)
    return {}, {}


_STREAM_ATTRS_AT = {
    "attrs": {
        0: {"n_atoms": 1000, "dt": 0.005},
        2: {"n_atoms": 2000, "box": np.array([[0.0, 10.0], [0.0, 12.5]]), "ok": False},
        3: {"note": "last"},
    }
}


def open_attrs(scenario: str) -> dict:
    """Stream attributes the writer sets right after opening, before any reader joins."""
    return {"units": "lj", "version": 3}


def fields_step(i: int) -> tuple[np.ndarray, np.ndarray]:
    """The arrays of step ``i`` of the "fields" scenario."""
    rng = np.random.default_rng(500 + i)
    field = rng.normal(i + np.arange(3), 1.0 + i, (16, 12, 3))
    field[3, 4, 1] = np.nan
    img = rng.integers(0, 256, (40, 40)).astype(np.uint8)
    return field, img


def big_blob(i: int) -> str:
    """A step attribute of the "big_attrs" scenario: 400 kB that differ per step."""
    return f"{i}:" + "".join(chr(97 + (i + k) % 26) for k in range(26)) * 16_000


def build_step(scenario: str, i: int) -> dict:
    """What the writer does in step ``i``: a list of ops, step attributes, and stream
    attributes to set before the step begins."""
    ops: list = []
    attrs: dict = {}
    stream_attrs = _STREAM_ATTRS_AT.get(scenario, {}).get(i, {})
    if scenario == "counter":
        ops.append(("put", "x", np.full(4, i, dtype=np.int64), {}))
        attrs = {"i": i}
    elif scenario == "big_attrs":
        # Announcements larger than the control ring (256 KiB): they cross it in parts.
        ops.append(("put", "x", np.full(4, i, dtype=np.int64), {}))
        attrs = {"i": i, "blob": big_blob(i)}
    elif scenario == "rows":
        # Samples for shuffle groups: row r of step i is (i, r, 100 i + r); x comes in two
        # blocks of four rows, label in one block.
        rows = np.array([[i, r, 100 * i + r] for r in range(8)], dtype=np.float64)
        ops.append(("put", "x", rows[:4], {"shape": (8, 3), "start": (0, 0)}))
        ops.append(("put", "x", rows[4:], {"shape": (8, 3), "start": (4, 0)}))
        ops.append(("put", "label", np.arange(8, dtype=np.int64) + 1000 * i, {}))
        attrs = {"i": i}
    elif scenario == "dtypes":
        for k, name in enumerate(DTYPES):
            ops.append(("put", "d_" + name, sample(name, 37, 1000 + k + 100 * i), {}))
            ops.append(("put", "m_" + name, sample(name, 12, 2000 + k + 100 * i).reshape(3, 4), {}))
    elif scenario == "ranks":
        for k, shape in enumerate(RANK_SHAPES):
            n = int(np.prod(shape))
            ops.append(("put", f"r{k}", (np.arange(n, dtype=np.float32) + 100 * k + i).reshape(shape), {}))
    elif scenario == "scalars":
        ops.append(("put", "s_f32", np.float32(3.5 + i), {}))
        ops.append(("put", "s_0d", np.array(2.25 * i), {}))
        ops.append(("put", "s_bool", np.bool_(True), {}))
        ops.append(("put", "s_int", np.int64(-(2**40)), {}))
        ops.append(("put", "s_c", np.complex128(1.5 - 2j), {}))
        ops.append(("put", "s_ld", np.longdouble(1) / 3, {}))
        ops.append(("put", "s_py", 7.25, {}))
    elif scenario == "layouts":
        base = np.arange(60, dtype=np.float64).reshape(6, 10) * 1.5 + i
        ops.append(("put", "strided", base[::2, ::3], {}))
        ops.append(("put", "transposed", base.T, {}))
        ops.append(("put", "fortran", np.asfortranarray(base), {}))
        ops.append(("put", "reversed", base[::-1, ::-1], {}))
        ops.append(("put", "be_i4", (np.arange(12, dtype=">i4") - 5).reshape(3, 4), {}))
        ops.append(("put", "be_f8", np.arange(7, dtype=">f8") / 3, {}))
        ops.append(("put", "be_c16", (np.arange(5) * (1 + 2j)).astype(">c16"), {}))
        ops.append(("put", "be_u2_strided", np.arange(40, dtype=">u2").reshape(5, 8)[1::2, ::-3], {}))
        ops.append(("put", "le_on_any", np.arange(6, dtype="<f4"), {}))
        ops.append(("put", "cast", [1, 2, 3], {"dtype": np.float32}))
        ops.append(("put", "pylist", [[1, 2], [3, 4]], {}))
    elif scenario == "boxes":
        rng = np.random.default_rng(77 + i)
        ops.append(("put", "a3", rng.standard_normal((7, 9, 5)), {}))
        ops.append(("put", "a1", rng.integers(-1000, 1000, 33).astype(np.int64), {}))
        for k, (name, (dtype, shape, blocks)) in enumerate(sorted(BLOCKED.items())):
            for b, (start, count) in enumerate(blocks):
                vals = _block_values(dtype, count, 10 * k + b + 1000 * i)
                ops.append(("put", name, vals, {"shape": shape, "start": start}))
    elif scenario == "reserve":
        ops.append(("reserve", "y", "y", (1000,), "float32", {}))
        ops.append(("fill", "y", slice(0, 500), (np.arange(500) / 8 + i).astype(np.float32)))
        # A put that needs a new segment between reserve and the rest of the fill: the
        # reserved memory must stay where it is.
        ops.append(("put", "big", np.arange(40000, dtype=np.float64) + i, {}))
        ops.append(("fill", "y", slice(500, 1000), (np.arange(500, 1000) / 8 + i).astype(np.float32)))
        for b in range(2):
            key = f"tile{b}"
            ops.append(("reserve", key, "tiles", (2, 6), "int64", {"global_shape": (4, 6), "start": (2 * b, 0)}))
            ops.append(("fill", key, slice(None), np.arange(12).reshape(2, 6) + 100 * i + 1000 * b))
        ops.append(("reserve", "e", "empty", (0, 3), "float64", {}))
        ops.append(("reserve", "z", "zero_d", (), "complex64", {}))
        ops.append(("fill", "z", (), np.complex64(2.5 + i * 1j)))
        ops.append(("reserve", "c", "cube", (3, 4, 5), "uint16", {}))
        ops.append(("fill", "c", slice(None), (np.arange(60) + i).reshape(3, 4, 5)))
        attrs = {"i": i}
    elif scenario == "large":
        ops.append(("put", "big", np.arange(1_500_000, dtype=np.float64) * 0.5 + i, {}))
        ops.append(("put", "tiles", (np.arange(1 << 20, dtype=np.int32) - i).reshape(1024, 1024), {"shape": (2048, 1024), "start": (1024 * (i % 2), 0)}))
    elif scenario == "fields":
        # Pre-processing: a float64 field in two blocks whose channels drift from step to
        # step (running statistics matter), and an 8-bit image in one block.
        field, img = fields_step(i)
        ops.append(("put", "field", field[:7], {"shape": field.shape, "start": (0, 0, 0)}))
        ops.append(("put", "field", field[7:], {"shape": field.shape, "start": (7, 0, 0)}))
        ops.append(("put", "img", img, {}))
        attrs = {"i": i}
    elif scenario == "attrs":
        ops.append(("put", "x", np.full(2, i, dtype=np.int64), {}))
        attrs = _attrs_for(i)[0]
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    return {"ops": ops, "attrs": attrs, "stream_attrs": stream_attrs}


def _native_dtype(dt: np.dtype) -> np.dtype:
    return np.dtype(dt).newbyteorder("=")


def expected_step(scenario: str, i: int) -> dict:
    """What a reader must see in step ``i``: global arrays, blocks, step attributes and
    (cumulative) stream attributes."""
    spec = build_step(scenario, i)
    arrays: dict[str, np.ndarray] = {}
    blocks: dict[str, list] = {}
    buffers: dict[str, tuple[str, np.ndarray, tuple]] = {}

    def place(name, dtype, shape, start, values):
        if name not in arrays:
            arrays[name] = np.zeros(shape, dtype=dtype)
            blocks[name] = []
        count = values.shape
        blocks[name].append((tuple(start), tuple(count)))
        idx = tuple(slice(s, s + c) for s, c in zip(start, count))
        arrays[name][idx] = values

    for op in spec["ops"]:
        if op[0] == "put":
            _, name, array, kw = op
            a = np.asarray(array, dtype=kw.get("dtype"))
            a = a.astype(_native_dtype(a.dtype))
            shape = tuple(kw.get("shape", a.shape))
            start = tuple(kw.get("start", (0,) * len(shape)))
            place(name, a.dtype, shape, start, a)
        elif op[0] == "reserve":
            _, key, name, count, dtype, kw = op
            gshape = tuple(kw.get("global_shape", count))
            start = tuple(kw.get("start", (0,) * len(gshape)))
            buffers[key] = (name, np.zeros(count, dtype=dtype), (gshape, start))
        elif op[0] == "fill":
            _, key, where, value = op
            buffers[key][1][where] = value
    # Reserved blocks, in the order they were reserved (relative order among puts of the
    # same variable does not matter here: names differ).
    for key, (name, buf, (gshape, start)) in buffers.items():
        place(name, buf.dtype, gshape, start, buf)

    stream: dict = dict(open_attrs(scenario))
    for k in range(i + 1):
        stream.update(_STREAM_ATTRS_AT.get(scenario, {}).get(k, {}))
    if scenario == "attrs":
        attrs = _attrs_for(i)[1]
    else:
        attrs = dict(spec["attrs"])
    return {"arrays": arrays, "blocks": blocks, "attrs": attrs, "stream_attrs": stream}


# --------------------------------------------------------------------------- writer


class Aborted(Exception):
    pass


def wait_file(path: str, timeout: float, abort_file: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if abort_file and os.path.exists(abort_file):
            raise Aborted(f"aborted while waiting for {path}")
        if time.monotonic() > deadline:
            raise Aborted(f"{path} did not appear within {timeout} s")
        time.sleep(0.01)


def _apply(step, ops) -> None:
    bufs = {}
    for op in ops:
        if op[0] == "put":
            _, name, array, kw = op
            step.put(name, array, **kw)
        elif op[0] == "reserve":
            _, key, name, count, dtype, kw = op
            buf = step.reserve(name, count, dtype, **kw)
            if not (buf.flags.writeable and buf.shape == tuple(count) and buf.dtype == np.dtype(dtype)):
                raise AssertionError(
                    f"reserve({name!r}) gave shape {buf.shape} dtype {buf.dtype} "
                    f"writeable={buf.flags.writeable}"
                )
            bufs[key] = buf
        elif op[0] == "fill":
            _, key, where, value = op
            bufs[key][where] = value


def run_writer(args: dict, emit: Emit) -> dict:
    """Opens a writer and publishes ``args["steps"]`` steps of ``args["scenario"]``.

    args: name, options (ts.open keywords), steps, scenario, pauses ({"k": file}: after
    step k, wait for file; "-1": before the first step), sleep (seconds after each step),
    abort_at (indices: a step is begun and aborted before the real one), abort_file,
    pause_timeout, duration (seconds: write steps until then instead of ``steps``), define
    ([variable, pipeline text, placement] for Writer.define). Emits OPEN {json}, STEP i,
    CLOSING, RESULT {json}.
    """
    ts = import_twinstream()
    name = args["name"]
    scenario = args.get("scenario", "counter")
    steps = int(args.get("steps", 3))
    pauses = {int(k): v for k, v in args.get("pauses", {}).items()}
    abort_at = set(args.get("abort_at", []))
    abort_file = args.get("abort_file")
    pause_timeout = float(args.get("pause_timeout", 60))
    result: dict = {"ok": False, "steps_done": 0}
    try:
        with ts.open(name, "w", **args.get("options", {})) as w:
            for k, v in open_attrs(scenario).items():
                w.attrs[k] = v
            for var, key, placement in args.get("define", []):
                w.define(var, key, placement)
            emit("OPEN " + json.dumps({"contact": w.contact_path, "address": w.address, "pid": os.getpid()}))
            if -1 in pauses:
                wait_file(pauses[-1], pause_timeout, abort_file)
            # With "duration": as many steps as fit in that many seconds.
            duration = args.get("duration")
            t_end = time.monotonic() + float(duration) if duration is not None else None
            i = -1
            while True:
                i += 1
                if (t_end is None and i >= steps) or (t_end is not None and time.monotonic() >= t_end):
                    break
                spec = build_step(scenario, i)
                for k, v in spec["stream_attrs"].items():
                    w.attrs[k] = v
                if i in abort_at:
                    try:
                        with w.step() as s:
                            s.put("x", np.full(4, -1, dtype=np.int64))
                            s.attrs["aborted"] = True
                            raise Aborted("abort this step")
                    except Aborted:
                        pass
                with w.step() as s:
                    _apply(s, spec["ops"])
                    for k, v in spec["attrs"].items():
                        s.attrs[k] = v
                result["steps_done"] = i + 1
                emit(f"STEP {i}")
                if i in pauses:
                    wait_file(pauses[i], pause_timeout, abort_file)
                if args.get("sleep"):
                    time.sleep(float(args["sleep"]))
            result["stats_before_close"] = w.stats()
            emit("CLOSING")
        result["stats"] = w.stats()
        result["ok"] = True
    except BaseException as e:  # reported to the test, which decides
        result["error"] = error_info(e)
    emit("RESULT " + json.dumps(enc(result)))
    return result


# --------------------------------------------------------------------------- reader


def _batch_values_ok(step, sid: np.ndarray) -> bool:
    """Row k of a batch is row sid[k, 1] of step sid[k, 0] (counter and rows scenarios)."""
    x = np.array(step["x"])
    if x.ndim == 1:  # counter: every row of step i is i
        return bool((x == sid[:, 0]).all())
    want = np.stack([sid[:, 0], sid[:, 1], 100 * sid[:, 0] + sid[:, 1]], axis=1)
    ok = np.array_equal(x, want.astype(np.float64))
    if "label" in step:
        ok = ok and np.array_equal(np.array(step["label"]), 1000 * sid[:, 0] + sid[:, 1])
    return bool(ok)


def run_reader(args: dict, emit: Emit) -> dict:
    """Opens a reader and iterates the stream to its end.

    args: name, options (ts.open keywords), sleep (seconds per step), hold_at (index at
    which it stops and waits for hold_file), hold_file, hold_timeout, die_at (SIGKILLs
    itself holding its n-th step), leave_after (closes after n steps),
    tolerate_member_failures (fan-in: a step whose member died is skipped and recorded). Emits JOINED {json},
    STEP i [redelivered], BATCH i [[step, row], ...], HOLD i, RESULT {json} with the
    indices, dropped counts, re-deliveries, batches and errors.
    """
    ts = import_twinstream()
    result: dict = {"ok": False, "indices": [], "dropped": [], "values_ok": True,
                    "redelivered": [], "batches": [], "sources": []}
    try:
        with ts.open(args["name"], "r", **args.get("options", {})) as r:
            emit("JOINED " + json.dumps(r.stats()))
            for step in r:
                x_read = None  # read once: a second pull could meet a member that died since
                if args.get("tolerate_member_failures"):
                    # Fan-in: a member that dies while its step is read fails that step
                    # only; the reader goes on with the others.
                    try:
                        x_read = np.array(step["x"])
                    except ts.ConnectionError as e:
                        result.setdefault("step_errors", []).append(str(e))
                        continue
                result["indices"].append(step.index)
                result["dropped"].append(step.dropped)
                result["sources"].append(step.source)
                if step.redelivered:
                    result["redelivered"].append(step.index)
                if step.is_batch:
                    sid = np.array(step["sample_id"])
                    result["batches"].append(
                        {"id": step.index, "pass": step.attrs["pass"], "samples": sid.tolist()}
                    )
                    if not _batch_values_ok(step, sid):
                        result["values_ok"] = False
                    emit(f"BATCH {step.index} " + json.dumps(sid.tolist()))
                elif "x" in step:
                    x = x_read if x_read is not None else np.array(step["x"])
                    if not (x == step.index).all():
                        result["values_ok"] = False
                emit(f"STEP {step.index}" + (" redelivered" if step.redelivered else ""))
                if args.get("die_at") is not None and len(result["indices"]) == args["die_at"]:
                    # Killed while holding this step (before end_step): the writer must
                    # hand it to another member of the group.
                    os.kill(os.getpid(), signal.SIGKILL)
                if args.get("leave_after") is not None and len(result["indices"]) >= args["leave_after"]:
                    break
                if args.get("hold_at") is not None and step.index == args["hold_at"]:
                    emit(f"HOLD {step.index}")
                    wait_file(args["hold_file"], float(args.get("hold_timeout", 60)), args.get("abort_file"))
                if args.get("sleep"):
                    time.sleep(float(args["sleep"]))
            result["stats"] = r.stats()
            result["members"] = r.sources
        result["ok"] = True
    except BaseException as e:
        result["error"] = error_info(e)
    emit("RESULT " + json.dumps(enc(result)))
    return result


def main(fn) -> None:
    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    res = fn(json.loads(sys.argv[1]), emit)
    sys.exit(0 if res.get("ok") else 1)
