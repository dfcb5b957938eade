"""Cache-aware routers: score candidate targets by the prefix they hold and their load.

Written once over ``CacheView``: the node view (sim.routing.node) scores
every worker by its HBM prefix and keeps the lowest id on ties; the cluster
view (sim.routing.cluster) scores a bounded candidate set by what is cached
inside each candidate's rack, estimates TTFT with a cost model, and breaks
ties toward the lighter worker. Neither walks more than the request's own
blocks.
"""
from __future__ import annotations

from typing import Any

from sim.routing.base import Blocks, CacheView, Router
from sim.routing.registry import register


@register
class PrefixAware(Router[CacheView]):
    """Longest prefix cached close to the target minus a load penalty (blocks per queued request)."""

    name = "prefix_aware"
    compiled_code = 4
    rack_candidates = 2  # cluster: racks whose EIC pool holds the longest prefix

    def __init__(self, state: CacheView, load_penalty_blocks: float = 4.0, **params: Any) -> None:
        super().__init__(state)
        self.penalty = load_penalty_blocks

    def choose(self, req: int, blocks: Blocks, session: int) -> int:
        s = self.s
        load = s.load
        pen = self.penalty
        tie_break = s.tie_break
        best = -1
        best_key: tuple[float, ...] | None = None
        cands = s.candidates(req, blocks, self.rack_candidates)
        for w, (near, hbm) in zip(cands, s.near_prefixes(cands, blocks), strict=True):
            lw = int(load[w])
            key = (near - pen * lw, *tie_break(lw, hbm))
            if best_key is None or key > best_key:
                best, best_key = w, key
        return best


@register
class CacheLoadBalanced(Router[CacheView]):
    """Minimum estimated TTFT: queue wait + loading the cached prefix from where it lives + prefill of the rest.

    The node view counts in blocks of prefill work (every cached block outside
    HBM is close: DRAM/SSD of the same node): the blocks not in the worker's
    HBM plus `blocks_per_request` per request queued on it. The cluster view
    uses its cost model's seconds.
    """

    name = "cache_load_balanced"
    compiled_code = 5
    rack_candidates = 3

    def __init__(self, state: CacheView, blocks_per_request: float = 16.0, **params: Any) -> None:
        super().__init__(state)
        self.per_request = blocks_per_request

    def choose(self, req: int, blocks: Blocks, session: int) -> int:
        s = self.s
        best, best_t = -1, float("inf")
        cands = s.candidates(req, blocks, self.rack_candidates)
        for w, c in zip(cands, s.located_prefixes(cands, blocks), strict=True):
            q = s.queue_cost(w, self.per_request)
            if q >= best_t:
                continue  # its queue alone is longer than the best estimate
            t = s.cost_after_queue(q, c, req, blocks)
            if t < best_t:
                best, best_t = w, t
        return best
