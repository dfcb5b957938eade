"""A stand-in policy for tiers that can never fill up during a run."""
from __future__ import annotations

from sim.policies.base import Policy


class Unbounded(Policy):
    """Stands in for a policy in a tier that can never fill up during the run.

    A tier whose capacity is at least the number of distinct blocks of the
    workload never needs a victim, so its eviction order is irrelevant: this
    keeps only membership (no recency bookkeeping). Used only for policies
    without an admission filter, so the tier behaves exactly as with them.
    """

    name = "unbounded"

    def __init__(self, capacity: int, ctx=None, **params) -> None:
        super().__init__(capacity, ctx)
        self._keys: set[int] = set()

    def touch(self, key: int, pos: int) -> None:
        pass

    def insert(self, key: int, pos: int) -> None:
        self._keys.add(key)

    def victim(self) -> int:
        raise RuntimeError("an unbounded tier was asked for a victim: its capacity was underestimated")

    def remove(self, key: int) -> None:
        self._keys.discard(key)

    def __contains__(self, key: int) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)
