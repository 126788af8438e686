"""Python face of twinstream streams: open(), Writer, Reader, Step.

Everything here is sugar over twinstream._core; arrays are never copied on the way in
(put copies once into step memory, reserve copies nothing) nor on the way out (a step's
arrays are read-only views into the writer's shared memory where the data plane allows).
"""

from __future__ import annotations

import atexit
import enum
import inspect
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from twinstream import _core, _jobs
from twinstream import ops as _ops

__all__ = [
    "Block",
    "Reader",
    "Step",
    "StepStatus",
    "StepWriter",
    "VariableInfo",
    "Writer",
    "data_planes",
    "open",
]

def _numeric(dt: Any) -> np.dtype:
    """The dtype in native byte order, if twinstream carries it."""
    dt = np.dtype(dt)
    if dt.kind not in "biufc":
        raise _core.InvalidArgument(
            f"dtype {dt} is not numeric; twinstream carries bool, integer, float and complex arrays"
        )
    return dt.newbyteorder("=")


def _options(opts: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in opts.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)  # e.g. variables=["x", "y"]
        out[key] = str(value)
    return out


def _native(array: Any, dtype: Any = None) -> np.ndarray:
    """C-contiguous, native byte order (copies only when the input is neither)."""
    a = np.asarray(array, dtype=dtype)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    # Not np.ascontiguousarray: it turns a rank-0 array into shape (1,).
    return a if a.flags.c_contiguous else a.copy(order="C")


def _attr_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return _native(value)
    if isinstance(value, np.ndarray):
        return _native(value)
    return value


class StepStatus(enum.Enum):
    """What Reader.begin_step found."""

    OK = 0
    NOT_READY = 1
    END_OF_STREAM = 2


class VariableInfo(NamedTuple):
    """A variable of the current step: dtype, global shape, the writer's blocks as
    (start, count), and its kind: ``global``, ``joined`` (blocks stacked along axis 0, rank
    by rank) or ``local`` (independent blocks: ``step.blocks``, ``step.get_block``)."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    blocks: list[tuple[tuple[int, ...], tuple[int, ...]]]
    kind: str = "global"


class Block(NamedTuple):
    """One block of a variable: its index (for ``step.get_block``), the writer rank that
    put it, and where it lies (zeros for a local block) with its shape."""

    index: int
    owner: int
    start: tuple[int, ...]
    count: tuple[int, ...]


class _Attrs(dict):
    """A dict whose assignments also go to the writer."""

    def __init__(self, setter):
        super().__init__()
        self._setter = setter

    def __setitem__(self, key: str, value: Any) -> None:
        value = _attr_value(value)
        self._setter(key, value)
        super().__setitem__(key, value)

    def update(self, *args, **kwargs) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v


class StepWriter:
    """The step being written, as returned by ``Writer.step()``."""

    def __init__(self, writer: Writer):
        self._w = writer._w
        self.attrs = _Attrs(self._w.set_step_attribute)

    def put(
        self,
        name: str,
        array: Any,
        *,
        shape: tuple[int, ...] | None = None,
        start: tuple[int, ...] | None = None,
        dtype: Any = None,
        joined: bool = False,
        local: bool = False,
    ) -> None:
        """Copies ``array`` into the step; the array may be reused when put returns.

        With ``shape`` and ``start`` the array is one block of a larger global array
        (``shape`` is the global shape, ``start`` the block's corner).
        ``joined=True``: a block of a joined array; readers see the blocks of every rank
        stacked along axis 0 (rank by rank, then in put order), e.g. atoms per rank; a
        block may be empty. ``local=True``: an independent block (several per rank allowed);
        readers list them with ``step.blocks(name)`` and read one with ``step.get_block``.
        """
        a = _native(array, dtype)
        _numeric(a.dtype)
        if joined or local:
            if joined and local:
                raise _core.InvalidArgument(f"put({name!r}): joined= and local= exclude each other")
            if shape is not None or start is not None:
                raise _core.InvalidArgument(
                    f"put({name!r}): a {'joined' if joined else 'local'} block has no "
                    "shape=/start= (readers place it)")
            self._w.put_block(name, "joined" if joined else "local", a)
            return
        count = a.shape
        shape = tuple(shape) if shape is not None else count
        start = tuple(start) if start is not None else (0,) * len(shape)
        self._w.put(name, list(shape), list(start), list(count), a)

    def reserve(
        self,
        name: str,
        shape: tuple[int, ...] | int,
        dtype: Any = np.float64,
        *,
        global_shape: tuple[int, ...] | None = None,
        start: tuple[int, ...] | None = None,
    ) -> np.ndarray:
        """A writable array inside transport memory: fill it before the step ends.
        Nothing is copied. Do not write to it after the step ended."""
        count = (shape,) if isinstance(shape, int) else tuple(shape)
        gshape = tuple(global_shape) if global_shape is not None else count
        start = tuple(start) if start is not None else (0,) * len(gshape)
        return self._w.reserve(name, _numeric(dtype), list(gshape), list(start), list(count))


# Writers still open when the interpreter exits are closed then (readers drain, shared
# memory and the contact file are removed): module-level writers are never collected.
_open_writers: weakref.WeakSet[Writer] = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    for w in list(_open_writers):
        w.close()


class Writer:
    """Publishing side of a stream. Use ``ts.open(name, "w", ...)``."""

    def __init__(self, name: str, *, comm: Any = None, **options: Any):
        if comm is None:
            self._w = _core.Writer(name, _options(options))
        else:
            opts = _options(_jobs.writer_options(comm, options))
            self._w = _jobs.open_all(comm, name, lambda: _core.Writer(name, opts),
                                     lambda w: w.close())
        _open_writers.add(self)
        self.name = name
        self.attrs = _Attrs(self._w.set_attribute)
        self._current: StepWriter | None = None

    def define(
        self,
        name: str,
        ops: Any,
        placement: str = "writer",
        *,
        dtype: Any = None,
        shape: tuple[int, ...] | None = None,
    ) -> None:
        """Attaches a pre-processing pipeline to variable ``name`` from the next step on.

        ``ops`` is a list of ``ts.ops`` operators (or a ``ts.ops.Pipeline``, or its text
        form). ``placement="writer"``: each step's whole array (its blocks assembled) goes
        through the pipeline once, in ``end_step``, and the output is published under the
        same name for every reader. ``placement="reader"``: the data travels as put and each
        reader runs the pipeline after transfer (``step["x"]``), with the running
        statistics the writer publishes, so both placements give the same bytes. With
        ``dtype`` and ``shape`` the pipeline is checked now, else at the first ``put``; a bad
        one raises ``ts.InvalidArgument`` naming the variable, the operator and the fix.
        ``ops=[]`` removes the definition. Step attributes ``ops.<name>.pipeline``,
        ``.placement``, ``.seconds`` (the writer's operator time) and what the operators
        publish (``ops.<name>.<i>.<op>.<field>``) travel with each step.
        """
        where = f"stream {self.name!r} variable {name!r}"
        if (dtype is None) != (shape is None):
            raise _core.InvalidArgument(
                f"{where}: define() checks a pipeline against dtype= and shape= together; "
                "give both, or neither to check it at the first put")
        try:
            if isinstance(ops, str):
                key = _core.ops_canonical(ops)
            else:
                pipeline = _ops.Pipeline(ops)
                if pipeline.fns():
                    raise _core.InvalidArgument(
                        "python() operators cannot be placed on a stream (only their name would "
                        "travel); run them in the reader with step.get(name, ops=[...])")
                key = pipeline.key
        except _core.InvalidArgument as e:
            raise _core.InvalidArgument(f"{where}: {e}") from None
        dt = None if dtype is None else _numeric(dtype)
        self._w.define(name, key, placement, dt, [int(n) for n in (shape or ())])

    def begin_step(self) -> StepWriter:
        """Starts a step; blocks while the queue is full under ``queue_policy="block"``."""
        self._w.begin_step()
        self._current = StepWriter(self)
        return self._current

    def end_step(self) -> None:
        """Publishes the step."""
        self._current = None
        self._w.end_step()

    def abort_step(self) -> None:
        """Discards the step being written."""
        self._current = None
        self._w.abort_step()

    def step(self) -> _StepContext:
        """``with w.step() as s:`` begins a step and ends it (aborts it on an exception)."""
        return _StepContext(self)

    def close(self) -> None:
        """Ends the stream; readers drain what is queued, then see end of stream."""
        self._w.close()

    @property
    def contact_path(self) -> str:
        return self._w.contact_path

    @property
    def address(self) -> str:
        return self._w.address

    def stats(self) -> dict[str, Any]:
        """Counters: steps, dropped, blocked_s, bytes, readers, queued; ``ops_seconds``
        (time the writer's operators took, defined and requested pipelines),
        ``ops_last_seconds``, ``ops_steps``; the writer-side cache of the pipelines readers
        ask for (``writer_ops``): ``cache_hits``, ``cache_misses``, ``cache_evictions``,
        ``cache_rejected``, ``cache_bytes`` (never above ``cache_max_bytes``) and
        ``cache_entries``."""
        return self._w.stats()

    def __del__(self) -> None:
        # Close here rather than in the C++ destructor, which would wait for readers to
        # drain while holding the GIL (in-process readers could then never finish).
        w = getattr(self, "_w", None)
        if w is not None:
            w.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _StepContext:
    def __init__(self, writer: Writer):
        self._writer = writer

    def __enter__(self) -> StepWriter:
        return self._writer.begin_step()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._writer.end_step()
        else:
            self._writer.abort_step()


class Step:
    """A step being read. Arrays it returns are read-only and meaningful only until the
    step ends (the next iteration, or ``end_step``)."""

    def __init__(self, reader: Reader):
        self._r = reader._r
        self.index: int = self._r.step_index
        #: Handed before to a group member that left without ending it: a possible
        #: duplicate (delivery is at-least-once when a member fails).
        self.redelivered: bool = self._r.step_redelivered
        #: A shuffle batch: each variable has one row per sample and ``step["sample_id"]``
        #: gives (step index, row) of each; ``index`` counts batches.
        self.is_batch: bool = self._r.step_is_batch
        #: The ensemble member that wrote this step (fan-in streams), else "".
        self.source: str = self._r.step_source
        self._reader = reader
        self._attrs: dict[str, Any] | None = None
        self._variables: dict[str, VariableInfo] | None = None
        self._ops_seconds: float | None = None  # set when the step ends

    @property
    def ops_seconds(self) -> float:
        """Seconds this reader's operators took on this step (reader-placed pipelines and
        ``get(ops=...)``; cache hits add nothing)."""
        if self._ops_seconds is not None:
            return self._ops_seconds
        return _core.reader_step_ops_seconds(self._r)

    # Metadata is fetched on first use: a consumer of small steps that only reads one
    # array should not pay for building dictionaries it never looks at.
    @property
    def attrs(self) -> dict[str, Any]:
        """Step-level attributes."""
        if self._attrs is None:
            self._attrs = self._r.step_attributes()
        return self._attrs

    @property
    def dropped(self) -> int:
        """Steps the writer dropped before this reader got them, so far."""
        return self._r.stats()["dropped"]

    @property
    def variables(self) -> dict[str, VariableInfo]:
        """Variables of this step by name (a reader-placed variable as its pipeline's
        output, where that is known before running it)."""
        if self._variables is None:
            self._variables = {
                name: VariableInfo(
                    name, np.dtype(dtype), tuple(shape),
                    [(tuple(s), tuple(c)) for s, c, _ in blocks], kind,
                )
                for name, dtype, shape, blocks, kind in self._r.variables()
            }
        return self._variables

    def __getitem__(self, name: str) -> np.ndarray:
        if self.is_batch and name == "sample_id" and name not in self.variables:
            return self.sample_id
        # A pipeline the writer placed on the readers runs in the C++ reader.
        return self._r.get(name)

    @property
    def sample_id(self) -> np.ndarray:
        """Shuffle batches: an int64 array (batch, 2) of (step index, row) per sample."""
        if not self.is_batch:
            raise _core.InvalidArgument(
                f"step {self.index} is not a shuffle batch; sample_id exists only for readers "
                "of a group with policy='shuffle'"
            )
        return self.attrs["sample_id"]

    def __contains__(self, name: str) -> bool:
        return name in self.variables or (self.is_batch and name == "sample_id")

    def blocks(self, name: str) -> list[Block]:
        """The blocks of variable ``name`` as the writer ranks put them."""
        for vname, _, _, blocks, _ in self._r.variables():
            if vname == name:
                return [Block(i, owner, tuple(s), tuple(c))
                        for i, (s, c, owner) in enumerate(blocks)]
        self._r.get(name)  # raises with the list of variables
        return []

    def get_block(self, name: str, index: int) -> np.ndarray:
        """Block ``index`` of ``step.blocks(name)``, whole (zero-copy where the data plane
        allows): how local arrays are read."""
        if index < 0:
            raise IndexError(f"block index {index} of {name!r} is negative")
        return self._r.get_block(name, index)

    def keys(self):
        return self.variables.keys()

    def get(
        self,
        name: str,
        start: tuple[int, ...] | None = None,
        count: tuple[int, ...] | None = None,
        *,
        out: np.ndarray | None = None,
        ops: Any = None,
    ) -> np.ndarray:
        """The box ``start``/``count`` of a global array (the whole array by default),
        pulled only from the writer blocks that overlap it. With ``out``, copies into it.

        ``ops``: this reader's own pipeline, run on the box after transfer (and after a
        reader-placed pipeline of the writer's); kept in the reader's cache when
        ``cache="on"``. A reader-placed variable's box is a box of the pipeline's output.
        """
        info = self.variables.get(name)
        if info is None:
            return self._r.get(name)  # raises with the list of variables
        whole = start is None and count is None
        if not whole or out is not None:
            start = tuple(start) if start is not None else (0,) * len(info.shape)
            count = tuple(count) if count is not None else tuple(
                s - b for s, b in zip(info.shape, start)
            )
        if ops is None and out is not None:
            self._r.get_into(name, list(start), list(count), out)
            return out
        base = self._r.get(name) if whole else self._r.get(name, list(start), list(count))
        if ops is None:
            return base
        pipeline = _ops.Pipeline(ops)
        label = name if whole else f"{name}[{start}+{count}]"
        placed = self._r.step_attributes_with_prefix(f"ops.{name}.")
        if placed.get(f"ops.{name}.placement") == "reader":
            label += f"<{placed[f'ops.{name}.pipeline']}>"
        result = _core.reader_apply(self._r, label, pipeline.key, base, pipeline.fns())
        if out is None:
            return result
        np.copyto(out, result)
        return out

    def __repr__(self) -> str:
        kind = "batch" if self.is_batch else "Step"
        extra = " redelivered" if self.redelivered else ""
        extra += f" source={self.source!r}" if self.source else ""
        return f"<twinstream.{kind} {self.index}{extra} variables={list(self.variables)}>"


class Reader:
    """Consuming side of a stream. Use ``ts.open(name, "r", ...)``; iterate for steps."""

    def __init__(self, name: str, *, comm: Any = None, **options: Any):
        self.name = name
        self._timeout = float(options.get("timeout", 60.0))
        if "writer_ops" in options:
            options = dict(options, writer_ops=_writer_ops_text(options["writer_ops"]))
        # Reader-placed pipelines, get(ops=...) and the cache (cache="on") live in the C++
        # reader, so that a C++ and a Python reader get the same bytes.
        if comm is None:
            self._r = _core.Reader(name, _options(options))
        else:
            opts = _options(options)
            self._r = _jobs.open_all(comm, name, lambda: _core.Reader(name, opts),
                                     lambda r: r.close())
            # A reader job: every rank starts at the same step.
            self._r.start_at(_jobs.reader_start(comm, self._r.first_step))
        self._step: Step | None = None

    def cached(self, step: int, name: str, ops: Any = None, source: str = ""
               ) -> np.ndarray | None:
        """A pre-processed result kept from an earlier step (``cache="on"``), or None when
        it was never computed or has been evicted. ``ops=None``: what ``step[name]`` gave
        for a reader-placed variable; else what ``step.get(name, ops=ops)`` gave."""
        key = "" if ops is None else _ops.Pipeline(ops).key
        return _core.reader_cached(self._r, int(step), name, key, source)

    def begin_step(self, timeout: float | None = None) -> StepStatus:
        """Waits up to ``timeout`` seconds (default: the reader's timeout) for a step."""
        t = self._timeout if timeout is None else float(timeout)
        status = StepStatus(self._r.begin_step(t))
        self._step = Step(self) if status is StepStatus.OK else None
        return status

    @property
    def current_step(self) -> Step:
        """The step begun last (raises if none is in progress)."""
        if self._step is None:
            raise _core.InvalidArgument(f"stream {self.name!r}: no step in progress")
        return self._step

    def end_step(self) -> None:
        """Releases the step's buffers and acknowledges it to the writer."""
        if self._step is not None:
            self._step._ops_seconds = _core.reader_step_ops_seconds(self._r)
        self._step = None
        self._r.end_step()

    def __iter__(self) -> Iterator[Step]:
        while True:
            status = self.begin_step()
            if status is StepStatus.END_OF_STREAM:
                return
            if status is StepStatus.NOT_READY:
                raise _core.TimeoutError(
                    f"stream {self.name!r}: no step arrived within timeout={self._timeout} s; "
                    "the writer is alive but slow: raise timeout= or use begin_step(timeout=)"
                )
            try:
                yield self._step
            finally:
                if self._step is not None:
                    self.end_step()

    @property
    def attrs(self) -> dict[str, Any]:
        """Stream-level attributes as of the current step."""
        return self._r.stream_attributes()

    def stats(self) -> dict[str, Any]:
        """Counters: steps, dropped, redelivered, bytes, data_plane, control;
        ``preload_bytes`` and ``preload_unused_bytes`` (``preload="on"``: bytes served from
        steps read ahead, and read ahead but never asked for); ``ops_seconds`` (time
        this reader's operators took), ``ops_last_seconds``, ``ops_steps`` and
        ``ops_runs``; with ``cache="on"`` the cache's ``cache_hits``, ``cache_misses``,
        ``cache_evictions``, ``cache_rejected``, ``cache_bytes`` (never above
        ``cache_max_bytes``) and ``cache_entries``."""
        return self._r.stats()

    @property
    def sources(self) -> list[dict[str, Any]]:
        """Fan-in streams: each ensemble member seen so far, with its state (``live``,
        ``ended``, or ``failed`` with the ``error``: a crashed member ends its own substream,
        the others go on) and the steps received from it."""
        return self._r.sources()

    def close(self) -> None:
        """Leaves the stream; the writer releases this reader's steps."""
        self._step = None
        self._r.close()

    def __del__(self) -> None:
        r = getattr(self, "_r", None)
        if r is not None:
            r.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _writer_ops_text(requests: Any) -> str | None:
    """The reader option writer_ops as text: {"x": [ops...]} -> "x=<pipeline key>;..."."""
    if requests is None or isinstance(requests, str):
        return requests
    if not isinstance(requests, Mapping):
        raise _core.InvalidArgument(
            "writer_ops must map variable names to ts.ops pipelines, e.g. "
            "writer_ops={'x': [ts.ops.cast('float16')]}")
    parts = []
    for name, ops in requests.items():
        if not isinstance(name, str) or not name or ";" in name or "=" in name:
            raise _core.InvalidArgument(
                f"writer_ops: variable name {name!r} must be a non-empty string without ';' "
                "or '='")
        pipeline = ops if isinstance(ops, _ops.Pipeline) else (
            _ops.Pipeline([]) if isinstance(ops, str) else _ops.Pipeline(ops))
        key = _core.ops_canonical(ops) if isinstance(ops, str) else pipeline.key
        if pipeline.fns():
            raise _core.InvalidArgument(
                f"writer_ops variable {name!r}: python() operators cannot run on the writer "
                "(only their name would travel); run them in the reader with "
                "step.get(name, ops=[...])")
        parts.append(f"{name}={key}")
    return ";".join(parts)


def open(name: str, mode: str = "r", **options: Any) -> Writer | Reader:  # noqa: A001
    """Opens stream ``name`` for writing (``mode="w"``) or reading (``mode="r"``).

    ``comm=``: an mpi4py communicator; the open is collective. Writers: each rank puts its
    own blocks and readers see one stream (N x M). Readers: the ranks start at the same step.

    Options are listed below (generated from the C++ option tables).
    """
    if mode == "w":
        return Writer(name, **options)
    if mode == "r":
        return Reader(name, **options)
    raise _core.InvalidArgument(f"mode must be 'r' or 'w', not {mode!r}")


def _option_section(title: str, docs: list[tuple[str, str, str, str]]) -> str:
    lines = [title, "-" * len(title)]
    for key, default, typ, doc in docs:
        shown = default if default != "" else "(unset)"
        lines.append(f"{key} : {typ}, default {shown}")
        lines.append(f"    {doc}")
    return "\n".join(lines)


open.__doc__ = (
    inspect.cleandoc(open.__doc__ or "")
    + "\n\n"
    + _option_section('Writer options (mode="w")', _core.writer_option_docs())
    + "\n\n"
    + _option_section('Reader options (mode="r")', _core.reader_option_docs())
)


def data_planes() -> list[tuple[str, bool, str]]:
    """(name, available, reason if not) for every data plane this build knows."""
    return [tuple(p) for p in _core.data_planes()]

