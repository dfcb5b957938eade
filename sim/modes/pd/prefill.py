"""Prefill scheduling: waiting queue, token-budget batches, chunked prefill, prefill routers.

``PrefillScheduler`` is the pure bookkeeping of one replica's prefill side
(no SimPy): requests wait in FIFO order; at every iteration the scheduler
forms a batch of at most ``token_budget`` tokens in which each request
contributes at most ``chunk_tokens`` (chunked prefill: a long prompt is
split over several iterations and shorter prompts run in between).
Requests already started continue first, then new ones are admitted in
arrival order. Admission references the cached prefix in the replica's
radix tree and reserves HBM for every block the request will add; when
the memory is not there the queue waits (head-of-line, as SGLang does).
When a request's last chunk is done its blocks enter the tree, still
referenced until the KV is no longer needed (transferred to decode, or the
request finished decoding in the colocated setup).

Prefill routers choose the replica of a request: ``cache_aware`` scores
each replica by its longest radix match minus a load penalty, both in
tokens; every router of ``sim.routing.node`` works too (it sees the radix match
as ``hbm_prefix`` and the outstanding prefill requests as load).
"""
from __future__ import annotations

from collections import deque
from typing import ClassVar, Sequence

import numpy as np

from sim.modes.pd.request import Req
from sim.cache.radix_tree import RadixTree


class PrefillScheduler:
    """One replica's prefill queue over its radix tree."""

    def __init__(self, tree: RadixTree, block_tokens: int, chunk_tokens: int, token_budget: int) -> None:
        if chunk_tokens < 1 or token_budget < 1:
            raise ValueError("chunk_tokens and token_budget must be >= 1")
        self.tree = tree
        self.bt = block_tokens
        self.chunk = chunk_tokens
        self.budget = token_budget
        self.waiting: deque[Req] = deque()
        self.active: list[Req] = []  # admitted, chunks left, in admission order
        self.load_tokens = 0  # prefill tokens queued or in progress (the routers' load signal)
        self.outstanding = 0  # requests routed here and not finished prefilling

    def has_work(self) -> bool:
        return bool(self.active or self.waiting)

    def add(self, r: Req) -> None:
        """Queue a routed request; its load estimate is its uncached tokens at routing time."""
        r.todo = r.inp - self._cached_tokens(r, max(r.route_hbm, r.lower_upto))
        self.load_tokens += r.todo
        self.outstanding += 1
        self.waiting.append(r)

    def _cached_tokens(self, r: Req, blocks: int) -> int:
        # At least one token is always computed: it yields the first output token's logits.
        return max(0, min(blocks * self.bt, r.inp - 1))

    def _admit(self, r: Req) -> bool:
        tree, blocks = self.tree, r.blocks
        m = tree.match(blocks)
        # Blocks loaded from DRAM/EIC extend the HBM prefix only if what they continue is still there.
        use = r.lower_upto if r.lower_upto > m and m >= r.route_hbm else m
        n = len(blocks)
        if not tree.fits(blocks, m, n - m):
            return False
        tree.lock(blocks, m, r.pos0)
        tree.reserve(n - m)
        if use > m:
            tree.insert(blocks, m, use, r.pos0)
        r.locked = use
        cached = self._cached_tokens(r, use)
        r.hit_hbm = min(cached, m * self.bt)
        r.hit_low = cached - r.hit_hbm
        self.load_tokens += (r.inp - cached) - r.todo
        r.cached = cached
        r.todo = r.inp - cached
        r.done = 0
        r.admitted = True
        return True

    def form_batch(self, budget: int | None = None, admit: bool = True) -> list[tuple[Req, int, int]]:
        """The next iteration's chunks: [(request, new tokens, tokens already in its KV)].

        ``admit=False`` only continues the requests already started.
        """
        left = self.budget if budget is None else budget
        chunk = self.chunk
        batch: list[tuple[Req, int, int]] = []
        for r in self.active:
            if left <= 0:
                return batch
            n = min(r.todo, chunk, left)
            batch.append((r, n, r.cached + r.done))
            left -= n
        waiting = self.waiting
        while admit and left > 0 and waiting:
            r = waiting[0]
            if not self._admit(r):
                break
            waiting.popleft()
            self.active.append(r)
            n = min(r.todo, chunk, left)
            batch.append((r, n, r.cached))
            left -= n
        return batch

    def complete(self, batch: list[tuple[Req, int, int]]) -> list[Req]:
        """Account a finished iteration; returns the requests whose prefill is now complete."""
        finished = []
        tree = self.tree
        for r, n, _before in batch:
            r.done += n
            r.todo -= n
            self.load_tokens -= n
            if r.todo == 0:
                nb = len(r.blocks)
                tree.insert(r.blocks, r.locked, nb, r.pos0)
                r.locked = nb
                finished.append(r)
        if finished:
            self.active = [r for r in self.active if r.todo > 0]
            self.outstanding -= len(finished)
        return finished


# ------------------------------------------------------------------ routers


class PrefillRouter:
    """Chooses the prefill replica of each request."""

    name: ClassVar[str] = "base"

    def __init__(self, scheds: Sequence[PrefillScheduler], block_tokens: int, seed: int = 0, **params) -> None:
        self.scheds = list(scheds)
        self.bt = block_tokens

    def choose(self, r: Req) -> int:  # pragma: no cover - interface
        raise NotImplementedError


PREFILL_ROUTERS: dict[str, type[PrefillRouter]] = {}


def register_prefill_router(cls: type[PrefillRouter]) -> type[PrefillRouter]:
    PREFILL_ROUTERS[cls.name] = cls
    return cls


@register_prefill_router
class CacheAware(PrefillRouter):
    """argmax over replicas of (radix-matched tokens - load_penalty x queued prefill tokens).

    A matched token saves about one token of prefill compute and a queued
    token delays the request by about one token of compute, so a penalty
    of 1 weighs both alike; ties go to the lighter, then the least recently
    chosen replica (idle replicas take turns instead of the first one
    taking everything).
    """

    name = "cache_aware"

    def __init__(self, scheds, block_tokens, seed=0, load_penalty: float = 1.0, **params) -> None:
        super().__init__(scheds, block_tokens, seed)
        self.penalty = float(load_penalty)
        self.last = [0] * len(self.scheds)  # when each replica was last chosen (ties: least recent wins)
        self.n = 0

    def choose(self, r: Req) -> int:
        best, best_key = 0, None
        bt, pen, blocks, last = self.bt, self.penalty, r.blocks, self.last
        for w, s in enumerate(self.scheds):
            hit = min(s.tree.match(blocks) * bt, r.inp)
            key = (hit - pen * s.load_tokens, -s.load_tokens, -last[w])
            if best_key is None or key > best_key:
                best, best_key = w, key
        self.n += 1
        last[best] = self.n
        return best


class ClusterRouter(PrefillRouter):
    """A ``sim.routing.node`` router: radix match as ``hbm_prefix``, outstanding prefill requests as load."""

    name = "cluster"

    def __init__(self, scheds, block_tokens, seed=0, router: str = "prefix_aware", **params) -> None:
        from sim.routing.node import RouteState, make_router

        super().__init__(scheds, block_tokens, seed)
        self.load = np.zeros(len(self.scheds), dtype=np.int64)
        state = RouteState(len(self.scheds), self.load, lambda w, blocks: self.scheds[w].tree.match(blocks),
                           seed=seed)
        self.router = make_router(router, state)

    def choose(self, r: Req) -> int:
        for w, s in enumerate(self.scheds):  # refresh the load view (P is small)
            self.load[w] = s.outstanding
        return int(self.router.choose(r.i, r.blocks, r.sess))


def prefill_router_names() -> list[str]:
    from sim.routing.node import ROUTERS

    return sorted(set(PREFILL_ROUTERS) | set(ROUTERS))


def make_prefill_router(name: str, scheds: Sequence[PrefillScheduler], block_tokens: int, seed: int = 0,
                        **params) -> PrefillRouter:
    """A prefill router by name: a native one, else a ``sim.routing.node`` router through ClusterRouter."""
    if name in PREFILL_ROUTERS:
        return PREFILL_ROUTERS[name](scheds, block_tokens, seed, **params)
    from sim.routing.node import ROUTERS

    if name in ROUTERS:
        return ClusterRouter(scheds, block_tokens, seed, router=name)
    raise KeyError(f"unknown prefill router {name!r} (known: {', '.join(prefill_router_names())})")


__all__ = [
    "CacheAware", "ClusterRouter", "PREFILL_ROUTERS", "PrefillRouter", "PrefillScheduler", "make_prefill_router",
    "prefill_router_names", "register_prefill_router",
]
