"""Single-node metrics in the common report schema (mode "single")."""
from __future__ import annotations

from typing import Any

import numpy as np

from sim.config import Config
from sim.report.schema import dist_ms, slo_ok
from sim.report.sink import MetricsSink, latency_metrics, metrics_sink
from sim.timing.prefetch import prefetch_untimed

PARTS = ("load", "queue", "prefill")  # the TTFT parts of a single-node request


def single_sink(res, cfg: Config) -> MetricsSink:
    """The run's per-request latencies (seconds) in a sink: exact or sketched by the run's size."""
    sink = metrics_sink(len(res.workload), cfg)
    sink.add({"ttft": res.ttft_s, "tpot": res.tpot_s, "e2e": res.e2e_s,
              "load": res.load_s, "queue": res.queue_s, "prefill": res.prefill_s})
    return sink


def single_metrics(res, cfg: Config) -> dict[str, Any]:
    """Metrics of one single-node replay (a sim.modes.single.RunResult)."""
    w = res.workload
    total_in = max(1, int(w.input_tokens.sum()))
    total_blocks = max(1, w.total_blocks)
    cache = res.cache
    bb = res.setup.block_bytes
    tiers: dict[str, Any] = {}
    evictions = 0
    for k, (name, group) in enumerate(cache.tiers().items()):
        st = [t.stats for t in group]
        agg = {
            key: int(sum(getattr(s, key) for s in st))
            for key in ("hits", "inserts", "demotions_in", "promotions_out", "taken", "evictions", "dropped",
                        "rejected")
        }
        agg["bytes_read"] = int(sum(t.bytes_read for t in group))
        agg["bytes_written"] = int(sum(t.bytes_written for t in group))
        evictions += agg["evictions"]
        tiers[name] = {
            "hit_rate": float(res.hit_tokens[:, k].sum() / total_in),
            "block_hit_rate": float(res.hit_blocks[:, k].sum() / total_blocks),
            "used_bytes": int(sum(len(t) for t in group) * bb),
            "capacity_bytes": int(sum(t.capacity for t in group) * bb),
            **agg,
            "occupancy": [[round(t, 6), int(b) * bb] for t, b in cache.occupancy[name]],
        }
    tr = cache.traffic
    links = {
        "dram_to_hbm": tr.dram_to_hbm * bb,
        "ssd_to_hbm": tr.ssd_to_hbm * bb,
        "hbm_to_dram": tr.hbm_to_dram * bb,
        "dram_to_ssd": tr.dram_to_ssd * bb,
    }
    moved_blocks = tr.dram_to_hbm + tr.ssd_to_hbm + tr.hbm_to_dram + tr.dram_to_ssd
    m: dict[str, Any] = {
        "hit_rate": float(res.hit_tokens.sum() / total_in),
        "block_hit_rate": float(res.hit_blocks.sum() / total_blocks),
        "tiers": tiers,
        "evictions": int(evictions),
        "transfers": {"bytes": int(moved_blocks * bb), "count": int(moved_blocks), "by_link_bytes": links},
        "prefetch": res.prefetch if res.prefetch is not None else prefetch_untimed(cache.prefetched_blocks, bb),
        "capacity_blocks": {
            "hbm_per_worker": res.setup.hbm_blocks,
            "dram": res.setup.dram_blocks,
            "ssd": res.setup.ssd_blocks,
        },
        "block_bytes": int(bb),
        "workers": res.setup.n_workers,
    }
    if res.timing:
        ttft, tpot = res.ttft_s, res.tpot_s
        ok_ttft, ok_tpot = slo_ok(ttft, tpot, cfg.slo.ttft_ms, cfg.slo.tpot_ms)
        ok = ok_ttft & ok_tpot
        sim_t = max(res.sim_time_s, 1e-9)
        m.update(
            **latency_metrics(single_sink(res, cfg), PARTS),
            throughput_tokens_s=float((w.input_tokens.sum() + w.output_tokens.sum()) / sim_t),
            slo_attainment=float(ok.mean()) if len(ok) else None,
            gpu_decode_busy_share=float(np.mean(res.busy_s.get("decode", [0.0])) / sim_t),
            # share of the workers' time in iterations that prefill (mixed ones included); near 1
            # means the node is overloaded and TTFT is dominated by queueing
            prefill_utilization_share=float(np.sum(res.busy_s.get("prefill", [0.0])) / (sim_t * res.setup.n_workers)),
            iteration_ms=res.iteration_ms,
            preemptions=int(res.preemptions),
            **res.io,  # tier_io (bytes actually moved per tier), recomputed_prefixes, recomputed_tokens
        )
    else:
        for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
            m[key] = dist_ms(np.array([]))
        m.update(throughput_tokens_s=None, slo_attainment=None)
    return m
