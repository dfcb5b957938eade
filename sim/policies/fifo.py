"""First in, first out: hits do not change the order.

An OrderedDict rather than a plain dict: popping the oldest entry of a dict
over and over is quadratic (iteration skips the deleted slots at the front).
"""
from __future__ import annotations

from collections import OrderedDict

from sim.policies.base import AccessContext, Policy, register


@register
class FIFO(Policy):
    name = "fifo"

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        super().__init__(capacity, ctx, **params)
        self._od: OrderedDict[int, None] = OrderedDict()

    def touch(self, key: int, pos: int) -> None:
        pass

    def insert(self, key: int, pos: int) -> None:
        self._od[key] = None

    def victim(self) -> int:
        if not self._od:
            raise IndexError(f"{self.name}: victim() on an empty policy")
        return self._od.popitem(last=False)[0]

    def remove(self, key: int) -> None:
        self._od.pop(key, None)

    def __contains__(self, key: int) -> bool:
        return key in self._od

    def __len__(self) -> int:
        return len(self._od)
