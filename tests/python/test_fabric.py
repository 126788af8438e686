"""The fabric data plane's own behaviour: provider choice and its errors, the auto
fallback, a reader killed in the middle of its reads, one libfabric per process. The data
behaviour itself runs in the conformance suite (fabric-tcp, fabric-shm)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import AVAILABLE, Bg, consume, ts

pytestmark = pytest.mark.skipif(not AVAILABLE.get("fabric"), reason="fabric plane not built")


def test_unusable_provider_fails_at_open_naming_it_the_reason_and_the_fix(ctx):
    # Checked on the reader's host before it contacts anyone: no writer is needed.
    with pytest.raises(ts.Unavailable) as ei:
        ctx.open_reader("fabric", fabric_provider="verbs", open_timeout=20)
    msg = str(ei.value)
    assert ctx.name in msg and "'verbs'" in msg, msg
    assert "fi_getinfo failed" in msg, msg  # libfabric's own reason
    assert "usable here: " in msg and "tcp" in msg, msg
    assert "fabric_provider=" in msg and "FI_PROVIDER" in msg, msg


def test_provider_unusable_on_the_writer_host_is_refused_with_its_reason(ctx):
    # libfabric in the writer's process sees tcp only (FI_PROVIDER filters providers), the
    # reader asks for shm: the writer refuses, saying it is its side and why.
    env = ctx.env()
    env["FI_PROVIDER"] = "tcp"
    code = textwrap.dedent(
        f"""
        import twinstream as ts
        w = ts.open({ctx.name!r}, "w", dir={str(ctx.dir)!r}, min_readers=1, open_timeout=20)
        print("OPEN", flush=True)
        try:
            w.begin_step()
        except ts.TimeoutError:
            pass
        w.close()
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "OPEN"
        with pytest.raises(ts.Unavailable) as ei:
            ctx.open_reader("fabric", fabric_provider="shm", open_timeout=20)
        msg = str(ei.value)
        assert ctx.name in msg and "writer cannot open fabric provider 'shm'" in msg, msg
        assert "fi_getinfo failed" in msg and "usable there: tcp" in msg, msg
    finally:
        p.kill()
        p.wait(30)
        p.stdout.close()


def test_auto_provider_falls_back_to_tcp_with_one_log_line_and_says_so_in_stats(ctx):
    w = ctx.spawn_writer("fabric", steps=3, options={"min_readers": 1})
    r = ctx.open_reader("fabric", fabric_provider="auto")
    stats = r.stats()
    assert stats["data_plane"] == "fabric"
    assert stats["data_plane_detail"] == "provider tcp"
    fallback = stats["data_plane_fallback"]
    assert fallback.startswith("fabric_provider=auto: cxi unusable") and fallback.endswith("using tcp"), fallback
    assert [rec["index"] for rec in consume(r)] == [0, 1, 2]
    lines = [ln for ln in ctx.test_stderr().splitlines() if "fabric_provider=auto" in ln]
    assert len(lines) == 1 and ctx.name in lines[0], lines
    assert w.result(30)["ok"]


def test_named_provider_is_shown_in_stats_without_fallback(ctx):
    w = ctx.spawn_writer("fabric", steps=1, options={"min_readers": 1})
    r = ctx.open_reader("fabric", fabric_provider="shm")
    assert r.stats()["data_plane_detail"] == "provider shm"
    assert r.stats()["data_plane_fallback"] == ""
    consume(r)
    assert w.result(30)["ok"]


def test_bounce_buffer_path_reads_exactly(ctx, monkeypatch):
    """Providers that need registered local buffers (verbs) read through a registered
    bounce buffer; TWINSTREAM_FABRIC_BOUNCE=1 takes that path with tcp, here."""
    monkeypatch.setenv("TWINSTREAM_FABRIC_BOUNCE", "1")
    code = textwrap.dedent(
        f"""
        import numpy as np, twinstream as ts
        w = ts.open({ctx.name!r}, "w", dir={str(ctx.dir)!r}, min_readers=1, open_timeout=20)
        for i in range(2):
            with w.step() as s:
                s.put("big", np.arange(3_000_000, dtype=np.int64) + i)   # 24 MB: 3 buffers
        w.close()
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], env=ctx.env())
    try:
        r = ctx.open_reader("fabric", fabric_provider="tcp")
        for step in r:
            big = step["big"]
            assert (big == np.arange(3_000_000) + step.index).all()
            part = step.get("big", start=(1_234_567,), count=(1000,))
            assert (part == np.arange(1_234_567, 1_235_567) + step.index).all()
        assert p.wait(30) == 0
    finally:
        p.kill()


VICTIM = """
import sys, json, twinstream as ts
opts = json.loads(sys.argv[1])
r = ts.open(opts.pop("name"), "r", **opts)
assert r.begin_step(timeout=30) is ts.StepStatus.OK
print("READING", flush=True)
while True:                      # pulls the same held step again and again until killed
    r.current_step["big"]
"""


def test_reader_killed_in_the_middle_of_its_reads_does_not_hang_the_writer(ctx):
    n = 6
    w = ctx.spawn_writer("fabric", steps=n, scenario="large", options={"min_readers": 2, "queue_limit": 2})
    survivor = ctx.open_reader("fabric", fabric_provider="tcp")

    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, json.dumps({"name": ctx.name, "dir": str(ctx.dir), "data_plane": "fabric", "fabric_provider": "tcp", "timeout": 30})],
        env=ctx.env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        seen = Bg(lambda: [s.index for s in survivor], name="survivor")
        assert victim.stdout.readline().strip() == "READING"
        victim.kill()
        victim.wait(30)
        assert seen.result(60) == list(range(n))
        res = w.result(60)
        assert res["ok"], res
        assert res["stats"]["steps"] == n
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(30)
        victim.stdout.close()


@pytest.mark.parametrize("order", ["mpi4py first", "twinstream first"])
def test_one_libfabric_in_a_process_with_mpi4py(order):
    pytest.importorskip("mpi4py")
    imports = "from mpi4py import MPI; import twinstream" if order == "mpi4py first" else "import twinstream; from mpi4py import MPI"
    # MPICH on its ofi network module: MPI uses libfabric too (its provider plugins,
    # lib*-fi.so, are loaded by that one libfabric and are not counted).
    code = imports + textwrap.dedent(
        """
        import os
        MPI.COMM_WORLD.Barrier()
        print(sorted({l.split()[-1] for l in open('/proc/self/maps')
                      if os.path.basename(l.split()[-1]).startswith('libfabric.so')}))
        """
    )
    env = dict(os.environ, MPIR_CVAR_CH4_NETMOD="ofi")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    libs = eval(out.stdout.strip().splitlines()[-1])
    assert len(libs) == 1, libs
