"""Request routers: pick the worker (GPU or TP group) that serves a request.

Routers are small classes found by name in ``ROUTERS``. Each gets a
``RouteState`` it may read: per-worker outstanding load, the least-loaded
worker and the mean load, and a function that tells how many leading blocks
of a request a worker holds in HBM. Routers never scan caches: prefix
scoring walks only the request's own blocks.

The four blind routers (random, round_robin, least_loaded,
session_affinity) read only ``n_workers``, ``load``, ``least()``,
``mean()`` and ``rng``, which ``sim.routing.cluster.ClusterRouteState`` also
offers, so cluster mode registers these same classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

from sim.registry import Registry


@dataclass
class RouteState:
    n_workers: int
    load: np.ndarray  # outstanding requests per worker (int64)
    hbm_prefix: Callable[[int, object], int]  # (worker, blocks) -> cached leading blocks
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def least(self) -> int:
        """The least-loaded worker (ties: the lowest id)."""
        return int(np.argmin(self.load))

    def mean(self) -> float:
        return float(self.load.mean())


class Router:
    name: ClassVar[str] = "base"

    def __init__(self, state: RouteState, **params) -> None:
        self.s = state

    def choose(self, req: int, blocks, session: int) -> int:  # pragma: no cover - interface
        raise NotImplementedError


ROUTERS = Registry("router")
register = ROUTERS.register


def make_router(name: str, state: RouteState, **params) -> Router:
    return ROUTERS.make(name, state, **params)


@register
class RandomRouter(Router):
    name = "random"

    def __init__(self, state, **params):
        super().__init__(state)
        # Drawn 4,096 at a time: the same sequence as one integers() call per request, far cheaper.
        self._draws = np.empty(0, dtype=np.int64)
        self._i = 0

    def choose(self, req, blocks, session):
        if self._i >= len(self._draws):
            self._draws = self.s.rng.integers(self.s.n_workers, size=4096)
            self._i = 0
        self._i += 1
        return int(self._draws[self._i - 1])


@register
class RoundRobin(Router):
    name = "round_robin"

    def __init__(self, state, **params):
        super().__init__(state)
        self._next = 0

    def choose(self, req, blocks, session):
        w = self._next
        self._next = (w + 1) % self.s.n_workers
        return w


@register
class LeastLoaded(Router):
    name = "least_loaded"

    def choose(self, req, blocks, session):
        return self.s.least()


@register
class SessionAffinity(Router):
    """Same session -> same worker, unless that worker carries `overload` x max(1, mean load)."""

    name = "session_affinity"

    def __init__(self, state, overload: float = 2.0, **params):
        super().__init__(state)
        self.overload = overload
        self.home: dict[int, int] = {}

    def choose(self, req, blocks, session):
        s = self.s
        if session >= 0:
            w = self.home.get(session)
            if w is not None and s.load[w] <= self.overload * max(1.0, s.mean()):
                return w
        w = s.least()
        if session >= 0:
            self.home[session] = w
        return w


BLIND_ROUTERS = (RandomRouter, RoundRobin, LeastLoaded, SessionAffinity)


@register
class PrefixAware(Router):
    """Longest HBM-cached prefix minus a load penalty (blocks per queued request)."""

    name = "prefix_aware"

    def __init__(self, state, load_penalty_blocks: float = 4.0, **params):
        super().__init__(state)
        self.penalty = load_penalty_blocks

    def choose(self, req, blocks, session):
        s = self.s
        load = s.load
        best, best_score = 0, None
        if len(blocks):
            for w in range(s.n_workers):
                score = s.hbm_prefix(w, blocks) - self.penalty * load[w]
                if best_score is None or score > best_score:
                    best, best_score = w, score
            return best
        return s.least()


@register
class CacheLoadBalanced(Router):
    """Minimum estimated TTFT, in blocks of prefill work: blocks to compute + queued work.

    On one node every cached block outside HBM is close (DRAM/SSD of the same
    node), so the estimate counts the blocks the worker must prefill (those
    not in its HBM) plus `blocks_per_request` for each request already queued
    on it. The cluster version (sim.routing.cluster) uses a full TTFT model.
    """

    name = "cache_load_balanced"

    def __init__(self, state, blocks_per_request: float = 16.0, **params):
        super().__init__(state)
        self.per_request = blocks_per_request

    def choose(self, req, blocks, session):
        s = self.s
        load = s.load
        n = len(blocks)
        best, best_cost = 0, None
        for w in range(s.n_workers):
            cost = (n - s.hbm_prefix(w, blocks)) + self.per_request * load[w]
            if best_cost is None or cost < best_cost:
                best, best_cost = w, cost
        return best
