"""Cluster-mode metrics in the common report schema (mode "cluster").

``cluster_metrics(res, cfg)`` returns every key ``sim.report.single.single_metrics``
has (hit_rate, block_hit_rate, tiers, ttft_ms, tpot_ms, e2e_ms,
throughput_tokens_s, slo_attainment, evictions, transfers) plus:

* ``hit_rate_by_location``: token-weighted hit rate per location
  (hbm, peer_hbm, dram, local_eic, remote_eic, ssd; they sum to hit_rate);
* ``network``: bytes and transfers per link class, link busy seconds,
  tail events, and ``ttft_network_share`` = summed time requests waited for
  their cached prefix to arrive / summed TTFT (timed runs);
* ``skew``: per worker (GPU / TP group) and per rack, requests and load
  (request-seconds of occupancy) as max/mean over *all* workers/racks of
  the cluster, with the number that received any request, and ``warning``
  (null, or one sentence) when the busiest worker or rack took more than
  ``SKEW_WARN_MAX_MEAN`` (2) x the mean requests.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sim.cache.layout import LOC_NAMES
from sim.config import Config
from sim.report.cluster_totals import ClusterTotals, totals_of
from sim.report.schema import dist_ms
from sim.report.sink import latency_metrics


def _skew(values: np.ndarray) -> dict[str, float | int | None]:
    mean = float(values.mean()) if len(values) else 0.0
    return {
        "max_mean": float(values.max() / mean) if mean > 0 else None,
        "max": float(values.max()) if len(values) else 0.0,
        "mean": mean,
        "cv": float(values.std() / mean) if mean > 0 else None,
    }


# The seed simulator (github.com/cklxx/kvcache-sim sim/diagnostics.py, summarize_cluster_health) warns when
# the busiest GPU or rack handled >= 2x the mean requests over *all* GPUs/racks. With fewer requests than
# workers a perfect spread still puts 1 request where the mean is below 1, so the bar is 2 x max(mean, 1):
# 2,000 requests on 5,120 workers warn when a worker takes more than 2.
SKEW_WARN_MAX_MEAN = 2.0


def skew_warning(skew: dict[str, Any]) -> str | None:
    """One sentence when the busiest worker or rack took more than SKEW_WARN_MAX_MEAN x max(mean, 1)
    requests (the worker first), else None."""
    for key, noun in (("worker", "worker"), ("rack", "rack")):
        s = skew[key]
        r = s["requests"]
        if r["max"] > SKEW_WARN_MAX_MEAN * max(r["mean"], 1.0):
            load = s["load"]["max_mean"]
            load_s = f", {load:.1f}x the mean load" if load is not None else ""
            return (f"the busiest {noun} took {r['max']:,.0f} requests = {r['max_mean']:.1f}x the mean over all "
                    f"{s['count']:,} {noun}s ({s['used']:,} used){load_s}; the router concentrates the traffic")
    return None


def skew_metrics(layout, t: ClusterTotals) -> dict[str, Any]:
    """Requests and load per worker and per rack of `layout` (from the run's totals)."""
    req_w, req_r = t.requests_per_worker.astype(float), t.requests_per_rack.astype(float)
    out: dict[str, Any] = {
        "worker": {"requests": _skew(req_w), "load": _skew(t.busy_per_worker), "used": int((req_w > 0).sum()),
                   "count": int(layout.n_workers), "gpus_per_worker": int(layout.gpus_per_worker)},
        "rack": {"requests": _skew(req_r), "load": _skew(t.busy_per_rack), "used": int((req_r > 0).sum()),
                 "count": int(layout.topo.n_racks)},
        "warn_max_mean": SKEW_WARN_MAX_MEAN,
    }
    out["warning"] = skew_warning(out)
    return out


PARTS = ("load", "queue", "prefill")  # the TTFT parts of a cluster request (load = waiting for the network)


def cluster_metrics(res, cfg: Config) -> dict[str, Any]:
    """Metrics of one cluster replay (a sim.modes.cluster_result.ClusterResult)."""
    w = res.workload
    total_in = max(1, int(w.input_tokens.sum()))
    total_blocks = max(1, w.total_blocks)
    cs = res.cache_summary()  # plain counters: one cache, or the pods' summed (sim.modes.partition)
    tot = totals_of(res, cfg)  # what is read of the per-request rows (summed a block or a pod at a time)
    bb = res.setup.node.block_bytes
    by_loc_tok, by_loc_blk = tot.hit_tokens, tot.hit_blocks
    loc_rate = {name: float(by_loc_tok[k] / total_in) for k, name in enumerate(LOC_NAMES)}
    # tier view (the single-node keys): which tier kind served the tokens
    served = {"hbm": (0, 1), "dram": (2,), "eic": (3, 4), "ssd": (5,)}
    caps = cs["capacity_blocks"]
    tiers: dict[str, Any] = {}
    evictions = 0
    for name, t in cs["tiers"].items():
        agg = {k: v for k, v in t.items() if k not in ("used_blocks", "instances_used")}
        evictions += agg["evictions"]
        ks = served[name]
        tiers[name] = {
            "hit_rate": float(sum(by_loc_tok[k] for k in ks) / total_in),
            "block_hit_rate": float(sum(by_loc_blk[k] for k in ks) / total_blocks),
            "used_bytes": int(t["used_blocks"] * bb),
            "capacity_bytes": int(caps[name] * bb),
            "instances_used": t["instances_used"],
            **agg,
        }
    ns = res.network_stats()
    moved = int(sum(ns["bytes_by_class"].values()))
    m: dict[str, Any] = {
        "hit_rate": float(tot.hit_tokens.sum() / total_in),
        "block_hit_rate": float(tot.hit_blocks.sum() / total_blocks),
        "hit_rate_by_location": loc_rate,
        "tiers": tiers,
        "evictions": int(evictions),
        "transfers": {
            "bytes": moved,  # summed over the link classes a transfer crosses
            "count": int(ns["transfers"]),
            "by_link_bytes": ns["bytes_by_class"],
            "by_move_blocks": dict(sorted(cs["moved"].items())),
        },
        "network": {
            "bytes_by_class": ns["bytes_by_class"],
            "transfers_by_class": ns["transfers_by_class"],
            "link_busy_s": ns["link_busy_s"],
            "links_instantiated": ns["links_instantiated"],
            "tail_events": ns["tail_events"],
            "ttft_network_share": None,
        },
        "skew": skew_metrics(res.setup.layout, tot),
        "router": res.router,
        "policy": res.policy,
        "block_bytes": int(bb),
        "workers": int(res.setup.layout.n_workers),
        "gpus": int(res.setup.topo.n_gpus),
        "racks": int(res.setup.topo.n_racks),
        "prefetch": res.prefetch,
        "capacity_blocks": {"hbm_per_worker": res.setup.node.hbm_blocks, "dram_per_node": res.setup.node.dram_blocks,
                            "eic_per_rack": cs["eic_blocks"], "remote_ssd": cs["ssd_blocks"]},
    }
    if res.timing:
        sim_t = max(res.sim_time_s, 1e-9)
        tt = tot.ttft_sum_s
        assert tot.sink is not None  # timed totals carry the latencies
        m.update(
            **latency_metrics(tot.sink, PARTS),
            throughput_tokens_s=float((w.input_tokens.sum() + w.output_tokens.sum()) / sim_t),
            slo_attainment=tot.slo_met / tot.requests if tot.requests else None,
            iteration_ms=res.iteration_ms, preemptions=int(res.preemptions),
            **res.io,  # tier_io (bytes actually moved per tier), recomputed_prefixes, recomputed_tokens
        )
        m["network"]["ttft_network_share"] = tot.net_sum_s / tt if tt > 0 else None
    else:
        for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
            m[key] = dist_ms(np.array([]))
        m.update(throughput_tokens_s=None, slo_attainment=None)
    return m
