"""LRU eviction plus an admission filter for deep prefix blocks.

``admit(key, pos)`` is True iff the block is shallow
(``ctx.depth[pos] <= depth_threshold``) or the key shows reuse: it was seen
before by admit/touch/insert of this policy. "Seen" is a bounded FIFO of
recently seen keys (``history`` entries, default 2 x capacity; a key seen
again moves to the young end). The current admit call counts only after its
decision, so a deep block's first sighting is refused and its second admitted.

Params: ``depth_threshold`` (default 8; ``selective_depth``, the config's
name, is accepted as an alias), ``history`` (default 2 * capacity), and
``seen`` - an OrderedDict the tiers of one node share, so a hit in HBM
counts as reuse evidence when the block is later demoted to DRAM/SSD.
Insertion alone is not evidence (every block is inserted once).
Without an AccessContext the depth is unknown and every key is admitted
(the filter degrades to plain LRU).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from sim.policies.base import AccessContext, register
from sim.policies.lru import LRU


@register
class SelectiveWrite(LRU):
    name = "selective_write"

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        super().__init__(capacity, ctx, **params)
        thr = params.get("depth_threshold", params.get("selective_depth", 8))
        self.depth_threshold = int(thr)
        hist = params.get("history")
        self.history = int(hist) if hist is not None else 2 * capacity
        if self.history < 0:
            raise ValueError("selective_write: history must be >= 0")
        shared = params.get("seen")
        self._seen: OrderedDict[int, None] = shared if shared is not None else OrderedDict()
        self._ctx = ctx
        self._depth: np.ndarray | None = None  # read on the first admission decision, not at construction

    def _see(self, key: int) -> bool:
        """Record a sighting of `key`; return whether it had been seen before."""
        seen = self._seen
        if key in seen:
            seen.move_to_end(key)
            return True
        if self.history:
            seen[key] = None
            if len(seen) > self.history:
                seen.popitem(last=False)
        return False

    def admit(self, key: int, pos: int) -> bool:
        reused = self._see(key)
        if reused or self._ctx is None:
            return True
        if self._depth is None:
            self._depth = self._ctx.depth
        return self._depth.item(pos) <= self.depth_threshold

    def touch(self, key: int, pos: int) -> None:
        self._od.move_to_end(key)
        self._see(key)

    def insert(self, key: int, pos: int) -> None:
        self._od[key] = None
