"""The cluster's load step (sim.modes.cluster_io): load a cached part or recompute it, layer-wise overlap,
per-tier bytes. Hand-computed cases on 2 racks x 16 GPUs (llama-3-8b TP1, 16-token blocks of 2 MiB)."""
from __future__ import annotations

import pytest

from sim.cache.layout import LOC_NAMES
from sim.modes.cluster import run_cluster
from sim.modes.cluster_io import location
from sim.report.cluster import cluster_metrics
from sim.timing.overlap import prefill_done_s
from tests.conftest import micro_workload as _workload
from tests.modes.test_cluster import BLOCK_BYTES, _cfg, _prefill_s

LOC = {n: k for k, n in enumerate(LOC_NAMES)}
LAYERS = 32  # llama-3-8b


def test_location_of_a_source():
    assert location(("gpu", 3), 0) == LOC["peer_hbm"]
    assert location(("dram", 1), 0) == LOC["dram"]
    assert location(("eic", 0), 0) == LOC["local_eic"]
    assert location(("eic", 1), 0) == LOC["remote_eic"]
    assert location(("ssd",), 1) == LOC["ssd"]
    with pytest.raises(ValueError):
        location(("spine",), 0)


def test_slow_remote_ssd_part_is_recomputed(fixed_router):
    # HBM 4 blocks, no DRAM/EIC: w0's second request pushes [1..4] to the remote SSD pool, which is slowed
    # to 1 MB/s: loading 8 MiB would take ~8 s, recomputing 64 tokens well under a millisecond.
    w = _workload([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4, 9]], [0, 10, 20])
    fixed_router.plan = [0, 0, 0]
    cfg = _cfg(hbm_blocks=4, eic_blocks=0, ssd_blocks=64, **{"network.remote_ssd_bandwidth_gb_s": 0.001})
    res = run_cluster(cfg, w, "lru", "fixed", timing=True)
    assert res.hit_tokens[2].tolist() == [0, 0, 0, 0, 0, 64]  # the cache found them ...
    assert res.io["recomputed_prefixes"] == 1 and res.io["recomputed_tokens"] == 64  # ... but they were recomputed
    assert res.net_s[2] == 0
    assert res.ttft_s[2] == pytest.approx(_prefill_s(80, 0), rel=1e-9)
    io = res.io["tier_io"]
    assert io["ssd"]["read_bytes"] == 0
    assert res.network.bytes_by_class["ssd"] == 8 * BLOCK_BYTES  # only the 2 x 4 victims written, nothing read
    assert io["ssd"]["write_bytes"] == 8 * BLOCK_BYTES  # [1..4] by request 1, [5..8] by request 2
    assert io["dram"] == io["eic"] == {"read_bytes": 0, "write_bytes": 0}
    m = cluster_metrics(res, cfg)
    assert m["tier_io"] == io and m["recomputed_prefixes"] == 1 and m["recomputed_tokens"] == 64
    # the same with load_policy always: the 8 MiB come over the 1 MB/s pool (and nothing is recomputed)
    res = run_cluster(_cfg(hbm_blocks=4, eic_blocks=0, ssd_blocks=64,
                           **{"network.remote_ssd_bandwidth_gb_s": 0.001, "cache.load_policy": "always"}),
                      w, "lru", "fixed", timing=True)
    assert res.io["recomputed_prefixes"] == 0 and res.net_s[2] > 8.0
    assert res.io["tier_io"]["ssd"]["read_bytes"] == 4 * BLOCK_BYTES


def _big_prefix(n_blocks: int = 128) -> list[int]:
    return list(range(1000, 1000 + n_blocks))


def test_fast_peer_hbm_part_is_loaded_layerwise(fixed_router):
    # w0 computes a 2048-token prefix; its NVLink peer w1 asks for it + 16 new tokens. Loading 256 MiB over
    # NVLink (~0.6 ms) beats recomputing 2048 tokens (tens of ms), and layer-wise the prefill waits only for
    # the first of 32 layers: the request joins w1's queue at D/32 and its first token comes at D/32 + P.
    pre = _big_prefix()
    w = _workload([pre, pre + [1]], [0, 10])
    fixed_router.plan = [0, 1]
    cfg = _cfg(hbm_blocks=256, eic_blocks=0)
    res = run_cluster(cfg, w, "lru", "fixed", timing=True)
    assert res.hit_tokens[1, LOC["peer_hbm"]] == 2048
    d = 1e-6 + 128 * BLOCK_BYTES / 450e9  # NVLink latency (2 half edges) + bytes at 450 GB/s
    p = _prefill_s(16, 2048)
    assert _prefill_s(2064, 0) > d + p  # recomputing would be slower: the part is loaded
    assert res.io["recomputed_prefixes"] == 0
    assert res.net_s[1] == pytest.approx(d / LAYERS, rel=1e-9)
    assert res.ttft_s[1] == pytest.approx(d / LAYERS + p, rel=1e-9)
    assert res.io["tier_io"]["hbm"]["read_bytes"] == 128 * BLOCK_BYTES


@pytest.mark.parametrize("overlap", ["layerwise", "none"])
def test_load_bound_dram_part_overlap_timing(fixed_router, overlap):
    # w0's 2048-token prefix is pushed to its node's DRAM (write-back) by its next request; w0 then reads it
    # back over a PCIe link slowed to 10 GB/s: D = 10 us + 256 MiB / 10 GB/s ~ 27 ms > P (prefill of 16 new
    # tokens), yet below recomputing all 2064 tokens, so it is loaded. Layer-wise the request joins the queue
    # at D - P (L-1)/L and its first token comes at D + P/L; without overlap at D and D + P.
    pre = _big_prefix()
    other = list(range(5000, 5130))
    w = _workload([pre, other, pre + [1]], [0, 10, 20])
    fixed_router.plan = [0, 0, 0]
    cfg = _cfg(hbm_blocks=130, dram_blocks=512, eic_blocks=0,
               **{"hardware.dram.bandwidth_gb_s": 10, "cache.load_overlap": overlap})
    res = run_cluster(cfg, w, "lru", "fixed", timing=True)
    assert res.hit_tokens[2, LOC["dram"]] == 2048 and res.hit_tokens[2].sum() == 2048
    d = 10e-6 + 128 * BLOCK_BYTES / 10e9
    p = _prefill_s(16, 2048)
    assert p < d < _prefill_s(2064, 0)
    done = prefill_done_s(d, p, LAYERS, overlap)
    assert done == pytest.approx(d + p / LAYERS if overlap == "layerwise" else d + p, rel=1e-12)
    assert res.io["recomputed_prefixes"] == 0
    assert res.net_s[2] == pytest.approx(done - p, rel=1e-9)
    assert res.ttft_s[2] == pytest.approx(done, rel=1e-9)
    io = res.io["tier_io"]
    assert io["dram"]["read_bytes"] == 128 * BLOCK_BYTES
    # demoted to DRAM: the prefix (128 blocks) by the other request, then 128 of the other request's
    # blocks when the prefix came back, and one more when the new block was stored
    assert io["dram"]["write_bytes"] == (128 + 128 + 1) * BLOCK_BYTES
