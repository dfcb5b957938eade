"""The compiled cluster cache (sim.engine.cluster_kernels) against the Python reference (sim.cache.cluster).

Both engines replay the same workloads; every per-request figure and every
report number must be identical. Small tiers force every path of the
demotion chain (HBM -> DRAM / EIC -> SSD, write-through spills, bounded SSD
victims, cross-rack hits, duplicate blocks inside one request).
"""

import numpy as np
import pytest

from sim.cache.cluster import ClusterCache
from sim.config import load_config
from sim.engine.cluster_cache import CompiledClusterCache
from sim.errors import InputError
from sim.modes.cluster import queue_recency, run_cluster
from sim.report.cluster import cluster_metrics
from tests.conftest import MOONCAKE as TRACE
from trace.workload import Workload

BLOCK_BYTES = 16 * 131072  # llama-3-8b fp16, 16-token blocks: 2 MiB
GiB = 1024**3
ARRAYS = ("hit_blocks", "hit_tokens", "worker", "net_s", "queue_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s",
          "busy_s")


def _cfg(hbm=4, dram=6, eic=10, ssd=40, **extra):
    """2 racks x 16 GPUs (2 nodes of 8 per rack), llama-3-8b TP1, tiers sized in 16-token blocks."""
    sets = [
        "model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=8", "cluster.racks=2",
        "cluster.gpus_per_rack=16", f"hardware.hbm.capacity_gib={hbm * BLOCK_BYTES / GiB}",
        f"hardware.dram.capacity_gib={dram * BLOCK_BYTES / GiB}",
        f"hardware.eic.capacity_gib={eic * BLOCK_BYTES / GiB}",
        f"cluster.remote_ssd_capacity_gib={ssd * BLOCK_BYTES / GiB}", "cache.block_tokens=16",
    ] + [f"{k}={v}" for k, v in extra.items()]
    return load_config(overrides=sets)


def _random_workload(seed: int, n: int = 400) -> Workload:
    """Shared prefixes (a few documents), sessions growing turn by turn, random tails, some repeated ids."""
    rng = np.random.default_rng(seed)
    reqs, sess = [], []
    history: dict[int, list[int]] = {}
    for _ in range(n):
        s = int(rng.integers(0, 25))
        doc = [1000 * int(rng.integers(1, 4)) + j for j in range(int(rng.integers(0, 6)))]
        turn = history.get(s, []) + [int(x) for x in rng.integers(1, 400, int(rng.integers(1, 6)))]
        history[s] = turn[-12:]
        blocks = doc + turn
        if rng.random() < 0.15:
            blocks.append(blocks[0])  # a block id twice in one request
        reqs.append(blocks)
        sess.append(s)
    offs = np.zeros(n + 1, dtype=np.int64)
    offs[1:] = np.cumsum([len(r) for r in reqs])
    arrivals_ms = np.cumsum(rng.exponential(40.0, n))
    return Workload("random", arrivals_ms, [16 * len(r) for r in reqs], rng.integers(1, 60, n).tolist(), sess, offs,
                    np.array([b for r in reqs for b in r], dtype=np.int64), 16)


def _same(cfg, w, policy, router, timing):
    py = run_cluster(cfg, w, policy, router, timing=timing, engine="python")
    co = run_cluster(cfg, w, policy, router, timing=timing, engine="compiled")
    assert isinstance(py.cache, ClusterCache) and isinstance(co.cache, CompiledClusterCache)
    for k in ARRAYS:
        assert np.array_equal(getattr(py, k), getattr(co, k), equal_nan=True), k
    assert cluster_metrics(py, cfg) == cluster_metrics(co, cfg)
    assert py.cache.hits == co.cache.hits
    assert py.cache.moved == co.cache.moved
    assert py.decode_busy_s == co.decode_busy_s
    return py


VARIANTS = {
    "default": {},
    "write_through": {"cache.write_policy": "write_through"},
    "hbm_dram_eic_chain": {"cluster.evict_to_eic": "false"},
    "chain_write_through": {"cluster.evict_to_eic": "false", "cache.write_policy": "write_through"},
    "cross_rack": {"cluster.cross_rack_lookup": "true"},
    "no_eic": {"cluster.eic_nodes_per_rack": 0},
    "no_dram": {"dram": 0},
    "no_dram_chain": {"dram": 0, "cluster.evict_to_eic": "false"},
    "no_ssd": {"ssd": 0},
    "no_dram_no_eic": {"dram": 0, "eic": 0},
    "unbounded_ssd": {"ssd": 100000},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_compiled_matches_python_on_small_tiers(variant):
    extra = dict(VARIANTS[variant])
    sizes = {k: extra.pop(k) for k in ("hbm", "dram", "eic", "ssd") if k in extra}
    cfg = _cfg(**sizes, **extra)
    for seed, router, timing in ((1, "prefix_aware", True), (2, "cache_load_balanced", False), (3, "random", True),
                                 (4, "session_affinity", False)):
        res = _same(cfg, _random_workload(seed), "lru", router, timing)
        assert res.hit_blocks.sum() > 0
    _same(cfg, _random_workload(5), "fifo", "prefix_aware", True)


def test_small_tiers_reach_every_part_of_the_chain():
    """The scenarios above are not vacuous: demotions, spills, SSD victims and cross-rack hits happen."""
    w = _random_workload(1)
    wb = run_cluster(_cfg(), w, "lru", "random", timing=False, engine="compiled")
    assert {"hbm_to_eic", "hbm_to_dram", "eic_to_ssd"} <= set(wb.cache.moved)
    assert sum(t.stats.evictions for t in wb.cache.tier_groups()["ssd"]) > 0
    chain = run_cluster(_cfg(**{"cluster.evict_to_eic": "false", "cache.write_policy": "write_through"}), w, "lru",
                        "random", timing=False, engine="compiled")
    assert {"write_through_dram", "dram_to_eic"} <= set(chain.cache.moved)
    cross = run_cluster(_cfg(**{"cluster.cross_rack_lookup": "true"}), w, "lru", "random", timing=False,
                        engine="compiled")
    assert cross.hit_blocks[:, 4].sum() > 0
    no_dram = run_cluster(_cfg(dram=0, **{"cluster.evict_to_eic": "false"}), w, "lru", "random", timing=False,
                          engine="compiled")
    assert "hbm_to_eic" in no_dram.cache.moved


@pytest.mark.skipif(not TRACE.exists(), reason="real trace not present (../shared/traces)")
@pytest.mark.parametrize("sets", [[], ["cache.write_policy=write_through", "cluster.cross_rack_lookup=true"],
                                  ["cluster.evict_to_eic=false", "model.tp=8", "hardware.hbm.capacity_gib=20"]])
def test_compiled_matches_python_on_mooncake(sets):
    from sim.modes.common import prepare_workload
    from trace.formats import load_trace

    cfg = load_config(overrides=["cluster.racks=4"] + sets)
    w, _ = load_trace(str(TRACE), limit=1500)
    w, _ctx = prepare_workload(cfg, w)
    for router, timing in (("prefix_aware", True), ("cache_load_balanced", False), ("least_loaded", True)):
        _same(cfg, w, "lru", router, timing)


def test_engine_choice():
    assert queue_recency("lru") is True
    assert queue_recency("session_prefetch") is True  # LRU eviction; cluster mode does not prefetch
    assert queue_recency("fifo") is False
    for other in ("lfu", "arc", "s3fifo", "selective_write", "belady", "no_such_policy"):
        assert queue_recency(other) is None
    w = _random_workload(0, n=20)
    assert isinstance(run_cluster(_cfg(), w, "lru", "random", timing=False).cache, CompiledClusterCache)
    assert isinstance(run_cluster(_cfg(), w, "lfu", "random", timing=False).cache, ClusterCache)
    py = _cfg(**{"cache.engine": "python"})
    assert isinstance(run_cluster(py, w, "lru", "random", timing=False).cache, ClusterCache)
    with pytest.raises(InputError):
        run_cluster(_cfg(), w, "lfu", "random", timing=False, engine="compiled")
    with pytest.raises(InputError):
        run_cluster(_cfg(), w, "lru", "random", timing=False, engine="fast")
