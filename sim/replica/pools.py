"""Where a replica's running requests keep their KV: memory pools counted in tokens.

* ``TokenPool``: a fixed number of tokens (a PD decode replica, a single-node
  or cluster worker's running requests);
* ``TreePool``: decode growth carved out of a radix tree's memory (colocated
  PD replicas, whose prompts stay in the tree).

Both offer ``headroom()``, ``claimable()``, ``take(n)``, ``give(n)``, ``used`` and ``peak``.
"""
from __future__ import annotations

from sim.cache.radix_tree import RadixTree


class TokenPool:
    """Decode KV memory counted in tokens (a PD decode replica keeps no prefix cache)."""

    def __init__(self, capacity_tokens: int) -> None:
        if capacity_tokens < 1:
            raise ValueError("capacity must be >= 1 token")
        self.capacity = int(capacity_tokens)
        self.used = 0
        self.peak = 0

    def headroom(self) -> int:
        return self.capacity - self.used

    def claimable(self) -> int:
        """Tokens a take can have without side effects (a decode stretch claims these ahead)."""
        return self.capacity - self.used

    def take(self, n: int, force: bool = False) -> None:
        """Use n tokens; ``force`` may overcommit for a moment (see BatchingReplica.grant)."""
        if n > self.capacity - self.used and not force:
            raise RuntimeError(f"TokenPool.take({n}) with {self.capacity - self.used} free")
        self.used += n
        if self.used > self.peak:
            self.peak = self.used

    def give(self, n: int) -> None:
        self.used -= n
        if self.used < 0:
            raise RuntimeError("TokenPool gave back more than it lent")


class TreePool:
    """Decode growth carved out of a radix tree's memory (colocated replicas).

    Prompts stay in the tree (referenced while their request decodes); the
    tokens generated on top are counted here and rounded up to whole blocks
    over the pool (one partial block for the whole batch, not one per
    request). Taking memory evicts unreferenced cache leaves.
    """

    def __init__(self, tree: RadixTree, block_tokens: int) -> None:
        self.tree = tree
        self.bt = block_tokens
        self.g = 0  # tokens held
        self.blocks = 0  # blocks reserved in the tree for them
        self.peak = 0

    @property
    def used(self) -> int:
        return self.g

    def headroom(self) -> int:
        return self.tree.available() * self.bt + self.blocks * self.bt - self.g

    def claimable(self) -> int:
        """Tokens a take can have without evicting: the reserved blocks' slack and the tree's free slots.
        A decode stretch claims only these ahead: an eviction spills to the shared lower tiers and
        changes what later requests match, so it must happen at the iteration that needs it."""
        return (self.tree.free() + self.blocks) * self.bt - self.g

    def take(self, n: int) -> None:
        self.g += n
        need = -(-self.g // self.bt) - self.blocks
        if need > 0:
            if not self.tree.reserve(need):
                raise RuntimeError(f"TreePool.take({n}): the tree cannot free {need} blocks")
            self.blocks += need
        if self.g > self.peak:
            self.peak = self.g

    def give(self, n: int) -> None:
        self.g -= n
        if self.g < 0:
            raise RuntimeError("TreePool gave back more than it lent")
        surplus = self.blocks - -(-self.g // self.bt)
        if surplus > 0:
            self.tree.unreserve(surplus)
            self.blocks -= surplus


__all__ = ["TokenPool", "TreePool"]
