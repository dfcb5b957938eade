"""Cluster simulator: hand-computed micro-scenarios, routers, determinism, scale, CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cache.layout import LOC_NAMES
from sim.config import load_config
from sim.modes.cluster import run_cluster
from sim.modes.runner import run_mode
from sim.report.cluster import cluster_metrics
from sim.routing.cluster import LoadIndex
from sim.routing.registry import scope
from sim.timing.step_cost import StepModel
from tests.conftest import MOONCAKE as TRACE
from tests.conftest import ROOT
from tests.conftest import micro_workload as _workload
from trace.workload import Workload

CLUSTER_ROUTERS, ROUTERS = scope("cluster"), scope("node")  # the one registry, seen per scope

BLOCK_BYTES = 16 * 131072  # llama-3-8b fp16, 16-token blocks: 2 MiB
GiB = 1024**3
EIC, REIC = LOC_NAMES.index("local_eic"), LOC_NAMES.index("remote_eic")
# Tests of transfer times load every cached part and wait for it whole (under the step model recomputing
# a few blocks costs no more than the weight read the new tokens pay anyway; the load step's own tests
# are in test_cluster_io.py).
LOAD_ALL = {"cache.load_policy": "always", "cache.load_overlap": "none"}


def _cfg(hbm_blocks=4, dram_blocks=0, eic_blocks=64, ssd_blocks=0, **extra):
    """2 racks x 16 GPUs (2 nodes of 8), llama-3-8b TP1, tiers sized in 16-token blocks."""
    sets = [
        "model.name=llama-3-8b", "model.kv_dtype=fp16",
        "model.tp=1", "hardware.gpu=h100-sxm", "hardware.gpus_per_node=8",
        "cluster.racks=2", "cluster.gpus_per_rack=16",
        f"hardware.hbm.capacity_gib={hbm_blocks * BLOCK_BYTES / GiB}",
        f"hardware.dram.capacity_gib={dram_blocks * BLOCK_BYTES / GiB}",
        f"hardware.eic.capacity_gib={eic_blocks * BLOCK_BYTES / GiB}",
        f"cluster.remote_ssd_capacity_gib={ssd_blocks * BLOCK_BYTES / GiB}",
        "compute.gemm_efficiency=0.5", "compute.ridge_softness=0", "compute.layer_overhead_us=0",
        "cache.block_tokens=16",
        "cluster.router=round_robin",
    ] + [f"{k}={v}" for k, v in extra.items()]
    return load_config(overrides=sets)


def _prefill_s(new, cached):
    return StepModel.from_config(_cfg()).prefill_s(new, cached)


@pytest.mark.slow
def test_prefix_only_in_rack_eic_hits_there_and_pays_eic_latency(fixed_router):
    # w0 computes [1..4]; w0's next request evicts them (HBM = 4 blocks, no DRAM) into rack 0's EIC;
    # then w8 (other node, same rack) asks for [1..4, 9]: 4 blocks from the local EIC pool.
    w = _workload([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4, 9]], [0, 10, 20])
    fixed_router.plan = [0, 0, 8]
    res = run_cluster(_cfg(**LOAD_ALL), w, "lru", "fixed", timing=True)
    assert res.hit_tokens[2].tolist() == [0, 0, 0, 64, 0, 0]
    assert res.hit_tokens[:2].sum() == 0
    net = 3e-6 + 4 * BLOCK_BYTES / 50e9  # EIC latency + 4 blocks over the 50 GB/s NIC
    assert res.net_s[2] == pytest.approx(net, rel=1e-9)
    assert res.ttft_s[2] == pytest.approx(net + _prefill_s(16, 64), rel=1e-9)
    assert res.net_s[:2].tolist() == [0, 0]
    m = cluster_metrics(res, _cfg(**LOAD_ALL))
    assert m["hit_rate_by_location"]["local_eic"] == pytest.approx(64 / (64 + 64 + 80))
    assert sum(m["hit_rate_by_location"].values()) == pytest.approx(m["hit_rate"])
    # bytes: 4 victims written GPU0 -> EIC, 4 blocks read EIC -> GPU8, 1 victim of w8 already in EIC
    assert m["network"]["bytes_by_class"]["eic"] == 8 * BLOCK_BYTES
    assert m["network"]["bytes_by_class"]["spine"] == 0
    assert m["network"]["ttft_network_share"] == pytest.approx(net / res.ttft_s.sum(), rel=1e-9)


def test_other_racks_eic_only_with_cross_rack_lookup(fixed_router):
    w = _workload([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4, 9]], [0, 10, 20])
    fixed_router.plan = [0, 0, 16]  # the third request lands in rack 1
    off = run_cluster(_cfg(), w, "lru", "fixed", timing=True)
    assert off.hit_tokens[2].sum() == 0
    on = run_cluster(_cfg(**{"cluster.cross_rack_lookup": "true"}, **LOAD_ALL), w, "lru", "fixed", timing=True)
    assert on.hit_tokens[2, REIC] == 64
    assert on.net_s[2] == pytest.approx(15e-6 + 4 * BLOCK_BYTES / 50e9, rel=1e-9)
    assert on.network.bytes_by_class["spine"] == 2 * 4 * BLOCK_BYTES  # up rack 1's uplink, down rack 0's


def test_lookup_order_peer_hbm_then_dram(fixed_router):
    # w1 is w0's NVLink peer: it reads [1..4] from w0's HBM. Later w0 evicts them to DRAM (write-back)
    w = _workload([[1, 2, 3, 4], [1, 2, 3, 4, 5], [6, 7, 8, 9], [1, 2, 10]], [0, 10, 20, 30])
    fixed_router.plan = [0, 1, 0, 2]
    cfg = _cfg(hbm_blocks=4, dram_blocks=16, eic_blocks=0, **LOAD_ALL)
    res = run_cluster(cfg, w, "lru", "fixed", timing=True)
    loc = {n: k for k, n in enumerate(LOC_NAMES)}
    assert res.hit_tokens[1, loc["peer_hbm"]] == 64
    assert res.net_s[1] == pytest.approx(1e-6 + 4 * BLOCK_BYTES / 450e9, rel=1e-9)  # NVLink, one direction
    # w1 evicted block 1 when it stored 5 (into the node's DRAM); w2 finds 1 in DRAM and 2 in w1's HBM
    assert res.hit_tokens[3, loc["dram"]] + res.hit_tokens[3, loc["peer_hbm"]] == 32


def test_zero_eic_nodes_behaves_like_no_eic():
    w = _workload([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4, 9], [5, 6, 10]] * 5, list(range(0, 200, 10)))
    base = dict(hbm_blocks=4, dram_blocks=2)
    no_nodes = run_cluster(_cfg(**base, **{"cluster.eic_nodes_per_rack": 0}), w, "lru", timing=True)
    no_cap = run_cluster(_cfg(**base, eic_blocks=0), w, "lru", timing=True)
    with_eic = run_cluster(_cfg(**base), w, "lru", timing=True)
    assert no_nodes.hit_tokens[:, EIC].sum() == 0
    assert np.array_equal(no_nodes.hit_tokens, no_cap.hit_tokens)
    assert np.array_equal(no_nodes.ttft_s, no_cap.ttft_s)
    assert no_nodes.network.bytes_by_class == no_cap.network.bytes_by_class
    assert no_nodes.network.bytes_by_class["eic"] == 0
    assert with_eic.hit_tokens[:, EIC].sum() > 0  # the scenario does use an EIC pool when there is one


def test_session_affinity_keeps_every_turn_on_one_gpu():
    rng = np.random.default_rng(0)
    reqs, arr, sess = [], [], []
    for s in range(40):
        t0 = rng.uniform(0, 100)
        for turn in range(5):
            reqs.append([s * 100 + k for k in range(2 + 2 * turn)])
            arr.append(t0 + 30 * turn)
            sess.append(s)
    order = np.argsort(arr, kind="stable")
    w = _workload([reqs[i] for i in order], [arr[i] for i in order], [sess[i] for i in order],
                  outputs=[50] * len(reqs))
    for timing in (True, False):
        res = run_cluster(_cfg(hbm_blocks=64), w, "lru", "session_affinity", timing=timing)
        for s in range(40):
            assert len(set(res.worker[w.session_id == s].tolist())) == 1
        # and different sessions spread out (least-loaded placement of first turns)
        assert len(set(res.worker.tolist())) >= 20
        # later turns hit their own HBM
        assert res.hit_tokens[:, 0].sum() > 0


def _shared_prefix_workload(n=64, gap_s=100.0):
    return _workload([[1, 2, 3, 4, 100 + i] for i in range(n)], [gap_s * i for i in range(n)])


def test_router_skew_sanity():
    w = _shared_prefix_workload()
    cfg = _cfg(hbm_blocks=16)
    rr = cluster_metrics(run_cluster(cfg, w, "lru", "round_robin", timing=False), cfg)["skew"]
    assert rr["worker"]["requests"]["max_mean"] == pytest.approx(1.0)  # 64 requests over 32 workers: 2 each
    assert rr["rack"]["requests"]["max_mean"] == pytest.approx(1.0)
    # requests far apart (load 0): prefix_aware follows the cached prefix to one GPU -> maximal skew
    pa = run_cluster(cfg, w, "lru", "prefix_aware", timing=False)
    sk = cluster_metrics(pa, cfg)["skew"]
    assert sk["worker"]["requests"]["max_mean"] == pytest.approx(32.0)
    assert sk["rack"]["requests"]["max_mean"] == pytest.approx(2.0)
    assert pa.hit_tokens[1:, 0].tolist() == [64] * 63
    # all at once: the load penalty spreads them
    burst = _workload([[1, 2, 3, 4, 100 + i] for i in range(64)], [0.001 * i for i in range(64)],
                      outputs=[500] * 64)
    pb = cluster_metrics(run_cluster(cfg, burst, "lru", "prefix_aware", timing=True), cfg)["skew"]
    assert pb["worker"]["requests"]["max_mean"] < 8


def test_cache_load_balanced_prefers_the_cached_gpu_until_its_queue_costs_more():
    cfg = _cfg(hbm_blocks=64)
    w = _shared_prefix_workload(n=8)
    res = run_cluster(cfg, w, "lru", "cache_load_balanced", timing=True)
    assert len(set(res.worker[1:].tolist())) == 1  # idle cluster: follow the prefix
    assert res.hit_tokens[1:, 0].tolist() == [64] * 7
    # a burst of long prompts sharing a short prefix: waiting behind a long prefill costs more than
    # recomputing 4 blocks, so they spread
    long = _workload([[1, 2, 3, 4] + list(range(1000 * (i + 1), 1000 * (i + 1) + 60)) for i in range(16)],
                     [0.0001 * i for i in range(16)])
    r2 = run_cluster(cfg, long, "lru", "cache_load_balanced", timing=True)
    assert len(set(r2.worker.tolist())) > 8


def test_determinism_per_seed_and_jitter_cv_zero():
    w = _workload([[1, 2, 3, 4], [1, 2, 5], [6, 7, 8, 9], [1, 2, 3, 4, 10], [6, 7, 11]] * 8,
                  [3 * i for i in range(40)], outputs=[20] * 40)
    over = {"network.jitter_cv": 0.4, "network.tail_prob": 0.2}
    a = run_cluster(_cfg(seed=5, **over), w, "lru", "random", timing=True)
    b = run_cluster(_cfg(seed=5, **over), w, "lru", "random", timing=True)
    for k in ("worker", "hit_tokens", "ttft_s", "net_s", "e2e_s"):
        assert np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True), k
    c = run_cluster(_cfg(seed=6, **over), w, "lru", "random", timing=True)
    assert not np.array_equal(a.worker, c.worker)
    # cv = 0 (and no tail): no draw at all - the seed changes nothing under a deterministic router
    z1 = run_cluster(_cfg(seed=1), w, "lru", "round_robin", timing=True)
    z2 = run_cluster(_cfg(seed=2, **{"network.jitter_cv": 0.0}), w, "lru", "round_robin", timing=True)
    assert np.array_equal(z1.ttft_s, z2.ttft_s)
    j = run_cluster(_cfg(seed=1, **{"network.jitter_cv": 0.5}), w, "lru", "round_robin", timing=True)
    assert np.array_equal(j.hit_tokens, z1.hit_tokens)  # jitter moves time, not routing here
    moved = z1.net_s > 0
    assert moved.any() and not np.allclose(j.net_s[moved], z1.net_s[moved])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 11), st.booleans()), max_size=200))
def test_load_index_always_returns_a_least_loaded_worker(ops):
    load = [0] * 12
    idx = LoadIndex(range(12))
    for w, up in ops:
        if not up and load[w] == 0:
            continue
        new = load[w] + (1 if up else -1)
        idx.move(w, load[w], new)
        load[w] = new
        assert load[idx.least()] == min(load)


def test_router_registries_match():
    assert sorted(ROUTERS) == sorted(k for k in CLUSTER_ROUTERS if k != "fixed")


def test_default_10240_gpu_cluster_is_lazy():
    cfg = load_config(overrides=["model.name=llama-3-8b", "model.tp=1"])
    assert cfg.cluster.racks * cfg.cluster.gpus_per_rack == 10240
    w = _workload([[1, 2, 3, 4, 100 + i] for i in range(50)], [0.5 * i for i in range(50)], outputs=[10] * 50)
    w = Workload(w.name, w.arrival_ms, w.input_tokens * 32, w.output_tokens, w.session_id, w.block_offsets,
                 w.block_ids, 512)  # 512-token blocks, like Mooncake
    for router in sorted(ROUTERS):
        res = run_cluster(cfg, w, "lru", router, timing=True)
        assert res.setup.topo.n_gpus == 10240
        assert len(res.cache.hbm) <= 50 and len(res.cache.eic) <= 50  # only touched workers/racks exist
        assert res.network.stats()["links_instantiated"] < 1000
        assert np.isfinite(res.ttft_s).all()


def test_run_mode_router_comparison_report():
    cfg = _cfg(hbm_blocks=16)
    w = _shared_prefix_workload(n=30, gap_s=1.0)
    rep = run_mode(cfg, "cluster", workload=w, routers=["round_robin", "prefix_aware"], timing=True)
    assert rep["mode"] == "cluster"
    assert [r["name"] for r in rep["routers"]] == ["round_robin", "prefix_aware"]
    assert rep["metrics"] is rep["routers"][0]["metrics"]
    for key in ("hit_rate", "block_hit_rate", "tiers", "ttft_ms", "tpot_ms", "e2e_ms", "throughput_tokens_s",
                "slo_attainment", "evictions", "transfers", "hit_rate_by_location", "network", "skew"):
        assert key in rep["metrics"], key
    assert set(rep["metrics"]["tiers"]) == {"hbm", "dram", "eic", "ssd"}
    assert rep["routers"][1]["metrics"]["hit_rate"] > rep["routers"][0]["metrics"]["hit_rate"]
    json.dumps(rep)  # serialisable


def _cli(*args):
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_router_comparison(tmp_path):
    out = tmp_path / "r.json"
    csv = tmp_path / "r.csv"
    p = _cli("run", "--mode", "cluster", "--trace", str(ROOT / "tests" / "data" / "mooncake_small.jsonl"),
             "--router", "round_robin,prefix_aware,cache_load_balanced", "--no-plot", "--quiet",
             "--report-json", str(out), "--report-csv", str(csv),
             "--set", "cluster.racks=2", "--set", "cluster.gpus_per_rack=16")
    assert p.returncode == 0, p.stderr
    rep = json.loads(out.read_text())
    assert rep["mode"] == "cluster" and len(rep["routers"]) == 3
    assert csv.read_text().splitlines()[0].startswith("router,policy,hit_rate")
    assert len(csv.read_text().splitlines()) == 4
    bad = _cli("run", "--mode", "cluster", "--preset", "smoke", "--router", "round_robin,nope", "--no-plot",
               "--quiet")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nope" in bad.stderr
    single = _cli("run", "--mode", "single", "--preset", "smoke", "--router", "round_robin,random", "--no-plot",
                  "--quiet")
    assert single.returncode == 2 and "cluster" in single.stderr


@pytest.mark.skipif(not TRACE.exists(), reason="real trace not present (../shared/traces)")
def test_mooncake_cache_aware_routers_beat_blind_ones():
    from sim.modes.common import prepare_workload
    from trace.formats import load_trace

    cfg = load_config(overrides=["cluster.racks=8"])
    w, _ = load_trace(str(TRACE), limit=3000)
    w, ctx = prepare_workload(cfg, w)
    hr = {r: run_cluster(cfg, w, "lru", r, ctx=ctx, timing=False).hit_tokens.sum() / w.input_tokens.sum()
          for r in ("round_robin", "prefix_aware", "cache_load_balanced")}
    assert hr["prefix_aware"] > 2 * hr["round_robin"]
    assert hr["cache_load_balanced"] > 2 * hr["round_robin"]


def test_single_node_cache_load_balanced_router():
    from sim.modes.single import run_single

    cfg = load_config(overrides=[
        "model.name=llama-3-8b", "model.kv_dtype=fp16",
        "model.tp=1", "hardware.gpus_per_node=4", "cluster.gpus_per_rack=64",
        f"hardware.hbm.capacity_gib={64 * BLOCK_BYTES / GiB}", "cluster.router=cache_load_balanced",
    ])
    apart = _shared_prefix_workload(n=6, gap_s=100.0)
    res = run_single(cfg, apart, "lru", timing=False)
    assert res.worker.tolist() == [0] * 6  # idle node: follow the cached prefix
    burst = _workload([[1, 2, 3, 4, 100 + i] for i in range(8)], [0.0] * 8, outputs=[500] * 8)
    res = run_single(cfg, burst, "lru", timing=False)
    assert sorted(set(res.worker.tolist())) == [0, 1, 2, 3]  # queued work outweighs a 4-block prefix


def test_unbounded_stand_in_changes_nothing(monkeypatch, fixed_router):
    """A tier that can hold every distinct block gets `Unbounded` instead of the policy: same results."""
    import sim.modes.cluster as cl

    # on w0: [1..4] -> EIC; [5..8] -> EIC; [11..14] pushes [1..4] out of the 4-block EIC to the SSD
    w = _workload([[1, 2, 3, 4], [5, 6, 7, 8], [11, 12, 13, 14], [1, 2, 3, 4, 9]] * 3, list(range(0, 120, 10)))
    fixed_router.plan = [0, 0, 0, 0, 8, 8, 8, 8, 16, 16, 16, 16]
    cfg = _cfg(hbm_blocks=4, dram_blocks=2, eic_blocks=4, ssd_blocks=1000)
    fast = run_cluster(cfg, w, "lru", "fixed", timing=True, engine="python")
    assert type(fast.cache.ssd.policy).__name__ == "Unbounded"
    real = cl.build_cluster_cache
    monkeypatch.setattr(cl, "build_cluster_cache", lambda c, s, p, x, d: real(c, s, p, x, 10**18))
    slow = run_cluster(cfg, w, "lru", "fixed", timing=True, engine="python")
    assert type(slow.cache.ssd.policy).__name__ == "LRU"
    assert fast.hit_tokens[:, LOC_NAMES.index("ssd")].sum() > 0
    for k in ("worker", "hit_tokens", "ttft_s"):
        assert np.array_equal(getattr(fast, k), getattr(slow, k)), k
