"""The compiled cluster cache on the scale path (issue #19): synthetic multi-turn sessions, prefix_aware.

Per-request results of the compiled engine (holder lists threaded through the HBM slots, first-use
block numbering, the locality-keeping index) equal the Python reference ``ClusterCache`` field by field,
timed and hit-rate-only, with HBM small enough that blocks are evicted and demoted.
"""

import numpy as np
import pytest

from sim.config import load_config
from sim.modes.cluster import run_cluster
from sim.modes.common import prepare_workload
from trace.prefix import first_use_ids
from trace.synthetic import generate

GiB = 1024**3


def test_first_use_ids_numbers_in_order_of_appearance():
    ids, n = first_use_ids(np.array([50, 7, 50, 9, 7, 1], dtype=np.int64))
    assert n == 4
    assert ids.tolist() == [0, 1, 0, 2, 1, 3]
    dense = np.arange(5, dtype=np.int64)
    same, n = first_use_ids(dense)
    assert n == 5 and same.tolist() == [0, 1, 2, 3, 4]
    assert first_use_ids(np.array([3, 4, 5], dtype=np.int64))[0].tolist() == [0, 1, 2]


@pytest.mark.parametrize("timing", [True, False])
def test_compiled_equals_python_on_synthetic_sessions(timing):
    block_bytes = 16 * 131072  # llama-3-8b fp16, 16-token blocks
    cfg = load_config(overrides=[
        "model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=8", "cluster.racks=4",
        "cluster.gpus_per_rack=16", "cluster.router=prefix_aware", "cache.block_tokens=16",
        f"hardware.hbm.capacity_gib={60 * block_bytes / GiB}", f"hardware.dram.capacity_gib={80 * block_bytes / GiB}",
        f"hardware.eic.capacity_gib={200 * block_bytes / GiB}",
        f"cluster.remote_ssd_capacity_gib={2000 * block_bytes / GiB}",
        "synthetic.kind=multi_turn", "synthetic.requests=300", "synthetic.sessions=30", "synthetic.block_tokens=16"])
    w, _ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    py = run_cluster(cfg, w, "lru", "prefix_aware", timing=timing, engine="python")
    co = run_cluster(cfg, w, "lru", "prefix_aware", timing=timing, engine="compiled")
    for k in ("hit_blocks", "hit_tokens", "worker", "ttft_s", "e2e_s"):
        assert np.array_equal(getattr(py, k), getattr(co, k), equal_nan=True), k
    assert py.cache.hits == co.cache.hits and py.cache.moved == co.cache.moved
    assert co.hit_tokens.sum() > 0 and co.cache.moved.get("hbm_to_eic", 0) > 0  # hits and evictions happened
    assert len(set(co.worker.tolist())) > 1


def test_slot_records_widen_to_int64_mid_run(monkeypatch):
    """Past the int32 address range the pool and block records turn int64; results do not change."""
    import sim.engine.cluster_cache as cc

    block_bytes = 16 * 131072
    cfg = load_config(overrides=[
        "model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=8", "cluster.racks=2",
        "cluster.gpus_per_rack=16", "cache.block_tokens=16", f"hardware.hbm.capacity_gib={4000 * block_bytes / GiB}",
        "synthetic.kind=multi_turn", "synthetic.requests=400", "synthetic.sessions=40", "synthetic.block_tokens=16"])
    w, _ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    narrow = run_cluster(cfg, w, "lru", "prefix_aware", timing=False, engine="compiled")
    assert narrow.cache.S.dtype == np.int32
    monkeypatch.setattr(cc, "_INT32_MAX", 6 * 40_000)  # the pool (32,768 slots at first) grows past 40k
    wide = run_cluster(cfg, w, "lru", "prefix_aware", timing=False, engine="compiled")
    assert wide.cache.S.dtype == np.int64 and wide.cache.B.dtype == np.int64
    for k in ("hit_blocks", "worker"):
        assert np.array_equal(getattr(narrow, k), getattr(wide, k)), k
    assert narrow.cache.hits == wide.cache.hits
