"""Reader groups: delivery policies, re-delivery when a member dies, elastic membership,
kept steps for newcomers, latest readers. Real writer and reader processes over shm and
tcp; every wait bounded."""

from __future__ import annotations

import json
import math
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import PROCS, ts

pytestmark = pytest.mark.timeout(120)


def _group(policy: str, plane: str, **extra) -> dict:
    return {"group": "g", "policy": policy, "data_plane": plane, **extra}


def _step_lines(h) -> list[tuple[int, bool]]:
    """(index, redelivered) of every step a reader printed; works for a killed reader."""
    out = []
    for line in h.out.snapshot():
        if line.startswith("STEP "):
            parts = line.split()
            out.append((int(parts[1]), len(parts) > 2 and parts[2] == "redelivered"))
    return out


def _batch_lines(h) -> list[tuple[int, list[tuple[int, int]]]]:
    """(batch id, samples) of every batch a reader printed; works for a killed reader."""
    out = []
    for line in h.out.snapshot():
        if line.startswith("BATCH "):
            _, bid, samples = line.split(" ", 2)
            out.append((int(bid), [tuple(s) for s in json.loads(samples)]))
    return out


def _check_no_loss(delivered: list[int], redelivered: set[int], written: int) -> None:
    """Every written step arrived; a step that arrived twice was marked as re-delivered."""
    counts = Counter(delivered)
    assert set(counts) == set(range(written)), f"lost: {sorted(set(range(written)) - set(counts))}"
    dups = {i for i, c in counts.items() if c > 1}
    assert dups <= redelivered, f"duplicates {sorted(dups - redelivered)} not marked redelivered"


# --------------------------------------------------------------------------- policies


@pytest.mark.parametrize("members", [1, 2, 4])
@pytest.mark.parametrize("policy", ["all", "round_robin", "on_demand"])
def test_policy_delivers_as_promised(ctx, remote_plane, policy, members):
    n = 24
    w = ctx.spawn_writer(remote_plane, steps=n, options={"min_readers": members, "queue_limit": 4})
    readers = [ctx.spawn_reader(options=_group(policy, remote_plane)) for _ in range(members)]
    results = [r.result(90) for r in readers]
    assert w.result(60)["ok"], w.describe()
    for r, res in zip(readers, results):
        assert res["ok"] and res["values_ok"], r.describe()
        assert res["redelivered"] == []
    got = [res["indices"] for res in results]
    if policy == "all":
        assert all(g == list(range(n)) for g in got), got
        return
    assert sorted(sum(got, [])) == list(range(n)), got  # each step to exactly one member
    if policy == "round_robin":
        # Member j (in join order) gets the steps k with k mod n == j.
        residues = sorted(g[0] % members for g in got)
        assert residues == list(range(members)), got
        for g in got:
            assert g == list(range(g[0] % members, n, members)), got


def test_on_demand_gives_more_to_the_faster_member(ctx, remote_plane):
    n = 40
    w = ctx.spawn_writer(remote_plane, steps=n, options={"min_readers": 2, "queue_limit": 2})
    fast = ctx.spawn_reader(options=_group("on_demand", remote_plane, prefetch=1))
    slow = ctx.spawn_reader(options=_group("on_demand", remote_plane, prefetch=1), sleep=0.1)
    f, s = fast.result(90), slow.result(90)
    assert w.result(60)["ok"]
    assert sorted(f["indices"] + s["indices"]) == list(range(n))
    # The slow member sleeps 0.1 s per step: 40 steps would take it 4 s alone.
    assert len(f["indices"]) > len(s["indices"]), (f["indices"], s["indices"])


def test_every_group_sees_the_whole_stream(ctx, remote_plane):
    n = 16
    w = ctx.spawn_writer(remote_plane, steps=n, options={"min_readers": 4})
    rr = [ctx.spawn_reader(options={**_group("round_robin", remote_plane), "group": "train"}) for _ in range(2)]
    viz = ctx.spawn_reader(options={"group": "viz", "data_plane": remote_plane})
    od = ctx.spawn_reader(options={**_group("on_demand", remote_plane), "group": "hpo"})
    res = [h.result(90) for h in rr + [viz, od]]
    assert w.result(60)["ok"]
    assert sorted(res[0]["indices"] + res[1]["indices"]) == list(range(n))
    assert res[2]["indices"] == list(range(n))
    assert res[3]["indices"] == list(range(n))


def test_group_members_must_agree_on_the_policy(ctx):
    ctx.open_writer()
    ctx.open_reader("tcp", group="g", policy="on_demand")
    with pytest.raises(ValueError, match="uses policy 'on_demand'"):
        ctx.open_reader("tcp", group="g", policy="round_robin", open_timeout=5)
    ctx.open_reader("tcp", group="s", policy="shuffle", batch_size=4, seed=1)
    with pytest.raises(ValueError, match="batch_size=4"):
        ctx.open_reader("tcp", group="s", policy="shuffle", batch_size=8, seed=1, open_timeout=5)
    with pytest.raises(ValueError, match="latest=True cannot be used"):
        ctx.open_reader("tcp", group="r", policy="round_robin", latest=True, open_timeout=5)


# --------------------------------------------------------------------------- re-delivery


@pytest.mark.parametrize("policy", ["round_robin", "on_demand"])
def test_member_killed_holding_a_step_loses_nothing(ctx, remote_plane, policy):
    n = 30
    w = ctx.spawn_writer(remote_plane, steps=n, options={"min_readers": 2, "queue_limit": 4})
    victim = ctx.spawn_reader(options=_group(policy, remote_plane), die_at=4)
    survivor = ctx.spawn_reader(options=_group(policy, remote_plane), sleep=0.01)
    assert victim.wait_exit(60) == -signal.SIGKILL, victim.describe()
    res = survivor.result(90)
    assert w.result(60)["ok"], w.describe()
    assert res["ok"] and res["values_ok"], survivor.describe()
    seen_by_victim = [i for i, _ in _step_lines(victim)]
    held_at_death = seen_by_victim[-1]
    assert held_at_death in res["redelivered"], (seen_by_victim, res)
    assert res["stats"]["redelivered"] == len(res["redelivered"])
    _check_no_loss(seen_by_victim + res["indices"], set(res["redelivered"]), n)


def test_shuffle_member_killed_holding_a_batch_loses_no_sample(ctx, remote_plane):
    opts = _group("shuffle", remote_plane, window=4, batch_size=5, seed=3)
    w = ctx.spawn_writer(remote_plane, steps=12, options={"min_readers": 2})
    victim = ctx.spawn_reader(options=opts, die_at=2)
    survivor = ctx.spawn_reader(options=opts, sleep=0.01)
    assert victim.wait_exit(60) == -signal.SIGKILL, victim.describe()
    res = survivor.result(90)
    assert w.result(60)["ok"], w.describe()
    assert res["ok"] and res["values_ok"], survivor.describe()
    victim_batches = _batch_lines(victim)
    assert victim_batches[-1][0] in res["redelivered"]
    samples = [s for _, b in victim_batches for s in b] + [
        tuple(s) for b in res["batches"] for s in b["samples"]
    ]
    counts = Counter(samples)
    assert set(counts) == {(i, r) for i in range(12) for r in range(4)}  # 12 steps x 4 rows
    redelivered_samples = {tuple(s) for b in res["batches"] if b["id"] in res["redelivered"] for s in b["samples"]}
    assert {s for s, c in counts.items() if c > 1} <= redelivered_samples


def test_all_group_member_killed_does_not_stall_the_others(ctx, remote_plane):
    n = 20
    w = ctx.spawn_writer(remote_plane, steps=n, options={"min_readers": 2, "queue_limit": 2})
    victim = ctx.spawn_reader(options=_group("all", remote_plane), die_at=3)
    other = ctx.spawn_reader(options=_group("all", remote_plane))
    assert victim.wait_exit(60) == -signal.SIGKILL
    res = other.result(90)
    assert w.result(60)["ok"]
    assert res["indices"] == list(range(n)) and res["redelivered"] == []


# --------------------------------------------------------------------------- elastic


@pytest.mark.parametrize("policy", ["round_robin", "on_demand"])
def test_members_join_and_leave_while_streaming(ctx, remote_plane, policy):
    n = 60
    hold = ctx.signal_file("hold")
    go = ctx.signal_file("go")
    # The writer waits after step 40 until the third member has joined: it must not end
    # the stream before that member (slow to start on a loaded machine) is there.
    w = ctx.spawn_writer(remote_plane, steps=n, options={"min_readers": 1, "queue_limit": 2},
                         sleep=0.01, pauses={"40": go})
    first = ctx.spawn_reader(options=_group(policy, remote_plane), leave_after=15, hold_at=5, hold_file=hold)
    first.wait_line("HOLD 5", 60)
    # A group that loses its last member is gone (and so are the steps it had): the second
    # member joins before the first leaves.
    second = ctx.spawn_reader(options=_group(policy, remote_plane))
    second.wait_line("JOINED", 60)
    ctx.fire(hold)
    first.wait_exit(60)
    third = ctx.spawn_reader(options=_group(policy, remote_plane))
    third.wait_line("JOINED", 60)
    ctx.fire(go)
    results = [h.result(90) for h in (first, second, third)]
    assert w.result(60)["ok"], w.describe()
    for h, res in zip((first, second, third), results):
        assert res["ok"] and res["values_ok"], h.describe()
    delivered = sum((res["indices"] for res in results), [])
    redelivered = set(sum((res["redelivered"] for res in results), []))
    _check_no_loss(delivered, redelivered, n)


def test_newcomer_gets_the_first_step_and_the_history(ctx, remote_plane):
    go = ctx.signal_file()
    w = ctx.spawn_writer(
        remote_plane, steps=12, options={"history": 3, "keep_first": True}, pauses={"9": go}
    )
    w.wait_line("STEP 9", 60)
    r = ctx.spawn_reader(options={"data_plane": remote_plane})
    r.wait_line("JOINED", 30)
    ctx.fire(go)
    res = r.result(60)
    assert w.result(60)["ok"]
    assert res["indices"] == [0, 7, 8, 9, 10, 11], res


def test_latest_reader_gets_the_newest_and_never_slows_the_writer(ctx, remote_plane):
    n = 40
    hold = ctx.signal_file("hold")
    w = ctx.spawn_writer(remote_plane, steps=n, options={"min_readers": 1, "queue_limit": 1})
    r = ctx.spawn_reader(
        options={"data_plane": remote_plane, "latest": True}, hold_at=0, hold_file=hold
    )
    r.wait_line("HOLD 0", 60)
    # While the reader sits on step 0, the writer (queue_limit=1, block) runs to the end.
    w.wait_line("CLOSING", 60)
    ctx.fire(hold)
    res = r.result(60)
    wres = w.result(60)
    assert wres["ok"] and wres["stats_before_close"]["blocked_s"] == 0.0, wres
    assert res["indices"] == [0, n - 1], res
    assert res["dropped"][-1] == n - 2  # every skipped step is counted


# --------------------------------------------------------------------------- shuffle


@pytest.mark.parametrize("members", [1, 2, 4])
def test_shuffle_every_sample_exactly_once_per_pass(ctx, remote_plane, members):
    steps, window, rows, passes = 8, 4, 8, 2
    opts = _group("shuffle", remote_plane, window=window, batch_size=6, seed=11, passes=passes,
                  variables=["x", "label"])
    w = ctx.spawn_writer(remote_plane, steps=steps, scenario="rows", options={"min_readers": members})
    readers = [ctx.spawn_reader(options=opts) for _ in range(members)]
    results = [h.result(90) for h in readers]
    assert w.result(60)["ok"], w.describe()
    by_pass: dict[int, list] = {}
    for h, res in zip(readers, results):
        assert res["ok"] and res["values_ok"], h.describe()
        for b in res["batches"]:
            assert len(b["samples"]) <= 6
            by_pass.setdefault(b["pass"], []).extend(tuple(s) for s in b["samples"])
    assert sorted(by_pass) == list(range(steps // window * passes))
    for p, samples in by_pass.items():
        win = p // passes
        want = {(s, r) for s in range(win * window, (win + 1) * window) for r in range(rows)}
        assert len(samples) == len(want) and set(samples) == want, f"pass {p}"
    orders = [by_pass[p] for p in sorted(by_pass)]
    assert orders[0] != orders[1]  # each pass draws its own order


def _shuffle_sequences(ctx, name: str, seed: int, members: int) -> set[tuple]:
    opts = {"group": "g", "policy": "shuffle", "window": 2, "batch_size": 3, "seed": seed, "data_plane": "shm"}
    w = ctx.spawn_writer("shm", name=name, steps=6, options={"min_readers": members})
    readers = [ctx.spawn_reader(name=name, options=opts) for _ in range(members)]
    seqs = set()
    for h in readers:
        res = h.result(90)
        assert res["ok"], h.describe()
        seqs.add(tuple(tuple(tuple(s) for s in b["samples"]) for b in res["batches"]))
    assert w.result(60)["ok"]
    return seqs


def test_shuffle_same_seed_same_sequence(ctx):
    a = _shuffle_sequences(ctx, ctx.name + "-a", seed=5, members=2)
    b = _shuffle_sequences(ctx, ctx.name + "-b", seed=5, members=2)
    c = _shuffle_sequences(ctx, ctx.name + "-c", seed=6, members=2)
    assert a == b
    assert a != c


def _chi2_quantile(df: int, z: float) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile at standard normal z."""
    k = 2.0 / (9.0 * df)
    return df * (1.0 - k + z * math.sqrt(k)) ** 3


def test_shuffle_positions_are_uniform(ctx):
    """Each of 8 samples lands in each of 8 batch positions equally often over 400 passes
    (chi-square on the 8x8 table). The seed is fixed, so the outcome is too: this checks
    the generator and its use, it cannot flake."""
    passes = 400
    w = ctx.spawn_writer("inproc", steps=1, scenario="rows", options={"min_readers": 1})
    r = ctx.open_reader("inproc", group="g", policy="shuffle", window=1, batch_size=8, passes=passes,
                        seed=20261127, variables=["x"])
    table = np.zeros((8, 8))
    n = 0
    for step in r:
        sid = np.array(step["sample_id"])
        for pos, (s, row) in enumerate(sid):
            assert s == 0
            table[row, pos] += 1
        n += 1
    assert w.result(60)["ok"]
    assert n == passes
    expected = passes / 8
    chi2 = float(((table - expected) ** 2 / expected).sum())
    df = 7 * 7
    # Two-sided at 0.1 %: too far from uniform, or suspiciously regular.
    assert _chi2_quantile(df, -3.09) < chi2 < _chi2_quantile(df, 3.09), (chi2, table)


def test_shuffle_batches_carry_rows_from_several_blocks(ctx, plane):
    w = ctx.spawn_writer(plane, steps=4, scenario="rows", options={"min_readers": 1})
    r = ctx.open_reader(plane, group="g", policy="shuffle", window=2, batch_size=16, seed=1)
    total = 0
    for step in r:
        assert step.is_batch
        sid = step["sample_id"]
        x, label = step["x"], step["label"]
        assert x.shape == (len(sid), 3) and label.shape == (len(sid),)
        np.testing.assert_array_equal(x[:, 0], sid[:, 0])
        np.testing.assert_array_equal(x[:, 1], sid[:, 1])
        np.testing.assert_array_equal(label, 1000 * sid[:, 0] + sid[:, 1])
        # A box of a batch works like any global array: rows 2..4 of x.
        np.testing.assert_array_equal(step.get("x", (2, 0), (3, 3)), x[2:5])
        total += len(sid)
    assert w.result(60)["ok"]
    assert total == 4 * 8


def test_step_not_a_batch_has_no_sample_id(ctx):
    w = ctx.open_writer()
    r = ctx.open_reader("inproc")
    with w.step() as s:
        s.put("x", np.zeros(3))
    step = next(iter(r))
    assert not step.is_batch and not step.redelivered and step.source == ""
    with pytest.raises(ts.Error, match="not a shuffle batch"):
        step.sample_id


# --------------------------------------------------------------------------- MPI


def test_mpi_reader_job_ranks_form_one_round_robin_group(ctx):
    """The ranks of one MPI reader job (mpiexec -n 3) are the members of one group."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        mpiexec = shutil.which("mpiexec")
    assert mpiexec, "mpiexec not found: install the mpich wheel (make deps does)"
    n, ranks = 30, 3
    w = ctx.spawn_writer("shm", steps=n, options={"min_readers": ranks, "queue_limit": 4})
    args = {"name": ctx.name, "options": {"group": "trainers", "policy": "round_robin", "timeout": 60}}
    proc = subprocess.run(
        [str(mpiexec), "-n", str(ranks), sys.executable, str(PROCS / "mpi_reader.py"), json.dumps(args)],
        env=ctx.env(), cwd=str(ctx.dir), capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    res = json.loads(line.split(" ", 1)[1])
    assert w.result(60)["ok"]
    assert res["size"] == ranks
    got = [r["indices"] for r in res["ranks"]]
    assert all(r["ok"] for r in res["ranks"]), res
    assert sorted(sum(got, [])) == list(range(n))
    assert sorted(g[0] for g in got) == list(range(ranks))
    for g in got:
        assert g == list(range(g[0], n, ranks)), got


# --------------------------------------------------------------------------- churn


@pytest.mark.timeout(180)
def test_churn_readers_started_and_killed_for_a_minute(ctx):
    """Readers (shm and tcp) are started and SIGKILLed at random for a minute while the
    writer (min_readers=0, block) keeps going: it exits 0, and every surviving reader saw
    contiguous steps from where it joined."""
    duration = 60.0
    rng = random.Random(20261127)
    w = ctx.spawn_writer(
        "shm", steps=0, options={"min_readers": 0, "queue_limit": 2, "heartbeat_interval": 0.2},
        duration=duration, sleep=0.005,
    )
    w.wait_line("OPEN", 30)
    t_end = time.monotonic() + duration - 8  # the last readers get time to join and read
    alive, killed, started = [], [], 0
    while time.monotonic() < t_end:
        if len(alive) < 3 and rng.random() < 0.6:
            plane = rng.choice(["shm", "tcp"])
            alive.append(ctx.spawn_reader(options={"data_plane": plane, "timeout": 60}))
            started += 1
        elif alive and rng.random() < 0.5:
            victim = alive.pop(rng.randrange(len(alive)))
            victim.kill()
            killed.append(victim)
        time.sleep(rng.uniform(0.2, 1.0))
    wres = w.result(60)
    assert w.wait_exit(10) == 0 and wres["ok"], w.describe()
    assert started >= 10 and killed, (started, len(killed))
    for h in alive:
        res = h.result(60)
        assert res["ok"] and res["values_ok"], h.describe()
        got = res["indices"]
        assert got and got == list(range(got[0], got[0] + len(got))), h.describe()
        assert got[-1] == wres["steps_done"] - 1  # read to the end of the stream
