"""What one cluster replay measured (``ClusterResult``) and the cache's counters as plain data
(``cache_summary``); ``sim.report.cluster`` turns them into the report."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.cache.cluster import ClusterCache
from sim.engine.cluster_cache import CompiledClusterCache
from sim.modes.cluster_setup import ClusterSetup
from sim.replica.histogram import IterationHistogram
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
    hit_blocks: np.ndarray  # (n, 6) blocks per location (LOC_NAMES)
    hit_tokens: np.ndarray  # (n, 6) tokens per location
    worker: np.ndarray
    net_s: np.ndarray  # waiting for the cached prefix to arrive
    queue_s: np.ndarray  # prefill queue
    prefill_s: np.ndarray
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_s: np.ndarray
    busy_s: np.ndarray  # per request: time it occupied its worker (e2e, or the estimate without timing)
    recomputed_tokens: np.ndarray  # cached tokens recomputed rather than loaded (cache.load_policy; timed)
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


ROWS_CHUNK = 4096  # rows a replay buffers as Python lists between flushes into the result's arrays


class RowWriter:
    """A replay's per-request worker and hits per location (blocks, tokens), in arrival order, into the
    result's int64 arrays. Rows are buffered as Python lists (an append is what the replay loop can
    afford; a numpy row write costs ~1 us) and flushed every `chunk` rows, so a run holds `chunk` rows
    of Python objects instead of all of them until the end (~400 B a request; issue #19)."""

    __slots__ = ("res", "chunk", "i0", "wk", "hb", "ht")

    def __init__(self, res: ClusterResult, chunk: int | None = None) -> None:
        self.res, self.chunk, self.i0 = res, chunk or ROWS_CHUNK, 0
        self.wk: list[int] = []
        self.hb: list = []
        self.ht: list = []

    def add(self, wk: int, hb, ht) -> None:
        """The next request's row: its worker, blocks and tokens per location (6 ints each)."""
        self.wk.append(wk)
        self.hb.append(hb)
        self.ht.append(ht)
        if len(self.wk) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        k = len(self.wk)
        if not k:
            return
        i0, i1, res = self.i0, self.i0 + k, self.res
        res.worker[i0:i1] = self.wk
        res.hit_blocks[i0:i1] = self.hb
        res.hit_tokens[i0:i1] = self.ht
        self.wk.clear()
        self.hb.clear()
        self.ht.clear()
        self.i0 = i1

    def close(self) -> None:
        """The last rows in; every request must have had its row (a replay that lost one fails here)."""
        self.flush()
        if self.i0 != len(self.res.worker):
            raise RuntimeError(f"replay wrote {self.i0} of {len(self.res.worker)} request rows")


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

