"""Belady's MIN (offline optimal for demand paging): evict the resident key
whose next use is farthest in the future.

The next use of a key is ``ctx.next_use[pos]`` of its latest touch/insert.
A max-heap of ``(-next_use, key)`` with lazy invalidation: ``_next[key]``
holds the current next use, heap entries that disagree with it (the key was
touched again, removed or evicted) are skipped when they surface. The heap
is rebuilt from ``_next`` when stale entries outnumber live ones, so memory
stays O(resident) and every call is O(log n) amortised. Ties (e.g. several
keys never used again) go to the smaller key.
"""
from __future__ import annotations

from heapq import heapify, heappop, heappush

from sim.policies.base import AccessContext, Policy, register


@register
class Belady(Policy):
    name = "belady"

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        if ctx is None:
            raise ValueError("belady needs an AccessContext (next_use) built from the workload")
        super().__init__(capacity, ctx, **params)
        self._nu = ctx.next_use
        self._next: dict[int, int] = {}
        self._heap: list[tuple[int, int]] = []

    def _set(self, key: int, pos: int) -> None:
        nu = self._nu.item(pos)
        self._next[key] = nu
        heap = self._heap
        heappush(heap, (-nu, key))
        if len(heap) > 2 * len(self._next) + 1024:
            self._heap = [(-v, k) for k, v in self._next.items()]
            heapify(self._heap)

    touch = _set
    insert = _set

    def victim(self) -> int:
        nxt, heap = self._next, self._heap
        if not nxt:
            raise IndexError(f"{self.name}: victim() on an empty policy")
        while True:
            neg, key = heappop(heap)
            if nxt.get(key) == -neg:
                del nxt[key]
                return key

    def remove(self, key: int) -> None:
        self._next.pop(key, None)

    def next_use(self, key: int) -> int:
        """Position of the next access of resident `key` (NEVER if none)."""
        return self._next[key]

    def __contains__(self, key: int) -> bool:
        return key in self._next

    def __len__(self) -> int:
        return len(self._next)
