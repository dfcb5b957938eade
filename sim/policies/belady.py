"""Belady's MIN (offline optimal for demand paging): evict the resident key
whose next use is farthest in the future.

The next use of a key is ``ctx.next_use[pos]`` of its latest touch/insert.
Keys never used again ("dead", next use NEVER) are all equally good victims;
they leave first, the one that became dead earliest first (an OrderedDict,
O(1)). Live keys wait in a max-heap of ``(-next_use, key)`` with lazy
invalidation: ``_next[key]`` holds the current next use, heap entries that
disagree with it (touched again, removed, evicted, or dead since) are
skipped when they surface; the heap is rebuilt from ``_next`` when stale
entries outnumber live ones, so memory stays O(resident) and every call is
O(log n) amortised. Two live keys never share a next use (it is the
position of one access of one key), so live ties cannot occur.

Why dead keys get their own queue: most blocks of a trace are never reused
(63% of Mooncake's accesses are last uses), so most evictions pick a dead
key; a queue pop is O(1) where the heap paid O(log n), and the heap holds
only the live minority.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import cached_property
from heapq import heapify, heappop, heappush

import numpy as np

from sim.policies.base import NEVER, AccessContext, Policy, register


@register
class Belady(Policy):
    name = "belady"

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        if ctx is None:
            raise ValueError("belady needs an AccessContext (next_use) built from the workload")
        super().__init__(capacity, ctx, **params)
        self._nu_ctx = ctx  # next_use is read on the first access, not here (the compiled engine reads steps)
        self._next: dict[int, int] = {}  # live keys -> next use
        self._heap: list[tuple[int, int]] = []
        self._dead: OrderedDict[int, None] = OrderedDict()  # never used again, oldest first

    @cached_property
    def _nu(self) -> np.ndarray:
        return self._nu_ctx.next_use

    def _set(self, key: int, pos: int) -> None:
        nu = self._nu.item(pos)
        if nu == NEVER:
            self._next.pop(key, None)
            self._dead[key] = None
            self._dead.move_to_end(key)
            return
        self._dead.pop(key, None)
        self._next[key] = nu
        heap = self._heap
        heappush(heap, (-nu, key))
        if len(heap) > 2 * len(self._next) + 1024:
            self._heap = [(-v, k) for k, v in self._next.items()]
            heapify(self._heap)

    touch = _set
    insert = _set

    def victim(self) -> int:
        if self._dead:
            return self._dead.popitem(last=False)[0]
        nxt, heap = self._next, self._heap
        if not nxt:
            raise IndexError(f"{self.name}: victim() on an empty policy")
        while True:
            neg, key = heappop(heap)
            if nxt.get(key) == -neg:
                del nxt[key]
                return key

    def remove(self, key: int) -> None:
        if key in self._dead:
            del self._dead[key]
        else:
            self._next.pop(key, None)

    def next_use(self, key: int) -> int:
        """Position of the next access of resident `key` (NEVER if none)."""
        return NEVER if key in self._dead else self._next[key]

    def __contains__(self, key: int) -> bool:
        return key in self._next or key in self._dead

    def __len__(self) -> int:
        return len(self._next) + len(self._dead)
