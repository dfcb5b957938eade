"""S3-FIFO (Yang et al., SOSP 2023): small FIFO S, main FIFO M, ghost FIFO G.

* New keys enter S, except keys found in G (evicted from S recently), which
  enter M. Every key starts at freq 0.
* A hit adds 1 to the key's 2-bit frequency (capped at 3); order unchanged.
* ``victim()``: if |S| >= the small target (``small_ratio`` x capacity,
  default 10%, at least 1), or M is empty, evict from S, else from M.
  - from S: pop the oldest; if its freq >= ``move_to_main_threshold``
    (default 2, as libCacheSim's reference implementation) it moves to M
    (freq kept) and the next oldest is tried; otherwise it is the victim and
    its key enters G. If S runs dry, evict from M.
  - from M: pop the oldest; if freq > 0 it is reinserted at M's young end with
    freq - 1 and the next oldest is tried; otherwise it is the victim.
* G is a FIFO of keys, ``ghost_ratio`` x capacity entries (default 0.9, i.e.
  about M's size).

Every loop step either moves a key from S to M (once per insertion) or
spends one frequency unit (earned by a touch), so all calls are O(1)
amortised. The tier owns the total capacity: S and M share it, M may run
above its 90% share while S is small. ``remove(key)`` drops the key from S/M
without a ghost entry.
"""
from __future__ import annotations

from collections import OrderedDict

from sim.policies.base import AccessContext, Policy, register

MAX_FREQ = 3


@register
class S3FIFO(Policy):
    name = "s3fifo"

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        super().__init__(capacity, ctx, **params)
        small_ratio = float(params.get("small_ratio", 0.10))
        ghost_ratio = float(params.get("ghost_ratio", 0.90))
        self.move_to_main_threshold = int(params.get("move_to_main_threshold", 2))
        self.small_target = max(1, int(small_ratio * capacity)) if capacity else 0
        self.ghost_size = int(round(ghost_ratio * capacity))
        self.small: OrderedDict[int, int] = OrderedDict()  # key -> freq, oldest first
        self.main: OrderedDict[int, int] = OrderedDict()
        self.ghost: OrderedDict[int, None] = OrderedDict()

    def touch(self, key: int, pos: int) -> None:
        q = self.small if key in self.small else self.main
        f = q[key]
        if f < MAX_FREQ:
            q[key] = f + 1

    def insert(self, key: int, pos: int) -> None:
        ghost = self.ghost
        if key in ghost:
            del ghost[key]
            self.main[key] = 0
        else:
            self.small[key] = 0

    def victim(self) -> int:
        small, main = self.small, self.main
        if not small and not main:
            raise IndexError(f"{self.name}: victim() on an empty policy")
        if small and (len(small) >= self.small_target or not main):
            thr = self.move_to_main_threshold
            while small:
                key, f = small.popitem(last=False)
                if f >= thr:
                    main[key] = f
                else:
                    if self.ghost_size:
                        ghost = self.ghost
                        ghost[key] = None
                        if len(ghost) > self.ghost_size:
                            ghost.popitem(last=False)
                    return key
        while True:
            key, f = main.popitem(last=False)
            if f:
                main[key] = f - 1
            else:
                return key

    def remove(self, key: int) -> None:
        if self.small.pop(key, None) is None:
            self.main.pop(key, None)

    def __contains__(self, key: int) -> bool:
        return key in self.small or key in self.main

    def __len__(self) -> int:
        return len(self.small) + len(self.main)
