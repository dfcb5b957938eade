"""Single-node metrics in the common report schema (mode "single")."""
from __future__ import annotations

from typing import Any

import numpy as np

from sim.config import Config
from sim.report.request_stream import RequestSink
from sim.report.requests import single_requests
from sim.report.saturation import SaturationStream
from sim.report.schema import dist_ms, slo_ok
from sim.report.sink import MetricsSink, latency_metrics, metrics_sink
from sim.timing.prefetch import prefetch_untimed

PARTS = ("load", "queue", "prefill")  # the TTFT parts of a single-node request


class SingleTotals:
    """What the report reads of a single-node run's per-request rows, taken a block at a time
    (sim.modes.result_rows): the tokens and blocks served per tier, the requests meeting both SLO targets,
    the latencies' distributions (a MetricsSink), the saturation check's inputs, and each block's rows for
    the per-request file (`requests`: a list or a RequestStream; None: no file). A run that keeps its rows
    whole hands over one block, and every figure is the whole arrays' to the last bit."""

    def __init__(self, cfg: Config, w, policy: str, timing: bool, requests: RequestSink | None = None) -> None:
        self.cfg, self.w, self.policy, self.timing, self.requests = cfg, w, policy, timing, requests
        self.hit_tokens = np.zeros(3, dtype=np.int64)  # hbm, dram, ssd, summed over requests
        self.hit_blocks = np.zeros(3, dtype=np.int64)
        self.rows = 0
        self.slo_met = 0
        self.sink: MetricsSink | None = metrics_sink(len(w), cfg) if timing else None
        self.saturation = SaturationStream(w.arrival_ms / 1000.0) if timing else None

    def add(self, b) -> None:
        """One block (sim.modes.result_rows.RowBlock) of complete rows, in request order."""
        self.hit_tokens += b.hit_tokens.sum(axis=0)
        self.hit_blocks += b.hit_blocks.sum(axis=0)
        self.rows += b.n
        if self.timing:
            assert self.sink is not None and self.saturation is not None  # made when timed
            self.sink.add({"ttft": b.ttft_s, "tpot": b.tpot_s, "e2e": b.e2e_s,
                           "load": b.load_s, "queue": b.queue_s, "prefill": b.prefill_s})
            ok_ttft, ok_tpot = slo_ok(b.ttft_s, b.tpot_s, self.cfg.slo.ttft_ms, self.cfg.slo.tpot_ms)
            self.slo_met += int((ok_ttft & ok_tpot).sum())
            self.saturation.add(self.w.arrival_ms[b.lo:b.lo + b.n] / 1000.0, b.ttft_s)
        if self.requests is not None:
            self.requests.append(single_requests(self.cfg, self.w, self.policy, self.timing, b))


def single_metrics(res, cfg: Config) -> dict[str, Any]:
    """Metrics of one single-node replay (a sim.modes.single.RunResult)."""
    w = res.workload
    total_in = max(1, int(w.input_tokens.sum()))
    total_blocks = max(1, w.total_blocks)
    cache, tot = res.cache, res.totals
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
            "hit_rate": float(tot.hit_tokens[k] / total_in),
            "block_hit_rate": float(tot.hit_blocks[k] / total_blocks),
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
        "hit_rate": float(tot.hit_tokens.sum() / total_in),
        "block_hit_rate": float(tot.hit_blocks.sum() / total_blocks),
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
        sim_t = max(res.sim_time_s, 1e-9)
        m.update(
            **latency_metrics(tot.sink, PARTS),
            throughput_tokens_s=float((w.input_tokens.sum() + w.output_tokens.sum()) / sim_t),
            slo_attainment=tot.slo_met / tot.rows if tot.rows else None,
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
