"""Session prefetch in cluster and PD modes (sim.modes.cluster_prefetch, sim.modes.pd.prefetch): hand-computed
cases on the single-mode test's workload, idle-only links, the accounting invariant, determinism, the CLI."""
import json

import pytest
import simpy

from sim.config import load_config
from sim.modes.cluster import run_cluster
from sim.modes.common import prepare_workload
from sim.timing.network import Network
from sim.timing.topology import Topology
from tests.timing.test_prefetch import BLOCK_BYTES, LAST, LINK_SETS, GiB, _two_turns, late_turn_workload

BW = 25e9  # hardware.dram.bandwidth_gb_s: the GPU <-> host DRAM (PCIe) edge
LAT = 10e-6  # hardware.dram.latency_us


def _cluster_cfg(hbm_blocks: int, dram_blocks: int = 1024, router: str = "session_affinity"):
    # one rack, one node, one GPU: HBM -> host DRAM only (no EIC pool, no remote SSD)
    sets = [
        *LINK_SETS, "hardware.gpus_per_node=1", f"hardware.hbm.capacity_gib={hbm_blocks * BLOCK_BYTES / GiB}",
        f"hardware.dram.capacity_gib={dram_blocks * BLOCK_BYTES / GiB}", "hardware.ssd.capacity_gib=0",
        f"cluster.router={router}",
        "cluster.racks=1", "cluster.gpus_per_rack=1", "cluster.eic_nodes_per_rack=0",
        "cluster.remote_ssd_capacity_gib=0",
    ]
    return load_config(overrides=sets)


def _run_cluster(cfg, policy, w=None, engine=None):
    w2, ctx = prepare_workload(cfg, w if w is not None else _two_turns())
    return run_cluster(cfg, w2, policy, ctx=ctx, timing=True, engine=engine)


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_cluster_prefetch_turns_a_dram_load_into_hbm_hits(engine):
    cfg = _cluster_cfg(12)
    lru = _run_cluster(cfg, "lru", engine=engine)
    pre = _run_cluster(cfg, "session_prefetch", engine=engine)
    # LOC_NAMES order (hbm, peer, dram, eic, remote eic, ssd): LRU finds turn 3's context in DRAM, prefetch in HBM
    assert lru.hit_blocks[LAST].tolist() == [0, 0, 3, 0, 0, 0]
    assert pre.hit_blocks[LAST].tolist() == [3, 0, 0, 0, 0, 0]
    # its TTFT drops by exactly the load: the PCIe latency + 3 blocks over 25 GB/s
    assert lru.ttft_s[LAST] - pre.ttft_s[LAST] == pytest.approx(LAT + 3 * BLOCK_BYTES / BW, rel=1e-6)
    assert pre.net_s[LAST] == 0.0
    p = pre.prefetch
    assert p["prefetched_blocks"] == 3 and p["prefetch_used_blocks"] == 3 and p["prefetch_wasted_blocks"] == 0
    assert p["prefetch_bytes"] == 3 * BLOCK_BYTES
    # a prefetch is no hit: the cache's hit counters equal the requests' hits
    assert sum(pre.cache.hits) == int(pre.hit_blocks.sum())
    for i in range(LAST):  # everything before the prefetched turn is untouched
        assert lru.ttft_s[i] == pytest.approx(pre.ttft_s[i])
    assert lru.prefetch["prefetched_blocks"] == 0


def test_cluster_prefetch_python_and_compiled_agree_and_repeat():
    cfg = _cluster_cfg(12)
    a = _run_cluster(cfg, "session_prefetch", engine="python")
    b = _run_cluster(cfg, "session_prefetch", engine="compiled")
    c = _run_cluster(cfg, "session_prefetch", engine="compiled")
    assert a.prefetch == b.prefetch == c.prefetch
    assert a.ttft_s.tolist() == b.ttft_s.tolist() == c.ttft_s.tolist()
    assert a.cache.hits == b.cache.hits


def test_cluster_accounting_invariant_and_waste():
    p = _run_cluster(_cluster_cfg(12), "session_prefetch", w=late_turn_workload()).prefetch
    assert p["prefetched_blocks"] >= 3
    assert p["prefetch_wasted_blocks"] >= 3 and p["prefetch_used_blocks"] == 0
    assert p["prefetched_blocks"] == p["prefetch_used_blocks"] + p["prefetch_wasted_blocks"] \
        + p["prefetch_resident_blocks"]


# ---------------------------------------------------------------- the network's idle-only class
def _net():
    cfg = _cluster_cfg(12)
    topo = Topology.from_config(cfg)
    return simpy.Environment(), Network.from_config(cfg, topo), topo


def test_network_demand_transfer_never_waits_behind_prefetch():
    env, net, topo = _net()
    src, dst = topo.dram(0), topo.gpu(0)
    t = {}
    nb = 25e9  # 1 s on the 25 GB/s PCIe edge
    net.prefetch(env, src, dst, 2 * nb).callbacks.append(lambda _e: t.setdefault("pf", env.now))

    def read():
        yield env.timeout(0.5)
        yield net.transfer(env, src, dst, nb)
        t["read"] = env.now

    env.process(read())
    env.run()
    # the demand read takes latency + 1 s as if alone; the prefetch pauses for the read's 1 s on the link
    # (not for its latency, when the link is still free): latency + 2 s of its own + 1 s paused
    assert t["read"] == pytest.approx(0.5 + LAT + 1.0, abs=1e-9)
    assert t["pf"] == pytest.approx(LAT + 2.0 + 1.0, abs=1e-9)
    assert net.idle_s(src, dst, nb) == pytest.approx(LAT + 1.0)


# ---------------------------------------------------------------- PD
def _pd_cfg(tree_blocks: int, dram_blocks: int = 1024):
    # one rack of 2 GPUs: prefill replica on GPU 0, decode on GPU 1; colocated: two replicas
    sets = [
        *LINK_SETS, "hardware.gpus_per_node=2", f"pd.kv_capacity_gib={tree_blocks * BLOCK_BYTES / GiB}",
        f"hardware.dram.capacity_gib={dram_blocks * BLOCK_BYTES / GiB}", "hardware.eic.capacity_gib=0",
        "pd.racks=1", "pd.gpus_per_rack=2",
        "cluster.eic_nodes_per_rack=0",
    ]
    return load_config(overrides=sets)


def _pd(cfg, policy, w=None):
    from sim.modes.pd.setup import prepare
    from sim.modes.pd.simulator import simulate

    prep = prepare(cfg, w if w is not None else _two_turns(), policy)
    return simulate("pd", cfg, prep, policy)


def _pd_cached(res, i):
    r = res.reqs[i]
    return r.hit_hbm, r.hit_low


def test_pd_prefetch_turns_a_dram_load_into_hbm_hits():
    cfg = _pd_cfg(12)
    lru = _pd(cfg, "lru")
    pre = _pd(cfg, "session_prefetch")
    bt = 16
    assert _pd_cached(lru, LAST) == (0, 3 * bt)
    assert _pd_cached(pre, LAST) == (3 * bt, 0)
    ttft = {k: r.reqs[LAST].t_kv - r.reqs[LAST].t_arr for k, r in (("lru", lru), ("pre", pre))}
    assert ttft["lru"] - ttft["pre"] == pytest.approx(LAT + 3 * BLOCK_BYTES / BW, rel=1e-6)
    p = pre.prefetch
    assert p["prefetched_blocks"] == 3 and p["prefetch_used_blocks"] == 3 and p["prefetch_wasted_blocks"] == 0
    assert lru.prefetch["prefetched_blocks"] == 0
    for i in range(LAST):  # the idle-only move delays no other request
        assert lru.reqs[i].t_kv == pytest.approx(pre.reqs[i].t_kv)


def test_pd_accounting_invariant_and_determinism():
    cfg = _pd_cfg(12)
    a = _pd(cfg, "session_prefetch", late_turn_workload())
    b = _pd(cfg, "session_prefetch", late_turn_workload())
    p = a.prefetch
    assert p == b.prefetch
    assert [r.t_kv for r in a.reqs] == [r.t_kv for r in b.reqs]
    assert p["prefetched_blocks"] >= 3 and p["prefetch_wasted_blocks"] >= 3
    assert p["prefetched_blocks"] == p["prefetch_used_blocks"] + p["prefetch_wasted_blocks"] \
        + p["prefetch_resident_blocks"]


# ---------------------------------------------------------------- CLI
def test_cluster_compare_runs_session_prefetch(tmp_path, capsys):
    from sim.cli import main

    out = tmp_path / "r.json"
    rc = main(["run", "--mode", "cluster", "--preset", "smoke", "--compare", "--no-plot", "--quiet",
               "--report-json", str(out)])
    assert rc == 0
    names = [p["name"] for p in json.loads(out.read_text())["policies"]]
    assert "session_prefetch" in names


@pytest.mark.parametrize("extra", [["--mode", "pd"], ["--mode", "cluster", "--hit-rate-only"]])
def test_session_prefetch_runs_in_pd_and_cluster_hit_rate_only(tmp_path, extra):
    from sim.cli import main

    out = tmp_path / "r.json"
    rc = main(["run", *extra, "--trace", "tests/data/mooncake_small.jsonl", "--policy", "session_prefetch",
               "--no-plot", "--quiet", "--report-json", str(out)])
    assert rc == 0
    m = json.loads(out.read_text())["policies"][0]["metrics"]
    assert set(m["prefetch"]) >= {"prefetched_blocks", "prefetch_used_blocks", "prefetch_bytes"}
