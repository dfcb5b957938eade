"""Routers blind to the cache: they read only the view's loads (and its random generator).

They serve every scope; ``least_loaded`` also picks PD decode replicas,
whose view defines "least loaded" as the replica holding the fewest prompt
tokens that has room for the request.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sim.routing.base import Blocks, Router, RouteView
from sim.routing.registry import register


@register
class RandomRouter(Router[RouteView]):
    name = "random"
    compiled_code = 0

    def __init__(self, state: RouteView, **params: Any) -> None:
        super().__init__(state)
        # Drawn 4,096 at a time: the same sequence as one integers() call per request, far cheaper.
        self._draws = np.empty(0, dtype=np.int64)
        self._i = 0

    def choose(self, req: int, blocks: Blocks, session: int) -> int:
        if self._i >= len(self._draws):
            self._draws = self.s.rng.integers(self.s.n_workers, size=4096)
            self._i = 0
        self._i += 1
        return int(self._draws[self._i - 1])


@register
class RoundRobin(Router[RouteView]):
    name = "round_robin"
    compiled_code = 1

    def __init__(self, state: RouteView, **params: Any) -> None:
        super().__init__(state)
        self._next = 0

    def choose(self, req: int, blocks: Blocks, session: int) -> int:
        w = self._next
        self._next = (w + 1) % self.s.n_workers
        return w


@register
class LeastLoaded(Router[RouteView]):
    name = "least_loaded"
    scopes = frozenset({"node", "cluster", "prefill", "decode"})
    compiled_code = 2

    def choose(self, req: int, blocks: Blocks, session: int) -> int:
        return self.s.least()


@register
class SessionAffinity(Router[RouteView]):
    """Same session -> same worker, unless that worker carries `overload` x max(1, mean load)."""

    name = "session_affinity"
    compiled_code = 3

    def __init__(self, state: RouteView, overload: float = 2.0, **params: Any) -> None:
        super().__init__(state)
        self.overload = overload
        self.home: dict[int, int] = {}

    def choose(self, req: int, blocks: Blocks, session: int) -> int:
        s = self.s
        if session >= 0:
            w = self.home.get(session)
            if w is not None and s.load[w] <= self.overload * max(1.0, s.mean()):
                return w
        w = s.least()
        if session >= 0:
            self.home[session] = w
        return w
