"""Least frequently used, LRU among keys of equal frequency.

Frequency counts accesses while resident (insert = 1, each touch +1); a key
that leaves and comes back starts again at 1 (in-cache LFU, no history).

Structure: ``freq[key]`` and one OrderedDict bucket per frequency (oldest
first), plus a min-heap of the frequencies that own a bucket, with lazy
deletion: a frequency whose bucket emptied stays in the heap until it reaches
the top. touch/insert are O(1) plus at most one heap push, victim is
O(log F) amortised (F = distinct frequencies), remove is O(1).
"""
from __future__ import annotations

from collections import OrderedDict
from heapq import heappop, heappush

from sim.policies.base import AccessContext, Policy, register


@register
class LFU(Policy):
    name = "lfu"

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        super().__init__(capacity, ctx, **params)
        self._freq: dict[int, int] = {}
        self._buckets: dict[int, OrderedDict[int, None]] = {}
        self._heap: list[int] = []  # frequencies, possibly with empty (deleted) buckets
        self._in_heap: set[int] = set()

    def _bucket(self, f: int) -> OrderedDict:
        b = self._buckets.get(f)
        if b is None:
            b = self._buckets[f] = OrderedDict()
            if f not in self._in_heap:
                self._in_heap.add(f)
                heappush(self._heap, f)
        return b

    def touch(self, key: int, pos: int) -> None:
        f = self._freq[key]
        b = self._buckets[f]
        del b[key]
        if not b:
            del self._buckets[f]
        f += 1
        self._freq[key] = f
        nb = self._buckets.get(f)
        if nb is None:
            nb = self._bucket(f)
        nb[key] = None

    def insert(self, key: int, pos: int) -> None:
        self._freq[key] = 1
        self._bucket(1)[key] = None

    def victim(self) -> int:
        if not self._freq:
            raise IndexError(f"{self.name}: victim() on an empty policy")
        heap, buckets = self._heap, self._buckets
        while heap[0] not in buckets:
            self._in_heap.discard(heappop(heap))
        f = heap[0]
        b = buckets[f]
        key = b.popitem(last=False)[0]
        if not b:
            del buckets[f]
        del self._freq[key]
        return key

    def remove(self, key: int) -> None:
        f = self._freq.pop(key, None)
        if f is None:
            return
        b = self._buckets[f]
        del b[key]
        if not b:
            del self._buckets[f]

    def frequency(self, key: int) -> int:
        """Resident frequency of `key` (0 when not resident)."""
        return self._freq.get(key, 0)

    def __contains__(self, key: int) -> bool:
        return key in self._freq

    def __len__(self) -> int:
        return len(self._freq)
