"""Metrics a sweep can select and plot: the points.csv column, a label and a unit.

Every name here is a column of points.csv (see ``results.flatten_metrics``
for how report keys become columns). A spec's ``metrics`` must come from this
registry so that every plot has a unit; a mode that reports a new metric adds
it here.
"""
from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str
    scale: float = 1.0  # plotted value = CSV value x scale

    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})"


PCT = 100.0
METRICS: dict[str, Metric] = {
    "hit_rate": Metric("token-weighted prefix hit rate", "%", PCT),
    "block_hit_rate": Metric("block hit rate", "%", PCT),
    "slo_attainment": Metric("requests meeting both TTFT and TPOT SLOs", "%", PCT),
    "throughput_tokens_s": Metric("throughput (input + output)", "tokens/s"),
    "goodput_req_s": Metric("goodput (requests meeting both SLOs)", "requests/s"),
    "evictions": Metric("evictions", "blocks"),
    "transfer_bytes": Metric("KV moved between tiers", "GiB", 1 / GIB),
    "transfer_count": Metric("KV blocks moved between tiers", "blocks"),
    "prefill_utilization_share": Metric("prefill busy share of the workers", "%", PCT),
    "gpu_decode_busy_share": Metric("decode busy share of the GPUs", "%", PCT),
    "sim_speed_req_s": Metric("simulation speed", "requests per wall second"),
    "wall_s": Metric("wall time of the point", "s"),
    # cluster / pd modes
    "ttft_network_share": Metric("share of TTFT spent on the network", "%", PCT),
    "network_tail_events": Metric("transfers hit by a tail slowdown", "count"),
    "throughput_req_s": Metric("throughput", "requests/s"),
    # oracle mode (sim.oracle.bounds at the node's HBM capacity)
    "content_hit_rate": Metric("content bound (unlimited capacity)", "%", PCT),
    "relaxed_hit_rate": Metric("relaxed optimum (prefix order ignored)", "%", PCT),
    "strict_prefix_opt_hit_rate": Metric("strict-prefix optimum", "%", PCT),
    "lru_hit_rate": Metric("LRU (oracle replay)", "%", PCT),
}
for _tier in ("hbm", "dram", "ssd", "eic"):
    METRICS[f"{_tier}_hit_rate"] = Metric(f"hit rate served from {_tier.upper()}", "%", PCT)
for _d, _name in (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e", "end-to-end latency"), ("load", "KV load time"),
                  ("queue", "queueing time"), ("prefill", "prefill time")):
    for _s in ("mean", "p50", "p90", "p99"):
        METRICS[f"{_d}_{_s}_ms"] = Metric(f"{_name} {_s}", "ms")

# Columns that measure the machine, not the simulation: they differ between
# runs and backends and are left out of determinism checks.
WALL_CLOCK_COLUMNS = ("wall_s", "sim_speed_req_s")


def metric(name: str) -> Metric:
    return METRICS[name]
