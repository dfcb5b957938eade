"""`run --mode pd` in bounded memory: its up-front estimate (hand-computed parts), the one-line refusal,
and what the replay holds (no expanded CSR, block lists only while a request is in flight)."""
import gc

import numpy as np
import pytest

from sim.config import load_config
from sim.errors import InputError
from sim.modes.memory import (
    BASE_B,
    ID_B,
    PD_SLOT_B,
    PER_ACCESS_B,
    PY_BLOCK_B,
    RUN_PER_REQ_B,
    GiB,
    WorkloadSize,
    pd_estimate,
)
from sim.modes.pd.finished import FinishedRequests
from sim.modes.pd.setup import prepare
from sim.modes.pd.simulator import simulate
from sim.modes.runner import pd_need, requests_in_flight, run_mode
from sim.replica.request import Req
from trace.source import workload_from_config
from trace.workload import Workload


def small_cfg(requests: int = 300):
    return load_config(overrides=[f"synthetic.requests={requests}", f"synthetic.sessions={requests // 10}"])


def test_estimate_parts_by_hand():
    # 4 requests of 3, 3, 2, 4 blocks (12 accesses), held as a CSR: workload = its arrays
    w = Workload.from_requests([[0, 1, 2], [0, 1, 3], [4, 5], [0, 1, 3, 6]])
    kind, e = pd_estimate(w, slots={"pd": 10, "colocated": 25}, in_flight=2, per_access=False)
    assert kind == "colocated"  # the larger deployment is the peak: the two run one after the other
    assert e.parts == {
        "workload": w.nbytes(),
        "per-request results": 4 * RUN_PER_REQ_B["pd_timed"],  # a Req per request
        "cache slots": 25 * PD_SLOT_B,
        "block lists in flight": 2 * (12 / 4) * PY_BLOCK_B,  # 2 requests of the mean 3 blocks
    }
    assert e.total == BASE_B + sum(e.parts.values())
    # a policy reading per-access arrays (Belady's next use): 12 accesses more; in-flight capped at n
    _, e2 = pd_estimate(w, slots={"pd": 10}, in_flight=99, per_access=True, input_nbytes=1000)
    assert e2.parts["per-access arrays"] == 12 * PER_ACCESS_B
    assert e2.parts["block lists in flight"] == 12 * PY_BLOCK_B
    assert e2.parts["workload"] == w.nbytes() + 1000  # the input and its prepared copy
    assert e2.parts["cache slots"] == 10 * PD_SLOT_B
    # in parent form the per-access arrays expand the ids too
    c = WorkloadSize(requests=2, nbytes=100, accesses=7, own_blocks=4, compact=True, renumber=False)
    _, e3 = pd_estimate(c, slots={"pd": 1}, in_flight=0, per_access=True)
    assert e3.parts["per-access arrays"] == 7 * (PER_ACCESS_B + ID_B)


def test_cache_slots_by_hand():
    """Default deployment: 2 racks x 64 H100 (16 nodes), Llama-3-70B tp 2: 64 replicas, 16 prefill (1:3);
    2,621,440-byte blocks (16 tokens x 163,840 bytes of fp8 KV a token: 80 layers x 8 KV heads x 128 x K and V):
    DRAM 64 GiB -> 26,214 blocks per node, EIC 512 GiB -> 209,715 per rack; a replica's tree 8,430 blocks."""
    prep = prepare(small_cfg(), workload_from_config(small_cfg())[0], "lru")
    s = prep.setup
    assert s.kv_bytes_per_token == 80 * 8 * 128 * 2 == 163_840 and s.block_tokens == 16
    assert s.tier_blocks() == (2_621_440, 26_214, 209_715)
    assert s.tree_blocks == 8_430 and s.prefill_per_rack * s.racks == 16 and len(s.replica_gpus) == 64
    big = 10**9  # every tier full
    assert s.cache_slots("pd", big) == 16 * 8_430 + 16 * 26_214 + 2 * 209_715
    assert s.cache_slots("colocated", big) == 64 * 8_430 + 16 * 26_214 + 2 * 209_715
    # a tier holds at most the distinct blocks: 34 caches (PD) / 82 (colocated) of 100 each
    assert s.cache_slots("pd", 100) == (16 + 16 + 2) * 100
    assert s.cache_slots("colocated", 100) == (64 + 16 + 2) * 100


def test_in_flight_bound():
    cfg = small_cfg()
    seqs = cfg.compute.max_num_seqs
    stable = {"pools": {"prefill": {"offered_load_share": 0.3}, "decode": {"offered_load_share": None}}}
    assert requests_in_flight(cfg, 10**6, 64, stable) == 64 * seqs
    assert requests_in_flight(cfg, 100, 64, stable) == 100  # never more than the requests
    # offered load 2 on one pool: half the requests pile up over the run
    over = {"pools": {"prefill": {"offered_load_share": 2.0}, "decode": {"offered_load_share": 0.5}}}
    assert requests_in_flight(cfg, 10**6, 64, over) == 64 * seqs + 500_000


def _estimate(cfg, w):
    return pd_need(cfg, w, "lru").est.total


def test_cli_refuses_in_one_line_before_any_deployment(monkeypatch, capsys, tmp_path):
    import sim.cli as cli
    import sim.modes.pd.run as pd_run

    cfg = small_cfg()
    need = _estimate(cfg, workload_from_config(cfg)[0])
    # between the generation's estimate (~0.39 GiB) and the run's: generated, then refused
    assert need > 0.45 * GiB
    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", "0.45")
    monkeypatch.setattr(pd_run, "simulate", lambda *a, **k: pytest.fail("simulated before the memory check"))
    out = tmp_path / "out"
    rc = cli.main(["run", "--mode", "pd", "--quiet", "--no-plot", "--set", "synthetic.requests=300",
                   "--set", "synthetic.sessions=30", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("error: --mode pd: replaying 300 requests on 128 GPUs as PD and colocated")
    assert f"needs an estimated {need / GiB:.1f} GiB" in err[0]
    assert "cache slots" in err[0] and "lower synthetic.requests" in err[0] and "KVSIM_MEMORY_LIMIT_GIB" in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_runs_just_under_the_limit(monkeypatch):
    cfg = small_cfg(120)
    w = workload_from_config(cfg)[0]
    need = _estimate(cfg, w)
    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", str((need + 2**20) / GiB))
    assert run_mode(cfg, "pd", workload=w)["mode"] == "pd"
    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", str((need - 2**20) / GiB))
    with pytest.raises(InputError, match="replaying 120 requests on 128 GPUs as PD and colocated"):
        run_mode(cfg, "pd", workload=w)


def test_replay_reads_the_parent_form_and_drops_finished_lists():
    """The compact workload is never expanded, each finished request's list is dropped, and the results
    equal those of the same workload held as a CSR (the old in-memory path)."""
    cfg = small_cfg(100)
    w = workload_from_config(cfg)[0]
    assert w.compact
    prep = prepare(cfg, w, "lru")
    old = prepare(cfg, w.expanded(), "lru")
    assert not old.workload.compact
    for kind in ("pd", "colocated"):
        a, b = simulate(kind, cfg, prep, "lru"), simulate(kind, cfg, old, "lru")
        assert "block_ids" not in prep.workload.__dict__
        # a finished request is a row of columns: its Req (and block list) is dropped; at most the last one
        # each replica's loop and the decode router saw stay referenced, not one per request
        assert isinstance(a.reqs, FinishedRequests) and a.reqs.finished == len(prep.workload)
        gc.collect()
        replicas = sum(len(p) for p in a.pools.values())
        # type(), not isinstance: a dead weakref.proxy another test left among gc's objects raises on isinstance
        assert len([o for o in gc.get_objects() if type(o) is Req]) <= min(replicas + 1, len(prep.workload) // 2)
        for f in ("t_kv", "t_done", "hit_hbm", "hit_low", "pre", "dec", "recomputed"):
            assert np.array_equal([getattr(r, f) for r in a.reqs], [getattr(r, f) for r in b.reqs]), f


def test_pd_rechecks_the_online_learned_window_after_its_first_pass(monkeypatch, capsys, tmp_path):
    """The single-node re-check's workload (tests/learned/test_learned_memory.py: 600 cyclic requests,
    retraining every 200, exact window 20,000 rows = 2,080,000 bytes) as `run --mode pd`: with the
    up-front assumption made to under-count, a limit 0.5 MiB under the estimate with the exact window is
    refused in one line before either deployment, 0.5 MiB over it runs, and both deployments and the
    re-check share one first pass."""

    import sim.cli as cli
    import sim.modes.memory as memory
    import sim.modes.pd.run as pd_run
    from tests.learned.test_learned_memory import WINDOW_B, cyclic_learned_run

    args, seen, first_passes, rest, lim = cyclic_learned_run(tmp_path, monkeypatch, ["--mode", "pd"])
    window_b = WINDOW_B
    simulated: list = []
    real_sim = pd_run.simulate
    monkeypatch.setattr(pd_run, "simulate", lambda *a, **k: (simulated.append(1), real_sim(*a, **k))[1])
    capsys.readouterr()
    assert cli.main([*args, "--report-json", str(tmp_path / "refused.json")]) == 2
    out, err = capsys.readouterr()
    assert seen[0].parts[memory.LEARNED_WINDOW] == 0 and seen[0].total == rest  # the assumption under-counts
    assert len(seen) == 2 and seen[1].parts[memory.LEARNED_WINDOW] == window_b and seen[1].total == rest + window_b
    assert not simulated and out == "" and len(err.splitlines()) == 1
    assert err.startswith("error: --policy learned: replaying ") and "as PD and colocated" in err
    assert "training window of 20,000 rows (exact after its first pass)" in err
    assert not (tmp_path / "refused.json").exists()

    first_passes.clear()
    monkeypatch.setenv(memory.ENV, repr((rest + window_b + 2**19) / GiB))
    assert cli.main([*args, "--report-json", str(tmp_path / "ran.json")]) == 0
    # PD and colocated share the re-check's first pass (a deployment this small keeps every priority: below
    # sim.modes.pd.simulator.RELEASE_MIN_ACCESSES it releases none, so its scorer serves the next one)
    assert len(simulated) == 2 and len(first_passes) == 1
