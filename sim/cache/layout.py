"""Where a cluster's blocks can be found, and which worker sits where.

``LOC_NAMES`` are the locations of a worker's lookup, in lookup order (the
hit counters and reports are indexed by them); ``Layout`` is the worker <->
GPU / node / rack arithmetic; ``Moves`` is how cache operations report the
transfers they imply.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sim.timing.topology import Topology

LOC_NAMES = ("hbm", "peer_hbm", "dram", "local_eic", "remote_eic", "ssd")
HBM, PEER, DRAM, EIC, REIC, SSD = range(6)

Moves = dict  # {(src endpoint, dst endpoint): blocks}


def add_move(moves: Moves, src, dst, n: int = 1) -> None:
    k = (src, dst)
    moves[k] = moves.get(k, 0) + n


@dataclass(frozen=True)
class Layout:
    """Worker <-> GPU / node / rack arithmetic (workers never straddle a node)."""

    topo: Topology
    gpus_per_worker: int

    def __post_init__(self) -> None:
        t = self.topo
        object.__setattr__(self, "workers_per_node", t.gpus_per_node // self.gpus_per_worker)
        object.__setattr__(self, "workers_per_rack", self.workers_per_node * t.nodes_per_rack)
        object.__setattr__(self, "n_workers", self.workers_per_node * t.n_nodes)

    workers_per_node: int = field(init=False, default=0)
    workers_per_rack: int = field(init=False, default=0)
    n_workers: int = field(init=False, default=0)

    def node(self, w: int) -> int:
        return w // self.workers_per_node

    def rack(self, w: int) -> int:
        return w // self.workers_per_rack

    def gpu(self, w: int) -> int:
        """The worker's lead GPU (its network endpoint)."""
        wpn = self.workers_per_node
        return (w // wpn) * self.topo.gpus_per_node + (w % wpn) * self.gpus_per_worker
