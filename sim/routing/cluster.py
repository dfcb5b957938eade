"""The cluster routing view: pick the worker (GPU / TP group) for a request among 10,000+ GPUs.

``ClusterRouteState`` is the cluster's ``CacheView`` (sim.routing.base);
the routers themselves (blind.py, cache_aware.py) are the same classes as
on one node. No router ever loops over all workers. They read

* ``ClusterLoad``: outstanding requests per worker and per rack (arrays)
  plus bucket indexes giving the least-loaded worker, globally or within a
  rack, in O(1);
* the cache's prefix indexes (``hbm_candidates``: the workers holding the
  deepest of the request's blocks in HBM; ``eic_prefix_racks``: the racks
  whose EIC pool holds its longest prefix), walking only the request's own
  blocks (Python dicts in ``ClusterCache``, arrays in the compiled twin);
* for ``cache_load_balanced``, a ``CostModel`` that estimates TTFT on a
  candidate (queue wait + transfer of the cached prefix from where it lives
  + prefill of the rest).

Cache-aware routers score a bounded candidate set: the most recent HBM
holders of the deepest cached blocks, the least-loaded worker of the racks
whose EIC pool holds the longest prefix, and the globally least-loaded
worker. The candidates' true cached prefixes come from one
``ClusterCache.probe_many`` call (``near_many`` for the in-rack sums
prefix_aware reads); equal prefix scores go to the lighter worker, then to
the one holding more in its own HBM.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from sim.routing.base import Blocks

if TYPE_CHECKING:  # types only: the routing layer reads whichever cache it is handed
    from sim.cache.cluster import ClusterCache
    from sim.cache.layout import Layout
    from sim.engine.cluster_cache import CompiledClusterCache


class LoadIndex:
    """Workers bucketed by integer load: least-loaded in O(1), load changes in O(1).

    Ties go to the worker that reached the lowest level first (FIFO order of
    each bucket), which spreads work over idle workers instead of piling it
    on the lowest id.
    """

    def __init__(self, workers: Iterable[int]) -> None:
        self.buckets: list[OrderedDict[int, None]] = [OrderedDict.fromkeys(workers)]
        self.min = 0

    def move(self, w: int, old: int, new: int) -> None:
        b = self.buckets
        del b[old][w]
        while len(b) <= new:
            b.append(OrderedDict())
        b[new][w] = None
        if new < self.min:
            self.min = new
        elif old == self.min and not b[old]:
            m = old
            while not b[m]:
                m += 1
            self.min = m

    def least(self) -> int:
        return next(iter(self.buckets[self.min]))


class ClusterLoad:
    """Outstanding requests per worker and rack, with least-loaded indexes (per-rack ones lazy)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.n = layout.n_workers
        self.load = np.zeros(self.n, dtype=np.int64)
        self.rack_load = np.zeros(layout.topo.n_racks, dtype=np.int64)
        self.total = 0
        self._global = LoadIndex(range(self.n))
        self._racks: dict[int, LoadIndex] = {}
        self._wpr = layout.workers_per_rack

    def _change(self, w: int, d: int) -> None:
        load = self.load
        old = load.item(w)
        new = old + d
        load[w] = new
        r = w // self._wpr
        self.rack_load[r] += d
        self.total += d
        self._global.move(w, old, new)
        ri = self._racks.get(r)
        if ri is not None:
            ri.move(w, old, new)

    def inc(self, w: int) -> None:
        self._change(w, 1)

    def dec(self, w: int) -> None:
        self._change(w, -1)

    def least(self) -> int:
        return self._global.least()

    def least_in_rack(self, r: int) -> int:
        ri = self._racks.get(r)
        if ri is None:
            wpr = self.layout.workers_per_rack
            lo = r * wpr
            ri = LoadIndex([])
            for w in range(lo, lo + wpr):
                lv = int(self.load[w])
                while len(ri.buckets) <= lv:
                    ri.buckets.append(OrderedDict())
                ri.buckets[lv][w] = None
            ri.min = next(i for i, b in enumerate(ri.buckets) if b)
            self._racks[r] = ri
        return ri.least()

    def mean(self) -> float:
        return self.total / self.n


def _as_list(cands: Sequence[int]) -> list[int]:
    """The candidates as the caches take them (``candidates`` already returns a list: no copy)."""
    return cands if isinstance(cands, list) else list(cands)


class CostModel(Protocol):
    """What cache_load_balanced needs from the simulator."""

    def queue_s(self, w: int) -> float: ...

    def ttft_after_queue_s(self, queue_s: float, counts: list[int], input_tokens: int) -> float:
        """TTFT estimate on a worker whose queue wait is `queue_s`, with `counts` blocks cached per location."""
        ...


@dataclass
class ClusterRouteState:
    layout: Layout
    cache: ClusterCache | CompiledClusterCache
    loads: ClusterLoad
    input_tokens: npt.NDArray[np.int64]  # per request (for cost estimates)
    cost: CostModel | None = None
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, 0x726F7574])
        self._n_racks = self.layout.topo.n_racks

    # ------------------------------------------------------------ RouteView
    @property
    def n_workers(self) -> int:
        return self.layout.n_workers

    @property
    def load(self) -> npt.NDArray[np.int64]:
        return self.loads.load

    def least(self) -> int:
        """The least-loaded worker (ties: the one that reached that load first)."""
        return self.loads.least()

    def mean(self) -> float:
        return self.loads.mean()

    # ------------------------------------------------------------ CacheView

    hbm_scored = 4  # most recent HBM holders of the deepest cached blocks
    rack_scan = 8  # racks looked at (from a rotating start) to pick the EIC holders

    def candidates(self, req: int, blocks: Blocks, racks: int) -> list[int]:
        """HBM holders of the deepest blocks, the least-loaded worker of `racks` EIC holders, the least-loaded."""
        loads = self.loads
        # one lookup: the HBM holders, and the EIC holders ordered by rack load (a stable sort)
        out, found = self.cache.route_lookup(blocks, self.hbm_scored, req % self._n_racks, self.rack_scan,
                                             loads.rack_load)
        if found:
            for r in found[:racks]:
                w = loads.least_in_rack(r)
                if w not in out:  # out holds a handful of workers: a list scan beats a set
                    out.append(w)
        w = loads.least()
        if w not in out:
            out.append(w)
        return out

    def near_prefixes(self, cands: Sequence[int], blocks: Blocks) -> list[tuple[int, int]]:
        """(blocks in HBM, peer HBM, DRAM or EIC of the candidate's rack; of which in its HBM)."""
        return self.cache.near_many(_as_list(cands), blocks)

    def tie_break(self, load: int, hbm: int) -> tuple[int, int]:
        return (-load, hbm)

    def located_prefixes(self, cands: Sequence[int], blocks: Blocks) -> list[list[int]]:
        return self.cache.probe_many(_as_list(cands), blocks)

    def _cost(self) -> CostModel:
        if self.cost is None:
            raise RuntimeError("cache_load_balanced needs a cost model")
        return self.cost

    def queue_cost(self, w: int, per_request: float) -> float:
        return self._cost().queue_s(w)

    def cost_after_queue(self, queue: float, counts: list[int], req: int, blocks: Blocks) -> float:
        return self._cost().ttft_after_queue_s(queue, counts, int(self.input_tokens[req]))
