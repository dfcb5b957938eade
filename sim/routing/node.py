"""The single-node routing view: a node's workers (GPUs or TP groups) and their HBM prefixes.

``RouteState`` is the ``CacheView`` of one node (also PD's prefill view,
sim.routing.pd): per-worker outstanding load, the least-loaded worker
(ties: the lowest id) and a function telling how many leading blocks of a
request a worker holds in HBM. Cache-aware routers score every worker
(a node has a handful) and keep the lowest id on equal scores, as the
compiled twin (sim.engine.routing) does.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sim.routing.base import Blocks


@dataclass
class RouteState:
    n_workers: int
    load: npt.NDArray[np.int64]  # outstanding requests per worker
    hbm_prefix: Callable[[int, Blocks], int]  # (worker, blocks) -> cached leading blocks
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def least(self) -> int:
        """The least-loaded worker (ties: the lowest id)."""
        return int(np.argmin(self.load))

    def mean(self) -> float:
        return float(self.load.mean())

    # ------------------------------------------------------------ CacheView

    def candidates(self, req: int, blocks: Blocks, racks: int) -> range | tuple[int]:
        # Without blocks nothing is cached anywhere: the least-loaded worker wins every score.
        return range(self.n_workers) if len(blocks) else (self.least(),)

    def near_prefixes(self, cands: Sequence[int], blocks: Blocks) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for w in cands:
            h = self.hbm_prefix(w, blocks)
            out.append((h, h))
        return out

    def tie_break(self, load: int, hbm: int) -> tuple[()]:
        return ()  # the first (lowest id) of equal scores

    def located_prefixes(self, cands: Sequence[int], blocks: Blocks) -> list[int]:
        return [self.hbm_prefix(w, blocks) for w in cands]

    def queue_cost(self, w: int, per_request: float) -> float:
        return per_request * float(self.load[w])  # blocks of prefill work queued ahead

    def cost_after_queue(self, queue: float, counts: int, req: int, blocks: Blocks) -> float:
        return queue + (len(blocks) - counts)  # + the blocks not in this worker's HBM
