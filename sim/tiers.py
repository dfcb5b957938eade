"""One cache tier: a capacity in blocks, an eviction policy, and counters.

A tier stores block ids and the workload position of each block's latest
access (Belady and the learned policy read per-access arrays by position).
The tier owns capacity; the policy only picks victims.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    bytes_read: int = 0  # bytes read out of this tier (loads to HBM)
    bytes_written: int = 0  # bytes written into this tier
    occupancy: list[tuple[float, int]] = field(default_factory=list)  # (sim time s, blocks)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "occupancy"}
        return d


class Tier:
    """A set of resident blocks with a capacity and an eviction policy."""

    def __init__(self, name: str, capacity_blocks: int, block_bytes: int, policy: Policy) -> None:
        if capacity_blocks < 0:
            raise ValueError(f"{name}: capacity must be >= 0")
        self.name = name
        self.capacity = capacity_blocks
        self.block_bytes = block_bytes
        self.policy = policy
        self.pos: dict[int, int] = {}  # block id -> workload position of its latest access
        self.stats = TierStats()

    def __contains__(self, key: int) -> bool:
        return key in self.pos

    def __len__(self) -> int:
        return len(self.pos)

    @property
    def used_bytes(self) -> int:
        return len(self.pos) * self.block_bytes

    @property
    def capacity_bytes(self) -> int:
        return self.capacity * self.block_bytes

    def touch(self, key: int, pos: int) -> None:
        self.pos[key] = pos
        self.policy.touch(key, pos)

    def admits(self, key: int, pos: int) -> bool:
        if self.capacity == 0:
            return False
        if self.policy.admit(key, pos):
            return True
        self.stats.rejected += 1
        return False

    def put(self, key: int, pos: int, evicted: list[tuple[int, int]]) -> None:
        """Make `key` resident (touch it if it already is); append victims to `evicted`."""
        if key in self.pos:
            self.touch(key, pos)
            return
        if self.capacity == 0:
            evicted.append((key, pos))
            return
        policy, where = self.policy, self.pos
        while len(where) >= self.capacity:
            v = policy.victim()
            evicted.append((v, where.pop(v)))
            self.stats.evictions += 1
        where[key] = pos
        policy.insert(key, pos)
        self.stats.inserts += 1
        self.stats.bytes_written += self.block_bytes

    def take(self, key: int) -> int:
        """Remove a resident block (it moves elsewhere); return its last position."""
        self.policy.remove(key)
        self.stats.taken += 1
        return self.pos.pop(key)

    def sample(self, t: float) -> None:
        self.stats.occupancy.append((t, len(self.pos)))
