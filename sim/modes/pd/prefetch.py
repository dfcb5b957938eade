"""Session prefetch in PD mode: the prefill replicas' radix trees and lower tiers as ``sim.timing.prefetch`` sees them.

The prefetcher (``SessionPrefetcher``) is the one single and cluster modes
use; this module is its ``PrefetchHost`` on a PD (or colocated) deployment:

* **where**: the prefill replica (colocated: the replica) that served the
  session's last turn - the one the cache-aware prefill router sends the
  next turn back to while it holds the longest prefix;
* **what**: the part of the context that continues the replica's radix-tree
  prefix from its node's DRAM or its rack's EIC pool
  (``LowerTiers.find``);
* **how**: ``LowerTiers.prefetch`` - the same paths as a demand load, on
  the links' idle-only class (``Network.prefetch``): demand loads, KV
  transfers and write-backs never wait behind it. When the bytes are in,
  the blocks join the tree unreferenced (evictable like any cached block);
  when the tree cannot make room without evicting blocks that running
  requests hold, nothing is inserted. The lower tiers keep their copy
  (PD's tiers are inclusive) and count a promotion, not a hit.
"""
from __future__ import annotations

from typing import Any

import simpy

from sim.timing.node_io import all_done


class PDPrefetchHost:
    """``PrefetchHost`` over a deployment's prefill replicas (index = prefill replica)."""

    def __init__(self, dep: Any) -> None:  # a sim.modes.pd.simulator deployment (not imported: no cycle)
        self.dep = dep
        self.hbm_blocks = dep.setup.tree_blocks
        self.bb = dep.lower.bb

    def split(self, p: int, blocks) -> tuple[int, int]:
        m = self.dep.trees[p].match(blocks)
        nd, ne = self.dep.lower.find(self.dep.prefill_gpu[p], blocks, m)
        return m, nd + ne

    def idle_s(self, p: int, n_blocks: int) -> float:
        dep = self.dep
        g, topo = dep.prefill_gpu[p], dep.topo
        return dep.net.idle_s(topo.dram(topo.node_of(g)), topo.gpu(g), n_blocks * self.bb, dep.lanes)

    def move(self, p: int, blocks, n_hbm: int, n_lower: int) -> simpy.Event:
        dep = self.dep
        g = dep.prefill_gpu[p]
        nd, ne = dep.lower.find(g, blocks, n_hbm)
        d = min(nd, n_lower)  # the lookup order puts the DRAM part first
        evs = dep.lower.prefetch(g, dep.lanes, d, min(ne, n_lower - d))
        return all_done(dep.env, evs) or dep.env.timeout(0)

    def promote(self, p: int, blocks, pos0: int, n: int) -> list[int]:
        dep = self.dep
        tree, g = dep.trees[p], dep.prefill_gpu[p]
        m = tree.match(blocks)
        if m >= n:
            return []
        nd, ne = dep.lower.find(g, blocks, m)  # what is still cached below since the move started
        k = min(n - m, nd + ne)
        if k <= 0 or not tree.fits(blocks, m, k):
            return []
        tree.lock(blocks, m, pos0, hit=False)  # hold the prefix while the new blocks hang under it
        tree.reserve(k)
        tree.insert(blocks, m, m + k, pos0)
        tree.unlock(blocks, m + k)
        dep.lower.promoted(g, blocks, m, k, pos0)
        return [int(b) for b in blocks[m:m + k]]

    def in_hbm(self, p: int, block: int) -> bool:
        return block in self.dep.trees[p]


__all__ = ["PDPrefetchHost"]
