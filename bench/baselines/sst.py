"""ADIOS2 SST baseline: one writer process streaming steps to one or two reader processes.

This is the system twinstream replaces, measured the way twinstream will be: separate
processes on one host, one 1-D uint8 variable of S bytes per step, every reader reading
every step fully into its own numpy buffer.

Launcher vs. workers
    ``run_sst()`` (imported by the drivers) launches this same file as a script in the
    roles ``writer`` and ``reader``.  Workers only stream and dump raw timestamps as JSON;
    all statistics are computed by the launcher, so the workers stay minimal and
    multi-reader runs can be aggregated over one common time window.  adios2 is imported
    only in the workers, so importing this module does not require adios2.

Clocks
    The writer takes ``time.monotonic_ns()`` right after its BeginStep and sends it in a
    single-value int64 variable "t" (a GlobalValue, which BP5 carries in the step's
    metadata).  CLOCK_MONOTONIC is one clock for all processes of a host, so the reader's
    ``monotonic_ns() - t`` is a true one-way latency.  Three times are reported:
      lat_*       until the step's data sits in the reader's buffer (Get Sync returned);
                  this is the figure to compare with raw_tcp and twinstream;
      meta_lat_*  until the reader's BeginStep returned.  Not "metadata only": with one
                  reader SST's SpeculativePreloadMode=AUTO pushes the data along with
                  the metadata, so BeginStep already waits for most of the transfer;
      publish_*   writer side, until its EndStep returned (Put copy + marshalling +
                  hand-off); in throughput mode this includes back-pressure waits.

Stock SST and Nagle
    EVPath's TCP sockets never set TCP_NODELAY, so small control messages stall on
    Nagle + delayed ACK (~44 ms per 4 KiB step; occasional 40 ms p99 spikes at larger
    sizes).  ``tcp_nodelay=True`` preloads tcp_nodelay_preload.so to measure SST without
    that artefact; those records are labelled "sst_nodelay".

Modes
    throughput  the writer streams back to back; QueueLimit=2 + QueueFullPolicy=Block
                applies back-pressure, so latencies are "loaded" (include queueing).
    latency     ping-pong: after EndStep each reader writes one byte to a pipe and the
                writer waits for all acks before the next step, so latencies are the
                unloaded cost of one step.  (SST has no reader->writer data channel the
                benchmark could use, hence the side pipe.)

Throughput is measured reader side over the steps after a short warm-up:
bytes / (time the last step's data arrived - time the warm-up's last step arrived).
With two readers (StepDistributionMode=AllToAll, both get every step) ``gbps`` is the
aggregate: all bytes delivered over the union of the readers' windows.

Robustness: SST contact files are written into a fresh temp directory (the workers' cwd),
every worker has a deadline and all of them are killed when it passes or when any one
fails, and a failure becomes an error record instead of an exception or a hang.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STREAM_NAME = "bench"
# A run cut short by its time budget still gets this many steps, enough for a median.
MIN_STEPS_IN_BUDGET = 30
# A reader with no step for this long has been left waiting by SST (see _reader).
STALL_S = 10.0

# Engine parameters, as strings because that is what IO.SetParameters takes.
# WAN = EVPath sockets over TCP, the one data transport the pip wheel has that works on a
# loopback-only host (RDMA needs libfabric, UCX/MPI are not built in).
BASE_PARAMS = {
    "NetworkInterface": "lo",
    "DataTransport": "WAN",
    "MarshalMethod": "BP5",
    # Readers give up instead of waiting forever for the writer's contact file.
    "OpenTimeoutSecs": "30",
}
WRITER_PARAMS = {
    "QueueLimit": "2",
    "QueueFullPolicy": "Block",
    "StepDistributionMode": "AllToAll",
    # RendezvousReaderCount is set per run: the writer's Open waits for that many readers,
    # so no step is produced before every reader is attached.
}


# --------------------------------------------------------------------------- launcher


def run_sst(
    step_bytes: int,
    steps: int,
    readers: int = 1,
    mode: str = "throughput",
    timeout: float = 90.0,
    extra_params: dict | None = None,
    tcp_nodelay: bool = False,
    time_budget: float | None = None,
    cpus: list[int] | None = None,
    distribution: str = "AllToAll",
) -> dict:
    """One SST run with 1 writer and ``readers`` readers; returns a result record.

    ``extra_params`` are added to (or override) the engine parameters of all workers,
    e.g. {"QueueLimit": "4"} for a what-if.  ``tcp_nodelay`` preloads a shim that turns
    Nagle off on EVPath's TCP sockets (see tcp_nodelay_preload.c); such records are
    labelled baseline "sst_nodelay".  ``time_budget`` (seconds) lets the writer end
    the stream early, after at least MIN_STEPS_IN_BUDGET steps, once the budget is spent:
    it bounds runs whose per-step cost is unknown in advance (stock SST at 4 KiB is ~300x
    slower than with nodelay); such records carry "steps_requested".  ``cpus`` pins the
    processes [writer, reader0, reader1, ...] to CPUs, cycling through the list.
    ``distribution`` is SST's StepDistributionMode: AllToAll (every reader every step),
    RoundRobin or OnDemand (each step to one reader; the record's gbps is then the
    group's aggregate, every step counted once).
    """
    # Imported here so the worker processes (which run this file as a script, where the
    # relative import is impossible) never need it.
    from ._build import compile_c
    from ._common import default_warmup, error_record, latency_fields, tail

    if mode not in ("throughput", "latency"):
        raise ValueError(f"mode must be 'throughput' or 'latency', not {mode!r}")
    if readers < 1 or steps < 2:
        raise ValueError("need readers >= 1 and steps >= 2")
    label = "sst_nodelay" if tcp_nodelay else "sst"
    where = {"mode": mode, "readers": readers}
    if distribution != "AllToAll":
        where["distribution"] = distribution
        extra_params = dict(extra_params or {}, StepDistributionMode=distribution)
    if cpus:
        where["cpus"] = [cpus[i % len(cpus)] for i in range(readers + 1)]
    params = dict(BASE_PARAMS, **(extra_params or {}))
    params_arg = json.dumps(params)
    env = None
    if tcp_nodelay:
        try:
            shim = compile_c("tcp_nodelay_preload.c", "tcp_nodelay_preload.so",
                             ["-shared", "-fPIC", "-ldl"])
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            return error_record(label, step_bytes, steps, f"shim build failed: {exc}", **where)
        env = dict(os.environ, LD_PRELOAD=" ".join(
            filter(None, [str(shim), os.environ.get("LD_PRELOAD")])))

    workdir = Path(tempfile.mkdtemp(prefix="twinstream_sst_"))
    procs: list[tuple[str, subprocess.Popen]] = []
    # Latency mode: one pipe per reader, read end to the writer, write end to the
    # reader.  The launcher closes its copies right after spawning so that a dead
    # reader shows up as EOF in the writer instead of a hang.
    ack_pipes = [os.pipe() for _ in range(readers)] if mode == "latency" else []
    t_launch = time.monotonic()
    try:
        common = [
            "--bytes", str(step_bytes),
            "--steps", str(steps),
            "--readers", str(readers),
            "--params", params_arg,
            "--timeout", str(timeout),
            "--time-budget", str(time_budget or 0),
        ]
        def pin(i: int) -> list[str]:
            return ["--cpu", str(where["cpus"][i])] if cpus else []

        writer_fds = [r for r, _ in ack_pipes]
        procs.append(("writer", _spawn(
            workdir, "writer",
            common + pin(0) + ["--ack-fds", ",".join(map(str, writer_fds))],
            writer_fds, env)))
        for i in range(readers):
            fds = [ack_pipes[i][1]] if ack_pipes else []
            procs.append((f"reader{i}", _spawn(
                workdir, f"reader{i}",
                common + pin(i + 1) + ["--ack-fds", ",".join(map(str, fds))],
                fds, env)))
        _close_pipes(ack_pipes)

        failure = _wait_all(procs, deadline=t_launch + timeout)
        outputs = {name: _read_outputs(workdir, name) for name, _ in procs}
        if failure:
            details = [
                f"{name}: {tail(err, 300)}" for name, (_, err) in outputs.items() if err.strip()
            ]
            return error_record(
                label, step_bytes, steps, "; ".join([failure, *details]), **where
            )

        results = {}
        for name, _ in procs:
            out, err = outputs[name]
            try:
                results[name] = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                return error_record(
                    label, step_bytes, steps, f"{name} printed no result: {tail(err)}", **where
                )
    finally:
        _close_pipes(ack_pipes)  # no-op unless spawning failed half-way
        _kill_all(procs)
        shutil.rmtree(workdir, ignore_errors=True)

    # ---- statistics over the post-warm-up steps of every reader
    writer = results.pop("writer")
    written = writer["steps_written"]
    shared = distribution != "AllToAll"  # each step goes to one reader
    problems = [
        f"{name} got {len(r['steps'])}/{written} steps, {r['bad']} corrupted"
        for name, r in results.items()
        if (not shared and len(r["steps"]) != written) or r["bad"]
    ]
    got = sum(len(r["steps"]) for r in results.values())
    stalled = [name for name, r in results.items() if r.get("stalled")]
    if shared and got != written and not stalled:
        problems.append(f"the readers got {got} steps in all, not {written}")
    if problems:
        return error_record(label, step_bytes, steps, "; ".join(problems), **where)
    warmup = default_warmup(written)
    lat_us, meta_lat_us, windows = [], [], []
    measured_bytes = 0
    if shared:
        # Each step went to one reader: the group's steps merged in arrival order make one
        # stream, measured like a single reader's.
        recs = sorted((x for r in results.values() for x in r["steps"]), key=lambda x: x[2])
        warmup = default_warmup(len(recs))
        groups = [recs]
    else:
        groups = [r["steps"] for r in results.values()]
    for recs in groups:  # [t_writer, t_begin_step, t_data] in monotonic ns
        for t_w, t_b, t_d in recs[warmup:]:
            lat_us.append((t_d - t_w) / 1e3)
            meta_lat_us.append((t_b - t_w) / 1e3)
        windows.append((recs[warmup - 1][2], recs[-1][2]))
        measured_bytes += (len(recs) - warmup) * step_bytes
    seconds = (max(e for _, e in windows) - min(s for s, _ in windows)) / 1e9
    rec = {
        "baseline": label,
        **where,
        "step_bytes": step_bytes,
        "steps": written,
        "warmup_steps": warmup,
        "seconds": round(seconds, 6),
        "gbps": round(measured_bytes / seconds / 1e9, 4) if seconds > 0 else None,
        **latency_fields(lat_us),
        **latency_fields(meta_lat_us, prefix="meta_lat"),
        **latency_fields([ns / 1e3 for ns in writer["publish_ns"][warmup:]], prefix="publish"),
        "wall_s": round(time.monotonic() - t_launch, 3),
    }
    if written != steps:
        rec["steps_requested"] = steps
    if stalled:
        # What a user sees: the stall is part of the run's time, the undelivered steps
        # are lost to the stalled reader.
        rec["stalled_readers"] = stalled
        rec["undelivered_steps"] = written - got
        rec["stall_s"] = STALL_S
    if readers > 1 and not shared:
        per_reader = measured_bytes / readers
        rec["per_reader_gbps"] = [round(per_reader / ((e - s) / 1e9) / 1e9, 4) for s, e in windows]
    return rec


def _spawn(
    workdir: Path, name: str, args: list[str], pass_fds: list[int], env: dict | None
) -> subprocess.Popen:
    """Start this file as a worker; stdout/stderr go to files, never to pipes.

    Files cannot fill up and block a worker the way an unread pipe can, and SST is
    chatty on stderr ("waiting for contact information file ...").
    """
    role = "writer" if name == "writer" else "reader"
    with open(workdir / f"{name}.out", "wb") as out, open(workdir / f"{name}.err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), role, *args],
            cwd=workdir,  # SST writes its <stream>.sst contact file into the cwd
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            pass_fds=pass_fds,
            env=env,
        )


def _wait_all(procs: list[tuple[str, subprocess.Popen]], deadline: float) -> str | None:
    """Wait for every worker; on the first failure or at the deadline kill them all.

    Returns None on success, else a description of what went wrong.  Failing fast
    matters: a writer whose reader died would otherwise sit in Open/BeginStep until
    the deadline.
    """
    while True:
        pending = False
        for name, p in procs:
            rc = p.poll()
            if rc is None:
                pending = True
            elif rc != 0:
                _kill_all(procs)
                return f"{name} exited with status {rc}"
        if not pending:
            return None
        if time.monotonic() > deadline:
            stuck = [name for name, p in procs if p.poll() is None]
            _kill_all(procs)
            return "timeout waiting for " + ", ".join(stuck)
        time.sleep(0.02)


def _close_pipes(pipes: list[tuple[int, int]]) -> None:
    for fds in pipes:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:  # already closed
                pass
    pipes.clear()


def _kill_all(procs: list[tuple[str, subprocess.Popen]]) -> None:
    for _, p in procs:
        if p.poll() is None:
            p.kill()
    for _, p in procs:
        p.wait()


def _read_outputs(workdir: Path, name: str) -> tuple[str, str]:
    def read(suffix: str) -> str:
        path = workdir / f"{name}.{suffix}"
        return path.read_text(errors="replace") if path.exists() else ""

    return read("out"), read("err")


# --------------------------------------------------------------------------- workers


def _writer(args: argparse.Namespace) -> None:
    import numpy as np
    import adios2.bindings as ab

    adios = ab.ADIOS()
    io = adios.DeclareIO("writer")
    io.SetEngine("SST")
    io.SetParameters(
        dict(WRITER_PARAMS, **args.params, RendezvousReaderCount=str(args.readers))
    )
    data = np.full(args.bytes, 0xA5, dtype=np.uint8)  # allocated and touched up front
    stamp = np.zeros(1, dtype=np.int64)
    # Empty shape: a single global value, carried with the metadata.
    var_t = io.DefineVariable("t", stamp)
    var_d = io.DefineVariable("data", data, [args.bytes], [0], [args.bytes], True)
    acks = [os.fdopen(int(fd), "rb", buffering=0) for fd in _fd_list(args.ack_fds)]
    publish_ns = []

    engine = io.Open(STREAM_NAME, ab.Mode.Write)  # blocks until all readers attached
    t_end = time.monotonic() + args.time_budget if args.time_budget > 0 else None
    for step in range(args.steps):
        if t_end is not None and step >= MIN_STEPS_IN_BUDGET and time.monotonic() > t_end:
            break  # out of time: Close() below tells the readers the stream ended
        # Mark both ends so the reader can verify it holds this very step.
        data[0] = data[-1] = step & 0xFF
        engine.BeginStep()
        # The clock starts once the step is open for puts, as in bench/stream_e2e.cpp,
        # so both systems' latencies cover the same span: put ... data in reader hands.
        stamp[0] = time.monotonic_ns()
        # Sync puts copy the data into SST's buffer at Put, so reusing `data` for the
        # next step is safe no matter how long readers take to fetch this one.
        engine.Put(var_t, stamp, ab.Mode.Sync)
        engine.Put(var_d, data, ab.Mode.Sync)
        engine.EndStep()
        publish_ns.append(time.monotonic_ns() - int(stamp[0]))
        for ack in acks:
            if ack.read(1) != b"\x01":
                raise SystemExit(f"writer: reader ack pipe closed at step {step}")
    engine.Close()
    print(json.dumps({"steps_written": len(publish_ns), "publish_ns": publish_ns}))


def _reader(args: argparse.Namespace) -> None:
    import numpy as np
    import adios2.bindings as ab

    adios = ab.ADIOS()
    io = adios.DeclareIO("reader")
    io.SetEngine("SST")
    io.SetParameters(args.params)
    buf = np.zeros(args.bytes, dtype=np.uint8)  # zeros() + first Get pre-fault it
    stamp = np.zeros(1, dtype=np.int64)
    ack_fds = _fd_list(args.ack_fds)
    ack = os.fdopen(ack_fds[0], "wb", buffering=0) if ack_fds else None

    engine = io.Open(STREAM_NAME, ab.Mode.Read)
    records, bad = [], 0
    deadline = time.monotonic() + args.timeout
    last_step = time.monotonic()
    stalled = False
    while True:
        # Short waits, retried: under StepDistributionMode=OnDemand with 2 readers, SST
        # can leave a reader waiting on a step it never delivers (seen here: the writer
        # and the other reader stall with it). A reader that has had no step for STALL_S
        # stops and says so, and the record carries the stall instead of hanging the run.
        status = engine.BeginStep(ab.StepMode.Read, 1.0)
        if status == ab.StepStatus.NotReady:
            now = time.monotonic()
            if now - last_step < STALL_S and now < deadline:
                continue
            stalled = True
            break
        if status == ab.StepStatus.EndOfStream:
            break
        if status != ab.StepStatus.OK:
            raise SystemExit(f"reader: BeginStep returned {status}")
        last_step = time.monotonic()
        t_begin = time.monotonic_ns()
        engine.Get(io.InquireVariable("t"), stamp, ab.Mode.Sync)
        engine.Get(io.InquireVariable("data"), buf, ab.Mode.Sync)
        t_data = time.monotonic_ns()
        expect = engine.CurrentStep() & 0xFF
        if buf[0] != expect or buf[-1] != expect:
            bad += 1
        engine.EndStep()
        if ack is not None:
            ack.write(b"\x01")
        records.append((int(stamp[0]), t_begin, t_data))
    if not stalled:
        engine.Close()
    print(json.dumps({"steps": records, "bad": bad, "stalled": stalled}))
    sys.stdout.flush()
    if stalled:
        os._exit(0)  # SST's Close would wait for the step it never delivered


def _fd_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _main() -> None:
    p = argparse.ArgumentParser(description="SST baseline worker (launched by run_sst)")
    p.add_argument("role", choices=["writer", "reader"])
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--readers", type=int, default=1)
    p.add_argument("--params", type=json.loads, default={})
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--time-budget", type=float, default=0.0)
    p.add_argument("--ack-fds", default="")
    p.add_argument("--cpu", type=int, default=-1)
    args = p.parse_args()
    if args.cpu >= 0:
        # Before adios2 is imported, so SST's network threads inherit the pinning too.
        os.sched_setaffinity(0, {args.cpu})
    (_writer if args.role == "writer" else _reader)(args)


if __name__ == "__main__":
    _main()
