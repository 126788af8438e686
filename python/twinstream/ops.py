"""Pre-processing operators: SIMD kernels composed into per-variable pipelines.

Each function returns one operator; a list of them is a pipeline, run in C++ (with the GIL
released) on any numpy array::

    import numpy as np, twinstream as ts
    ops = [ts.ops.cast("float32"), ts.ops.standardize(mean=0.5, std=2.0),
           ts.ops.patches((64, 64))]
    tiles = ts.ops.apply(np.random.rand(512, 512), ops)      # (64, 64, 64) float32

A pipeline is checked against a dtype and shape before it runs (``validate``), so that a
bad one is refused when a variable is defined, not in the middle of a stream. Every
pipeline has one canonical text form (``Pipeline.key``), which is what travels to the
other side and what keys the cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twinstream import _core

__all__ = [
    "Cache",
    "Op",
    "Pipeline",
    "RunningState",
    "apply",
    "bfloat16_to_float32",
    "cast",
    "clip",
    "compress",
    "decompress",
    "force_simd",
    "log1p",
    "minmax",
    "patches",
    "python",
    "simd_targets",
    "standardize",
    "stats",
    "subsample",
    "unpack",
    "validate",
]


@dataclass(frozen=True)
class Op:
    """One operator: its canonical text and, for ``python(...)``, the callable."""

    spec: str
    fn: Callable[[np.ndarray], Any] | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"ts.ops.{self.spec}"


def _num(x: float) -> str:
    return repr(float(x))


def _nums(x: float | Sequence[float] | np.ndarray) -> str:
    return ":".join(_num(v) for v in np.atleast_1d(np.asarray(x, dtype=np.float64)).ravel())


def _dims(x: int | Sequence[int]) -> str:
    values = [x] if isinstance(x, (int, np.integer)) else list(x)
    return "x".join(str(int(v)) for v in values)


def _op(name: str, **params: str | None) -> Op:
    body = ",".join(f"{k}={v}" for k, v in params.items() if v is not None)
    return Op(_core.ops_canonical(f"{name}({body})"))


def cast(dtype: str | np.dtype | type = "float32", scale: float | None = None) -> Op:
    """Convert to float32, float16, bfloat16 (returned as uint16 bits) or int8.

    float16 and bfloat16 round to nearest even (NaN kept, overflow to inf); int8 quantises
    ``q = clip(rint(x / scale), -128, 127)`` with NaN -> 0. Inputs other than float32 go
    through float32 first for the 16- and 8-bit targets.
    """
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    return _op("cast", to=name, scale=None if scale is None else _num(scale))


def standardize(mean: Any = None, std: Any = None, axis: int | None = None) -> Op:
    """``(x - mean) / std``, per channel along ``axis`` (one channel when None).

    Without mean and std the writer keeps running per-channel statistics (NaN skipped),
    updated with each step before it is standardized, and publishes them with the step.
    """
    if (mean is None) != (std is None):
        raise _core.InvalidArgument("standardize: give both mean and std, or neither")
    return _op("standardize", axis=None if axis is None else str(int(axis)),
               mean=None if mean is None else _nums(mean), std=None if std is None else _nums(std))


def minmax(lo: float | None = None, hi: float | None = None) -> Op:
    """``(x - lo) / (hi - lo)``; a missing bound is the block's own (NaN-skipping) min/max."""
    return _op("minmax", lo=None if lo is None else _num(lo), hi=None if hi is None else _num(hi))


def clip(lo: float, hi: float) -> Op:
    """``min(max(x, lo), hi)``, NaN kept; integer data keeps its dtype (bounds round inward)."""
    return _op("clip", lo=_num(lo), hi=_num(hi))


def log1p() -> Op:
    """``log(1 + x)`` for float32/float64, within 4 ULP of numpy."""
    return _op("log1p")


def subsample(strides: int | Sequence[int]) -> Op:
    """``x[::s0, ::s1, ...]``; fewer strides than axes leave the last axes whole."""
    return _op("subsample", strides=_dims(strides))


def patches(size: int | Sequence[int], stride: int | Sequence[int] | None = None) -> Op:
    """Tiles of ``size`` over the leading axes every ``stride`` (default: size), as a batch
    ``(n_tiles, *size, *other_axes)``; partial tiles at the edges are dropped."""
    return _op("patches", size=_dims(size), stride=None if stride is None else _dims(stride))


def stats() -> Op:
    """Pass the data through; publish min, max, mean, std, count and nan_count (NaN skipped)."""
    return _op("stats")


def compress(codec: str = "zstd", level: int | None = None) -> Op:
    """Lossless byte shuffle + zstd (level 1-19, default 1) or lz4 (0 fast, 1-12 HC).
    Must be last; the output is a self-describing uint8 array (``unpack`` restores it)."""
    return _op("compress", codec=codec, level=None if level is None else str(int(level)))


def decompress() -> Op:
    """The inverse of compress, as an operator (the reader's side)."""
    return _op("decompress")


def python(fn: Callable[[np.ndarray], Any], name: str | None = None) -> Op:
    """A Python callable as an operator (the slow path): gets a numpy array, returns one.

    Only its name travels to the other side and keys the cache; give distinct callables
    distinct names.
    """
    label = name or getattr(fn, "__qualname__", None) or type(fn).__name__
    label = re.sub(r"[^A-Za-z0-9_.<>-]", "_", label)[:200]
    return Op(_core.ops_canonical(f"python(name={label})"), fn)


class Pipeline:
    """A list of operators with its canonical key."""

    def __init__(self, ops: Iterable[Op] | Pipeline) -> None:
        self.ops: list[Op] = list(ops.ops if isinstance(ops, Pipeline) else ops)
        for op in self.ops:
            if not isinstance(op, Op):
                raise _core.InvalidArgument(
                    f"pipeline entries must be ts.ops operators, not {type(op).__name__}")
        self.key: str = _core.ops_canonical("|".join(op.spec for op in self.ops))
        self._fns = [op.fn for op in self.ops]

    def __repr__(self) -> str:
        return f"Pipeline({self.key!r})"

    def __len__(self) -> int:
        return len(self.ops)

    def validate(self, dtype: Any, shape: Sequence[int], name: str = "array"
                 ) -> tuple[np.dtype, tuple[int, ...]] | None:
        """Output dtype and shape for an input (None when they depend on the data: after
        compress, decompress or a Python operator). Raises ts.InvalidArgument naming the
        variable, the operator and the fix."""
        out = _core.ops_validate(self.key, np.dtype(dtype), [int(s) for s in shape], name)
        return None if out is None else (np.dtype(out[0]), tuple(out[1]))

    def fns(self) -> list:
        return list(self._fns) if any(f is not None for f in self._fns) else []


class RunningState:
    """Running statistics of a pipeline kept across calls (the writer's side of
    ``standardize()`` without mean/std)."""

    def __init__(self) -> None:
        self._state = _core.OpsState()


def _pipeline(ops: Iterable[Op] | Pipeline) -> Pipeline:
    return ops if isinstance(ops, Pipeline) else Pipeline(ops)


def validate(ops: Iterable[Op] | Pipeline, dtype: Any, shape: Sequence[int],
             name: str = "array") -> tuple[np.dtype, tuple[int, ...]] | None:
    """See Pipeline.validate."""
    return _pipeline(ops).validate(dtype, shape, name)


def apply(array: Any, ops: Iterable[Op] | Pipeline, *, state: RunningState | None = None,
          published: dict | None = None, name: str = "array", details: bool = False) -> Any:
    """Run a pipeline on ``array`` in C++ (GIL released) and return a new read-only array.

    ``state`` keeps running statistics across calls (and publishes them); ``published`` is
    the attributes dict a previous run published, to standardize with exactly those
    values. With ``details=True`` returns ``(array, attributes, timings)``, timings as
    ``(operator, seconds, bytes_in, bytes_out)`` per operator.
    """
    p = _pipeline(ops)
    arr = np.ascontiguousarray(array)
    out, attrs, timings = _core.ops_apply(p.key, arr, p.fns(), published,
                                          state._state if state is not None else None, name)
    return (out, attrs, timings) if details else out


def unpack(packed: np.ndarray) -> np.ndarray:
    """The array that ``compress`` packed (dtype and shape restored)."""
    return _core.ops_decompress(np.ascontiguousarray(packed, dtype=np.uint8))


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bits (what ``cast("bfloat16")`` returns) to float32, exactly."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def simd_targets() -> dict:
    """{"compiled": [...], "supported": [...], "active": name}: SIMD targets the kernels
    were built for, those this CPU runs, and the one in use (TWINSTREAM_SIMD forces one)."""
    return _core.ops_simd_targets()


def force_simd(name: str | None) -> None:
    """Force every kernel onto one SIMD target ("avx3", "avx2", "sse4", "scalar"); None
    returns to the best. Process-wide; for tests and benchmarks."""
    _core.ops_force_simd(name or "")


class Cache:
    """Pre-processed results bounded by ``max_bytes``, keyed by (step, variable,
    pipeline), least recently used evicted first."""

    def __init__(self, max_bytes: int) -> None:
        self._cache = _core.OpsCache(int(max_bytes))

    def apply(self, step: int, variable: str, array: Any, ops: Iterable[Op] | Pipeline
              ) -> np.ndarray:
        """The cached result for (step, variable, pipeline), computing it on a miss."""
        p = _pipeline(ops)
        return self._cache.apply(int(step), variable, p.key, np.ascontiguousarray(array),
                                 p.fns())

    def stats(self) -> dict:
        """hits, misses, evictions, rejected (larger than the bound), bytes, entries,
        max_bytes."""
        return self._cache.counters()

    def keys(self) -> list[tuple[int, str, str]]:
        """(step, variable, pipeline key), most recently used first."""
        return self._cache.keys()

    def drop_step(self, step: int) -> None:
        self._cache.drop_step(int(step))

    def resize(self, max_bytes: int) -> None:
        self._cache.set_max_bytes(int(max_bytes))

    def clear(self) -> None:
        self._cache.clear()
