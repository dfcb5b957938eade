"""First in, first out: LRU's queue, except that hits do not change the order.

An OrderedDict rather than a plain dict: popping the oldest entry of a dict
over and over is quadratic (iteration skips the deleted slots at the front).
"""
from __future__ import annotations

from sim.policies.base import register
from sim.policies.lru import LRU


@register
class FIFO(LRU):
    name = "fifo"

    def touch(self, key: int, pos: int) -> None:
        pass
