"""Session prefetch in cluster mode: the cluster's cache and network as ``sim.timing.prefetch`` sees them.

The prefetcher (``SessionPrefetcher``) is the one single mode uses; this
module is its ``PrefetchHost`` on a cluster:

* **where**: the worker (GPU replica) that served the session's last turn -
  the one the session-affine and prefix-aware routers send the next turn to;
* **what**: the part of the context that continues the worker's HBM prefix
  from a peer GPU's HBM, the node's DRAM, the rack's EIC pool, another
  rack's pool or the remote SSD (``ClusterCache.probe``);
* **how**: one ``Network.prefetch`` per location over the path from that
  tier to the GPU, on the links' idle-only class (demand loads, KV moves and
  write-backs never wait behind it). When the bytes are in, the blocks enter
  HBM the way a demand hit would move them (``ClusterCache.prefetch``:
  ``acquire`` without the hit counters); victims are demoted in the
  background.

As in ``sim.modes.cluster_io`` the probe gives counts per location, not
positions, so the transfer is split by location in lookup order; a peer's
part is sent from the node's first other worker and another rack's part
from the next rack (the path lengths are the same; only which NVLink or
spine link carries it can differ).

``run_instant``: the hit-rate-only replay's prefetch (no links: the move is
at once, ``InstantPrefetch``).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import simpy

from sim.cache.layout import DRAM, EIC, PEER, REIC, SSD, Moves
from sim.timing.network import Network
from sim.timing.node_io import all_done


class ClusterPrefetchHost:
    """``PrefetchHost`` over a ``ClusterCache`` (or its compiled twin) and the cluster's ``Network``."""

    def __init__(self, env: simpy.Environment, cache, net: Network, *, lanes: int,
                 background: Callable[[Moves], None], count_read: Callable[[Moves], None]) -> None:
        self.env, self.cache, self.net, self.lanes = env, cache, net, lanes
        self.layout = cache.layout
        self.topo = cache.topo
        self.hbm_blocks = cache.hbm_blocks
        self.bb = cache.block_bytes
        self.background = background  # victims of a promotion, as any demotion
        self.count_read = count_read  # tier_io read bytes of the prefetch
        # the first tier an HBM victim lands in: the move time the horizon is compared with
        self._first_lower = "dram" if cache.dram_blocks > 0 else "eic" if cache.eic_blocks > 0 else "ssd"

    def _src(self, loc: int, wk: int) -> tuple:
        lay, topo = self.layout, self.topo
        if loc == PEER:
            base = wk - wk % lay.workers_per_node
            return self.cache.gpu_ep(base if base != wk else base + 1)
        if loc == DRAM:
            return topo.dram(lay.node(wk))
        if loc == EIC:
            return topo.eic(lay.rack(wk))
        if loc == REIC:
            return topo.eic((lay.rack(wk) + 1) % topo.n_racks)
        assert loc == SSD
        return topo.ssd()

    def split(self, wk: int, blocks) -> tuple[int, int]:
        c = self.cache.probe(wk, blocks)
        return c[0], sum(c[1:])

    def idle_s(self, wk: int, n_blocks: int) -> float:
        lay, topo = self.layout, self.topo
        src = {"dram": topo.dram(lay.node(wk)), "eic": topo.eic(lay.rack(wk)), "ssd": topo.ssd()}[self._first_lower]
        return self.net.idle_s(src, self.cache.gpu_ep(wk), n_blocks * self.bb, self.lanes)

    def move(self, wk: int, blocks, n_hbm: int, n_lower: int) -> simpy.Event:
        c = self.cache.probe(wk, blocks)
        me = self.cache.gpu_ep(wk)
        left = n_lower
        evs = []
        moves: Moves = {}
        for loc in (PEER, DRAM, EIC, REIC, SSD):  # lookup order: the prefix's parts come in this order
            n = min(c[loc], left)
            if n <= 0:
                continue
            left -= n
            src = self._src(loc, wk)
            moves[(src, me)] = moves.get((src, me), 0) + n
            evs.append(self.net.prefetch(self.env, src, me, n * self.bb, self.lanes))
        self.count_read(moves)
        return all_done(self.env, evs) or self.env.timeout(0)

    def promote(self, wk: int, blocks, pos0: int, n: int) -> list[int]:
        head = blocks[:n]
        before = self.cache.hbm_has(wk, head)
        _c, _crit, bg = self.cache.prefetch(wk, head, pos0)
        self.background(bg)
        after = self.cache.hbm_has(wk, head)
        return [int(b) for b, x, y in zip(head, before, after, strict=True) if y and not x]

    def in_hbm(self, wk: int, block: int) -> bool:
        blocks = np.array([block], dtype=np.int64) if hasattr(self.cache, "T") else [block]
        return self.cache.hbm_has(wk, blocks)[0]


def prefetch_instant(cache, wk: int, blocks, pos0: int, account: Callable[[Moves], None]) -> int:
    """Hit-rate-only: move the cached context of `blocks` into wk's HBM at once; blocks moved."""
    c, crit, bg = cache.prefetch(wk, blocks, pos0)
    account(crit)
    account(bg)
    return sum(c[1:])


__all__ = ["ClusterPrefetchHost", "prefetch_instant"]
