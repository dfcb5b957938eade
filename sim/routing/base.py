"""The router interface: what a router reads (``RouteView``) and what it is (``Router``).

A router picks a target (a node's worker, a cluster GPU, a PD prefill or
decode replica) for one request from a read-only view of the targets: how
many there are, their outstanding load, the least-loaded one, the mean
load, and a random generator. Cache-aware routers also ask the view for
candidates and for the prefixes the candidates hold (``CacheView``); each
scope's view answers in its own terms (sim.routing.node, .cluster, .pd), so
every router is written once and serves every scope whose view it can read.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

SCOPES = ("node", "cluster", "prefill", "decode")

# A request's block ids as the scope's cache reads them: a list (Python caches) or an int64 array (compiled ones).
Blocks: TypeAlias = Any


class RouteView(Protocol):
    """The read-only load view every scope offers."""

    @property
    def n_workers(self) -> int: ...

    @property
    def load(self) -> npt.NDArray[np.int64]:
        """Outstanding work per target (int64)."""
        ...

    rng: np.random.Generator

    def least(self) -> int:
        """The least-loaded target (ties as the scope defines them)."""
        ...

    def mean(self) -> float: ...


class CacheView(RouteView, Protocol):
    """What the cache-aware routers (prefix_aware, cache_load_balanced) read on top of the loads."""

    def candidates(self, req: int, blocks: Blocks, racks: int) -> Sequence[int]:
        """The targets worth scoring (`racks`: how many racks holding the prefix to draw from, where it matters)."""
        ...

    def near_prefixes(self, cands: Sequence[int], blocks: Blocks) -> list[tuple[int, int]]:
        """Per candidate: (leading blocks cached close to it, of which in its own HBM)."""
        ...

    def tie_break(self, load: int, hbm: int) -> tuple[int, ...]:
        """What decides between equal prefix scores (appended to the score key)."""
        ...

    def located_prefixes(self, cands: Sequence[int], blocks: Blocks) -> Sequence[Any]:
        """Per candidate: its cached leading blocks by location (what ``cost_after_queue`` reads)."""
        ...

    def queue_cost(self, w: int, per_request: float) -> float:
        """The queue ahead of a request on `w`, in the view's cost unit."""
        ...

    def cost_after_queue(self, queue: float, counts: Any, req: int, blocks: Blocks) -> float:
        """Estimated time to first token on a target with that queue and those cached blocks (never below queue)."""
        ...


V = TypeVar("V", bound=RouteView)


class Router(Generic[V]):
    """A router over a view (``self.s``, of the kind ``V`` it reads); subclasses set ``name`` and ``choose``.

    ``scopes`` says where the router may be used; the default suits a router
    that reads only ``RouteView``. ``compiled_code`` (node scope only) is the
    router's number in the compiled twin (sim.engine.routing); routers
    without one run in Python on every engine.
    """

    name: ClassVar[str] = "base"
    scopes: ClassVar[frozenset[str]] = frozenset({"node", "cluster", "prefill"})

    def __init__(self, view: V, **params: Any) -> None:
        self.s = view

    def choose(self, req: int, blocks: Blocks, session: int) -> int:  # pragma: no cover - interface
        raise NotImplementedError
