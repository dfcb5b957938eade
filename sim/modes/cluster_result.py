"""What one cluster replay measured (``ClusterResult``) and the cache's counters as plain data
(``cache_summary``); ``sim.report.cluster`` turns them into the report."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.cache.cluster import ClusterCache
from sim.engine.cluster_cache import CompiledClusterCache
from sim.modes.cluster_setup import ClusterSetup
from sim.modes.result_rows import ResultRows
from sim.replica.histogram import IterationHistogram
from sim.report.cluster_totals import ClusterTotals
from sim.timing.network import Network
from trace.workload import Workload


@dataclass
class ClusterResult:
    """Everything one cluster replay measured; sim.report.cluster turns it into the report schema."""

    policy: str
    router: str
    timing: bool
    setup: ClusterSetup
    cache: ClusterCache | CompiledClusterCache
    network: Network
    workload: Workload
    totals: ClusterTotals  # what the report reads of the per-request rows (sim.report.cluster_totals)
    # The per-request rows (sim.modes.result_rows.CLUSTER_COLUMNS) when the run keeps them whole; None when it
    # streamed them a block at a time (above report.exact_quantiles_max_requests)
    hit_blocks: np.ndarray | None = None  # (n, 6) blocks per location (LOC_NAMES)
    hit_tokens: np.ndarray | None = None  # (n, 6) tokens per location
    worker: np.ndarray | None = None
    net_s: np.ndarray | None = None  # waiting for the cached prefix to arrive
    queue_s: np.ndarray | None = None  # prefill queue
    prefill_s: np.ndarray | None = None
    ttft_s: np.ndarray | None = None
    tpot_s: np.ndarray | None = None
    e2e_s: np.ndarray | None = None
    busy_s: np.ndarray | None = None  # per request: time it occupied its worker (e2e, or the estimate untimed)
    recomputed_tokens: np.ndarray | None = None  # cached tokens recomputed rather than loaded (cache.load_policy)
    most_blocks: int = 1  # the most row blocks held at once (sim.modes.result_rows)
    sim_time_s: float = 0.0
    wall_s: float = 0.0
    decode_busy_s: dict = field(default_factory=dict)  # worker -> seconds with a non-empty batch
    iteration_ms: dict | None = None  # p50/p90/p99/mean of the replicas' iteration times (timed)
    preemptions: int = 0
    io: dict = field(default_factory=dict)  # ClusterIO.summary(): tier_io bytes, recomputed prefixes (timed runs)
    prefetch: dict = field(default_factory=dict)  # the report's prefetch block (sim.timing.prefetch)
    iteration_hist: IterationHistogram | None = None  # the replicas' iterations together (timed)

    def cache_summary(self) -> dict:
        """The cache's counters as plain data (what the report reads; summed over pods when partitioned)."""
        return cache_summary(self.cache)

    def network_stats(self) -> dict:
        return self.network.stats()


ROWS_CHUNK = 4096  # rows the hit-rate-only replay buffers as Python lists between flushes into its blocks


class RowWriter:
    """The hit-rate-only replay's per-request worker, hits per location (blocks, tokens) and estimated busy
    seconds, in arrival order, into the run's row blocks (``sim.modes.result_rows.ResultRows``; each row is
    complete when written). Rows are buffered as Python lists (an append is what the replay loop can afford;
    a numpy row write costs ~1 us) and flushed every `chunk` rows."""

    __slots__ = ("rows", "chunk", "i0", "wk", "hb", "ht", "busy")

    def __init__(self, rows: ResultRows, chunk: int | None = None) -> None:
        self.rows, self.chunk, self.i0 = rows, chunk or ROWS_CHUNK, 0
        self.wk: list[int] = []
        self.hb: list = []
        self.ht: list = []
        self.busy: list[float] = []

    def add(self, wk: int, hb, ht, busy: float) -> None:
        """The next request's row: its worker, blocks and tokens per location (6 ints each), busy seconds."""
        self.wk.append(wk)
        self.hb.append(hb)
        self.ht.append(ht)
        self.busy.append(busy)
        if len(self.wk) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        i, end, rows = self.i0, self.i0 + len(self.wk), self.rows
        while i < end:  # the buffered rows block by block
            b = rows.at(i)
            j, k = i - b.lo, min(end, b.lo + b.n) - i
            src = slice(i - self.i0, i - self.i0 + k)
            b.worker[j:j + k] = self.wk[src]
            b.hit_blocks[j:j + k] = self.hb[src]
            b.hit_tokens[j:j + k] = self.ht[src]
            b.busy_s[j:j + k] = self.busy[src]
            rows.done(i, k)
            i += k
        for buf in (self.wk, self.hb, self.ht, self.busy):
            buf.clear()
        self.i0 = end


_TIER_COUNTERS = ("hits", "inserts", "demotions_in", "promotions_out", "taken", "evictions", "dropped", "rejected")


def cache_summary(cache: ClusterCache | CompiledClusterCache) -> dict:
    """Per tier kind: summed counters, blocks held, instances used; capacities; block moves."""
    tiers = {}
    for name, group in cache.tier_groups().items():
        st = [t.stats for t in group]
        agg = {key: int(sum(getattr(s, key) for s in st)) for key in _TIER_COUNTERS}
        tiers[name] = {**agg, "used_blocks": int(sum(len(t) for t in group)), "instances_used": len(group)}
    return {"tiers": tiers, "capacity_blocks": {k: int(v) for k, v in cache.capacity_blocks().items()},
            "moved": {str(k): int(v) for k, v in cache.moved.items()},
            "eic_blocks": int(cache.eic_blocks), "ssd_blocks": int(cache.ssd_blocks)}

