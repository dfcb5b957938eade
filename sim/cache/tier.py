"""One cache tier: a capacity in blocks, an eviction policy, and counters.

A tier stores block ids and the workload position of each block's latest
access (Belady and the learned policy read per-access arrays by position).
The tier owns capacity; the policy only picks victims.
"""
from __future__ import annotations

from dataclasses import dataclass

from sim.policies.base import Policy


@dataclass
class TierStats:
    hits: int = 0  # blocks served from this tier to a request's prefix
    inserts: int = 0  # blocks that entered (new writes, demotions, promotions into it)
    demotions_in: int = 0  # of the inserts: blocks pushed down from the tier above
    promotions_out: int = 0  # blocks moved up to HBM on a hit or prefetch
    evictions: int = 0  # blocks chosen as victims
    taken: int = 0  # blocks removed to move elsewhere (promotion, superseded copy)
    dropped: int = 0  # victims (or demotions) that no lower tier took
    rejected: int = 0  # blocks the admission filter refused

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class TierBytes:
    """Byte figures of a tier from its block counts (shared by Tier and the engine's TierView)."""

    capacity: int
    block_bytes: int

    @property
    def stats(self) -> TierStats:
        """The tier's counters (the Python tier keeps them; the engine's view reads them from its array)."""
        raise NotImplementedError

    def __len__(self) -> int:
        """Resident blocks (each subclass counts its own store)."""
        raise NotImplementedError

    @property
    def used_bytes(self) -> int:
        return len(self) * self.block_bytes

    @property
    def capacity_bytes(self) -> int:
        return self.capacity * self.block_bytes

    @property
    def bytes_written(self) -> int:
        return self.stats.inserts * self.block_bytes

    @property
    def bytes_read(self) -> int:
        """Bytes read out of this tier to serve hits and prefetches in upper tiers."""
        return self.stats.promotions_out * self.block_bytes


class Tier(TierBytes):
    """A set of resident blocks with a capacity and an eviction policy."""

    def __init__(self, name: str, capacity_blocks: int, block_bytes: int, policy: Policy) -> None:
        if capacity_blocks < 0:
            raise ValueError(f"{name}: capacity must be >= 0")
        self.name = name
        self.capacity = capacity_blocks
        self.block_bytes = block_bytes
        self.policy = policy
        self.pos: dict[int, int] = {}  # block id -> workload position of its latest access
        self._stats = TierStats()
        # Skip calls that cannot change anything for this policy (hot path).
        self._filters = type(policy).admit is not Policy.admit
        self._announce = policy.wants_incoming

    @property
    def stats(self) -> TierStats:
        return self._stats

    def __contains__(self, key: int) -> bool:
        return key in self.pos

    def __len__(self) -> int:
        return len(self.pos)


    def touch(self, key: int, pos: int) -> None:
        self.pos[key] = pos
        self.policy.touch(key, pos)


    def admits(self, key: int, pos: int) -> bool:
        if self.capacity == 0:
            return False
        if not self._filters or self.policy.admit(key, pos):
            return True
        self.stats.rejected += 1
        return False

    def put(self, key: int, pos: int, evicted: list[tuple[int, int]]) -> None:
        """Make `key` resident (touch it if it already is); append victims to `evicted`."""
        where = self.pos
        if key in where:
            where[key] = pos
            self.policy.touch(key, pos)
            return
        cap = self.capacity
        if cap == 0:
            evicted.append((key, pos))
            return
        policy = self.policy
        if len(where) >= cap:
            if self._announce:
                policy.admit(key, pos)  # ARC's REPLACE depends on the incoming key
            victim = policy.victim
            n = 0
            while len(where) >= cap:
                v = victim()
                evicted.append((v, where.pop(v)))
                n += 1
            self.stats.evictions += n
        where[key] = pos
        policy.insert(key, pos)
        self.stats.inserts += 1

    def take(self, key: int) -> int:
        """Remove a resident block (it moves elsewhere); return its last position."""
        self.policy.remove(key)
        self.stats.taken += 1
        return self.pos.pop(key)
