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

import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sim.registry import Registry

if TYPE_CHECKING:
    from trace.next_use import NextUseSteps
    from trace.workload import Workload

NEVER = np.iinfo(np.int64).max  # next_use of a block that is not accessed again


class AccessContext:
    """Per-access arrays of a workload, indexed by access position ``pos``, built on first read.

    ``next_use`` (int64: pos of the next access to the same block id, NEVER if none), ``depth`` (index
    of the block within its request), ``request``, ``session`` (-1 unknown) and ``arrival_ms`` of the
    access's request are 8 bytes per block access each: only the policies that read them (Belady,
    selective_write, the learned policy's features) pay for them. ``n_unique`` (distinct block ids,
    which bounds the slots a compiled tier can ever use) comes from the workload's unique blocks.
    Each may be assigned (hand-made contexts in tests and ``sim.policies.replay``).
    """

    def __init__(self, workload: Workload | None = None, **arrays: Any) -> None:
        self._w = workload
        self._depth_given = "depth" in arrays
        self._next_use_given = "next_use" in arrays
        self._on_release: list[weakref.WeakMethod[Callable[[int], None]]] = []
        for k, v in arrays.items():
            setattr(self, k, v)

    def on_release(self, method: Callable[[int], None]) -> None:
        """Call `method` (a bound method, held weakly) on each accesses_done: a policy's helper that keeps
        something per access position (the learned policy's scorer)."""
        self._on_release.append(weakref.WeakMethod(method))

    def __getstate__(self) -> dict[str, Any]:
        # the listeners belong to this process (weak references cannot be pickled): a copy starts with none
        return {**self.__dict__, "_on_release": []}

    def accesses_done(self, pos: int) -> None:
        """A replay that runs requests one after the other says, after each: from now on no access position
        below `pos` is read, except a resident's own last one as a victim moves to another tier."""
        for ref in self._on_release:
            fn = ref()
            if fn is not None:
                fn(pos)

    def set_depth(self, depth: np.ndarray) -> None:
        """Replace the depths the workload's layout gives (hand-made contexts)."""
        self.depth = depth
        self._depth_given = True

    def depth_table(self) -> tuple[np.ndarray, bool]:
        """What the compiled engine reads depths from: (each request's first access position, True), 8
        bytes a request, or (``depth``, False) when it was given by hand."""
        if self._depth_given or self._w is None:
            return np.asarray(self.depth, dtype=np.int64), False
        return self.request_starts(), True

    def request_starts(self) -> np.ndarray:
        """Each request's first access position (8 bytes a request)."""
        assert self._w is not None
        return np.ascontiguousarray(self._w.block_offsets[:-1], dtype=np.int64)

    def next_use_steps(self) -> NextUseSteps | None:
        """Belady's next uses as steps (``trace.next_use``: a few words a request) when the workload is
        distinct and they were not given by hand; None: read ``next_use`` (8 bytes a block access)."""
        from trace.next_use import next_use_steps

        if self._next_use_given or self._w is None:
            return None
        pb = self._w.prefix_blocks()
        return next_use_steps(pb) if pb.distinct else None

    @classmethod
    def from_workload(cls, w: Workload) -> AccessContext:
        """A context of `w` (a trace.Workload); each array is built in O(total blocks) when first read."""
        return cls(w)

    @cached_property
    def n_unique(self) -> int:
        assert self._w is not None
        return self._w.prefix_blocks().n_unique() if self._w.total_blocks else 0

    @cached_property
    def request(self) -> np.ndarray:
        assert self._w is not None
        return np.repeat(np.arange(len(self._w), dtype=np.int64), self._w.n_blocks())

    @cached_property
    def depth(self) -> np.ndarray:
        assert self._w is not None
        w = self._w
        return np.asarray(np.arange(w.total_blocks, dtype=np.int64) - np.repeat(w.block_offsets[:-1], w.n_blocks()))

    @cached_property
    def session(self) -> np.ndarray:
        assert self._w is not None
        return np.asarray(self._w.session_id[self.request])

    @cached_property
    def arrival_ms(self) -> np.ndarray:
        assert self._w is not None
        return np.asarray(self._w.arrival_ms[self.request])

    @cached_property
    def next_use(self) -> np.ndarray:
        assert self._w is not None
        ids = self._w.block_ids
        n = len(ids)
        next_use = np.full(n, NEVER, dtype=np.int64)
        if n:
            order = np.lexsort((np.arange(n), ids))  # by id, then by position
            same = ids[order[1:]] == ids[order[:-1]]
            next_use[order[:-1][same]] = order[1:][same]
        return next_use

    @cached_property
    def key_bound(self) -> int:
        """An upper bound of ``n_unique`` known without sorting the ids (the blocks the trace introduces);
        what the compiled tiers size their slots by, so that no per-id sort runs before a replay."""
        if self._w is None:
            return self.n_unique
        return int(self._w.prefix_blocks().own_off[-1])

    def n_accesses(self) -> int:
        """Block accesses of the workload (positions 0..n-1), without building any per-access array."""
        if self._w is None:
            return len(self.next_use)
        return int(self._w.total_blocks)

    def max_blocks(self) -> int:
        """The most blocks one request has (the engine's scratch width)."""
        assert self._w is not None
        return int(self._w.n_blocks().max()) if len(self._w) else 0


class Policy(ABC):
    """Base class: the four calls a tier makes, plus an optional admission filter."""

    name: ClassVar[str] = "base"
    # True when the simulator should run session prefetch with this policy.
    prefetch: ClassVar[bool] = False
    # True when victim() needs admit(key) first to know the incoming key (ARC).
    wants_incoming: ClassVar[bool] = False
    # True when the policy reads a key's position lazily, so a caller that may insert a key with a position long
    # after it was set (a radix tree's inner node becoming a leaf) says so at once (keep_position: learned)
    keeps_positions: ClassVar[bool] = False

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

    def keep_position(self, key: int, pos: int) -> None:
        """`key` may be inserted later at `pos`, after the replay released that position
        (AccessContext.accesses_done): keep what the insert will read (only if keeps_positions)."""
        return None  # a policy that reads a position only as it is given keeps nothing

    @abstractmethod
    def __contains__(self, key: int) -> bool: ...

    @abstractmethod
    def __len__(self) -> int: ...


REGISTRY = Registry("policy")
register = REGISTRY.register  # class decorator: make a policy available by its ``name``


PolicyFactory = Callable[[int], Policy]
