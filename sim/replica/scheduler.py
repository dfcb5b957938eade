"""Prefill scheduling: waiting queue, token-budget batches, chunked prefill.

``PrefillScheduler`` is the pure bookkeeping of one replica's prefill side
(no SimPy): requests wait in FIFO order; at every iteration the scheduler
forms a batch of at most ``token_budget`` tokens in which each request
contributes at most ``chunk_tokens`` (chunked prefill: a long prompt is
split over several iterations and shorter prompts run in between).
Requests already started continue first, then new ones are admitted in
arrival order, at most ``max_new`` per iteration (the replica's free
``max_num_seqs`` slots). When the memory is not there the queue waits
(head-of-line, as SGLang does). What admission means is the replica's
``Admission``:

* ``TreeAdmission`` (PD prefill and colocated replicas): references the
  cached prefix in the replica's radix tree and reserves HBM for every
  block the request will add; when the last chunk is done the blocks enter
  the tree, still referenced until the KV is no longer needed (transferred
  to decode, or the request finished decoding in the colocated setup).
* ``PoolAdmission`` (single-node and cluster workers): the prefix cache is
  elsewhere (``sim.cache``) and has told the request its ``cached`` tokens;
  admission takes the whole prompt's tokens from the worker's ``TokenPool``,
  which the request keeps while it decodes.

The prefill routers (which replica serves a request) are in sim.routing.pd.
"""
from __future__ import annotations

from collections import deque
from typing import Protocol

from sim.cache.radix_tree import RadixTree
from sim.replica.pools import TokenPool
from sim.replica.request import Req


class Admission(Protocol):
    def todo_estimate(self, r: Req) -> int:
        """Tokens r will prefill, as known when it is queued (the routers' load signal)."""
        ...

    def admit(self, r: Req) -> bool:
        """Reserve r's memory and set r.cached / r.todo; False = not now."""
        ...

    def finished(self, r: Req) -> None:
        """r's last chunk is done."""
        ...


class TreeAdmission:
    """Admission over a radix tree (PD prefill and colocated replicas)."""

    def __init__(self, tree: RadixTree, block_tokens: int) -> None:
        self.tree = tree
        self.bt = block_tokens

    def todo_estimate(self, r: Req) -> int:
        return r.inp - self._cached_tokens(r, max(r.route_hbm, r.lower_upto))

    def _cached_tokens(self, r: Req, blocks: int) -> int:
        # At least one token is always computed: it yields the first output token's logits.
        return max(0, min(blocks * self.bt, r.inp - 1))

    def admit(self, r: Req) -> bool:
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
        r.cached = cached
        return True

    def finished(self, r: Req) -> None:
        nb = len(r.blocks)
        self.tree.insert(r.blocks, r.locked, nb, r.pos0)
        r.locked = nb


class PoolAdmission:
    """Admission into a worker's token pool; r.cached was set by the prefix cache in front of it."""

    def __init__(self, pool: TokenPool) -> None:
        self.pool = pool

    def todo_estimate(self, r: Req) -> int:
        return r.inp - r.cached

    def admit(self, r: Req) -> bool:
        if self.pool.headroom() < r.inp:
            return False
        self.pool.take(r.inp)
        r.mem = r.inp
        return True

    def finished(self, r: Req) -> None:
        pass


class PrefillScheduler:
    """One replica's prefill queue."""

    def __init__(self, admission: Admission, chunk_tokens: int, token_budget: int) -> None:
        if chunk_tokens < 1 or token_budget < 1:
            raise ValueError("chunk_tokens and token_budget must be >= 1")
        self.admission = admission
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
        r.todo = self.admission.todo_estimate(r)
        self.load_tokens += r.todo
        self.outstanding += 1
        self.waiting.append(r)

    def _admit(self, r: Req) -> bool:
        if not self.admission.admit(r):
            return False
        cached = r.cached
        self.load_tokens += (r.inp - cached) - r.todo
        r.todo = r.inp - cached
        r.done = 0
        r.admitted = True
        return True

    def form_batch(self, budget: int | None = None, max_new: int = 1 << 30) -> list[tuple[Req, int, int]]:
        """The next iteration's chunks: [(request, new tokens, tokens already in its KV)].

        At most ``max_new`` requests are admitted (0: only the requests already started continue).
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
        while max_new > 0 and left > 0 and waiting:
            r = waiting[0]
            if not self._admit(r):
                break
            waiting.popleft()
            self.active.append(r)
            max_new -= 1
            n = min(r.todo, chunk, left)
            batch.append((r, n, r.cached))
            left -= n
        return batch

    def complete(self, batch: list[tuple[Req, int, int]]) -> list[Req]:
        """Account a finished iteration; returns the requests whose prefill is now complete."""
        finished = []
        adm = self.admission
        for r, n, _before in batch:
            r.done += n
            r.todo -= n
            self.load_tokens -= n
            if r.todo == 0:
                adm.finished(r)
                finished.append(r)
        if finished:
            self.active = [r for r in self.active if r.todo > 0]
            self.outstanding -= len(finished)
        return finished


__all__ = ["Admission", "PoolAdmission", "PrefillScheduler", "TreeAdmission"]
