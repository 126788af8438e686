"""Raw TCP baseline: build raw_tcp.c once and run it as a subprocess.

The C program does the measuring (sender and receiver fork off one another and talk
over 127.0.0.1); this module only compiles it into bench/build/ and turns its one-line
JSON output into a result record.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ._build import compile_c
from ._common import error_record, tail


def build_raw_tcp(force: bool = False) -> Path:
    """Compile raw_tcp.c with ``cc -O2`` (``$CC`` overrides) unless already up to date."""
    return compile_c("raw_tcp.c", "raw_tcp", [], force=force)


def run_raw_tcp(
    step_bytes: int,
    steps: int,
    mode: str = "throughput",
    timeout: float = 60.0,
    cpus: list[int] | None = None,
    sockbuf: int | None = None,
) -> dict:
    """One raw TCP run: ``mode`` is 'throughput' (pipelined) or 'latency' (ping-pong).

    ``cpus`` pins [sender, receiver] (a list cycled over the two processes, so [0] puts
    both on CPU 0); None leaves placement to the scheduler.  ``sockbuf`` overrides the
    4 MiB SO_SNDBUF/SO_RCVBUF request (0 = kernel autotuning); on loopback smaller
    buffers can be faster for large steps because less data in flight stays in cache.

    Returns the C program's JSON record, or an error record if it fails or exceeds
    ``timeout`` seconds (the program also arms its own alarm, as a second line of
    defence against a hang if this process dies first).
    """
    if mode not in ("throughput", "latency"):
        raise ValueError(f"mode must be 'throughput' or 'latency', not {mode!r}")
    where = {"mode": mode}
    try:
        binary = build_raw_tcp()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return error_record("raw_tcp", step_bytes, steps, f"build failed: {exc}", **where)
    cmd = [
        str(binary),
        "--bytes", str(step_bytes),
        "--steps", str(steps),
        "--mode", mode,
        "--timeout", str(int(timeout) + 5),
    ]
    if sockbuf is not None:
        cmd += ["--sockbuf", str(sockbuf)]
    if cpus:
        cmd += ["--cpus", f"{cpus[0]},{cpus[1 % len(cpus)]}"]
        where["cpus"] = [cpus[0], cpus[1 % len(cpus)]]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        # subprocess.run kills the direct child; the forked sender then gets EOF/EPIPE
        # or its own alarm, so nothing is left behind.
        return error_record("raw_tcp", step_bytes, steps, f"timeout after {timeout}s", **where)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        msg = f"exit status {proc.returncode}: {tail(proc.stderr) or 'no output'}"
        return error_record("raw_tcp", step_bytes, steps, msg, **where)
    return {**json.loads(lines[-1]), **where}
