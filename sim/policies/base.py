"""The tiny interface every eviction policy implements, and the registry.

A tier owns capacity; a policy owns only the order in which resident keys
leave. Calls from the tier:

* ``touch(key, pos)``   - a resident key was hit.
* ``insert(key, pos)``  - a key became resident; the tier guarantees
  ``len(policy) < capacity`` before calling.
* ``victim()``          - choose a resident key, forget it, return it.
* ``remove(key)``       - a resident key leaves for another reason
  (promoted to an upper tier, invalidated).
* ``admit(key, pos)``   - may this key enter this tier at all? (admission
  filter used on demotion/write-through into lower tiers; default yes).

``pos`` is the index of the access in the workload's flattened block-access
sequence (``Workload.block_ids``). Policies that need more than recency read
per-access arrays from the shared ``AccessContext`` by ``pos`` (Belady reads
``next_use[pos]``, selective_write reads ``depth[pos]``); everything is O(1)
or O(log n) per call, never a scan of the cache.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sim.registry import Registry

if TYPE_CHECKING:
    from trace.workload import Workload

NEVER = np.iinfo(np.int64).max  # next_use of a block that is not accessed again


@dataclass
class AccessContext:
    """Per-access arrays of a workload, indexed by access position ``pos``."""

    next_use: np.ndarray  # int64: pos of the next access to the same block id, NEVER if none
    depth: np.ndarray  # int64: index of the block within its request (0 = first block)
    request: np.ndarray  # int64: request index of the access
    session: np.ndarray  # int64: session id of the access's request (-1 unknown)
    arrival_ms: np.ndarray  # float64: arrival time of the access's request
    n_unique: int = 0  # distinct block ids (bounds the slots a compiled tier can ever use)

    @classmethod
    def from_workload(cls, w: Workload) -> AccessContext:
        """Build the arrays for `w` (a trace.Workload) in O(total blocks)."""
        ids = w.block_ids
        n = len(ids)
        counts = w.n_blocks()
        request = np.repeat(np.arange(len(w), dtype=np.int64), counts)
        depth = np.arange(n, dtype=np.int64) - np.repeat(w.block_offsets[:-1], counts)
        next_use = np.full(n, NEVER, dtype=np.int64)
        n_unique = 0
        if n:
            order = np.lexsort((np.arange(n), ids))  # by id, then by position
            same = ids[order[1:]] == ids[order[:-1]]
            next_use[order[:-1][same]] = order[1:][same]
            n_unique = n - int(same.sum())
        return cls(
            next_use=next_use,
            depth=depth,
            request=request,
            session=w.session_id[request],
            arrival_ms=w.arrival_ms[request],
            n_unique=n_unique,
        )


class Policy(ABC):
    """Base class: the four calls a tier makes, plus an optional admission filter."""

    name: ClassVar[str] = "base"
    # True when the simulator should run session prefetch with this policy.
    prefetch: ClassVar[bool] = False
    # True when victim() needs admit(key) first to know the incoming key (ARC).
    wants_incoming: ClassVar[bool] = False

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params: Any) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self.ctx = ctx

    @abstractmethod
    def touch(self, key: int, pos: int) -> None: ...

    @abstractmethod
    def insert(self, key: int, pos: int) -> None: ...

    @abstractmethod
    def victim(self) -> int: ...

    @abstractmethod
    def remove(self, key: int) -> None: ...

    def admit(self, key: int, pos: int) -> bool:
        return True

    @abstractmethod
    def __contains__(self, key: int) -> bool: ...

    @abstractmethod
    def __len__(self) -> int: ...


REGISTRY = Registry("policy")
register = REGISTRY.register  # class decorator: make a policy available by its ``name``


PolicyFactory = Callable[[int], Policy]
