"""The report's ``load`` block: offered load per worker pool before the run (``sim.timing.offered_load``),
the run's class after it (``sim.report.saturation``), in every mode.

Pools: single and cluster modes have one pool of colocated workers (prefill and decode on the same
replicas); PD has a prefill and a decode pool, and its colocated baseline one pool of all replicas.
"""
from __future__ import annotations

from typing import Any

from sim.config import Config
from sim.report.saturation import SaturationStream
from sim.timing.offered_load import Pool, headline, offered_load
from sim.timing.step_cost import StepModel
from trace.workload import Workload


def node_pools(n_workers: int, node) -> list[Pool]:
    """Single-node and cluster modes: one pool of `n_workers` colocated workers, each holding the KV tokens of a
    worker of `node` (a sim.modes.common.NodeSetup)."""
    return [Pool("workers", n_workers, prefill=True, decode=True, kv_tokens=node.hbm_blocks * node.block_tokens)]


def pd_pools(prefill: int, decode: int, kv_tokens: int) -> list[Pool]:
    """PD: the prefill and decode pools, and the colocated baseline's pool of the same replicas."""
    return [Pool("prefill", prefill, prefill=True, decode=False, kv_tokens=kv_tokens),
            Pool("decode", decode, prefill=False, decode=True, kv_tokens=kv_tokens),
            Pool("colocated", prefill + decode, prefill=True, decode=True, kv_tokens=kv_tokens)]


def pre_run(cfg: Config, w: Workload, pools: list[Pool]) -> dict[str, Any]:
    """The offered-load half of the block, computed before simulating."""
    return offered_load(StepModel.from_config(cfg), w, pools, cfg.compute.max_num_seqs)


def saturation_of(stream: SaturationStream, metrics: dict[str, Any], workers: int) -> dict[str, Any]:
    """A run's ``saturation`` metrics from the stream its requests' arrivals and TTFTs were fed to (every mode's
    totals keep one: sim.report.single, cluster_totals, pd), on ``workers`` replicas that prefill."""
    return stream.result(_queue_share(metrics), workers)


def _queue_share(metrics: dict[str, Any]) -> float | None:
    return (metrics.get("ttft_breakdown_ms") or {}).get("queue_share")


def finish(block: dict[str, Any], metrics: dict[str, Any] | None, pool_names: list[str]) -> dict[str, Any]:
    """The whole block: the offered load of the headline deployment's pools, and the headline run's class
    (None when it was not timed)."""
    rho, need = headline(block, pool_names)
    sat = (metrics or {}).get("saturation")
    return {**block, "headline_pools": pool_names, "offered_load_share": rho, "workers_for_0_8_load": need,
            "load_class": sat["load_class"] if sat else None}


def warning_line(report: dict[str, Any]) -> str | None:
    """The one stderr line for a run that is not stable (None when stable or untimed)."""
    load = report.get("load") or {}
    cls = load.get("load_class")
    if cls in (None, "stable"):
        return None
    m = report.get("metrics") or {}
    sat = m.get("saturation") or {}
    pools = load.get("headline_pools") or []
    parts = []
    for name in pools:
        r = load["pools"].get(name) or {}
        if r.get("offered_load_share") is not None:
            who = "" if name == "workers" else f"{name} "
            parts.append(f"{who}{r['offered_load_share']:.2f} on {r['workers']:,} workers "
                         f"({r['workers_for_0_8_load']:,} would keep it under 0.8)")
    trend = []
    if sat.get("ttft_trend_ratio") is not None:
        trend.append(f"TTFT x{sat['ttft_trend_ratio']:.1f} first to last tenth of arrivals")
    if sat.get("queue_share") is not None:
        trend.append(f"{100 * sat['queue_share']:.0f}% of TTFT queueing")
    return (f"{cls} run: offered load {', '.join(parts) or 'unknown'}"
            + (f"; {', '.join(trend)}" if trend else "") + " - latencies measure the queue, not the system")


__all__ = ["finish", "node_pools", "pd_pools", "pre_run", "saturation_of", "warning_line"]
