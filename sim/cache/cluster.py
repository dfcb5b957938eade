"""The KV-cache hierarchy of a cluster: HBM per worker, DRAM per node, an EIC pool per rack, remote SSD.

Tiers are ``sim.cache.tier.Tier`` objects with the configured eviction policy,
created lazily on first use, so 10,000 idle GPUs cost nothing. A *worker*
is one model replica (tp x pp GPUs of one node); its lead GPU is its network
endpoint.

Lookup order for a request on worker w (node n, rack r), block by block,
stopping at the first block found nowhere (strict prefix):

    w's HBM -> HBM of the other workers of node n (NVLink) -> n's host DRAM
    -> r's EIC pool -> other racks' EIC pools (``cross_rack_lookup``)
    -> remote SSD -> (miss: recompute)

Moves:

* a hit outside w's HBM is copied into w's HBM (peer HBM, EIC pools and the
  remote SSD keep their copy: they are shared); a DRAM hit *moves* up under
  write-back (DRAM and HBM of a node stay exclusive, as on one node) and is
  copied under write-through.
* an HBM victim goes to the node's DRAM (a node-local copy) and, with
  ``evict_to_eic`` (default), is also written to the rack's EIC pool at
  once, where every GPU of the rack can find it. DRAM victims are then
  dropped: the pool got them already (if it has evicted them since, it
  judged them colder than what it keeps). Without ``evict_to_eic`` the
  chain is strict: HBM -> DRAM -> EIC. An EIC victim goes to the remote
  SSD, an SSD victim is dropped. Without an EIC pool DRAM victims go to the
  remote SSD. These victim rules are declared in ``sim.cache.chain``
  (``TierChain.cluster``) and carried out by ``sim.cache.cluster_lower``.
* new blocks computed by prefill go to w's HBM (write-through also copies
  them to DRAM).

A block may have copies in several places; a request counts it once, at the
first location in lookup order.

Indexes kept for routers (never scans over workers), queried through
``hbm_candidates`` and ``eic_prefix_racks``:

* ``hbm_holders``: block id -> {worker: None} (insertion-ordered, most recent last)
* ``eic_racks``:   block id -> bitmask of racks whose EIC pool holds it

Every operation returns the transfers it implies as ``{(src, dst): blocks}``
with Topology endpoint names; the simulator turns them into network time.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sim.cache.chain import TierChain
from sim.cache.cluster_lower import count_move, demote, dram_spill
from sim.cache.layout import Layout, Moves, add_move
from sim.cache.tier import Tier
from sim.policies.base import Policy
from sim.timing.topology import Endpoint

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_EMPTY: dict = {}


class ClusterCache:
    """Lazy tiers + the lookup/fetch/store/demote rules above + router indexes."""

    def __init__(
        self,
        layout: Layout,
        *,
        hbm_blocks: int,
        dram_blocks: int,
        eic_blocks: int,
        ssd_blocks: int,
        block_bytes: int,
        policy: Callable[[int], Policy],
        evict_to_eic: bool = True,
        cross_rack_lookup: bool = False,
        write_through: bool = False,
        admission_filter: bool = True,
    ) -> None:
        self.layout = layout
        self.topo = layout.topo
        self.hbm_blocks = hbm_blocks
        self.dram_blocks = dram_blocks
        self.eic_blocks = eic_blocks if self.topo.has_eic else 0
        self.ssd_blocks = ssd_blocks if self.topo.has_remote_ssd else 0
        self.block_bytes = block_bytes
        self._policy = policy
        self.evict_to_eic = evict_to_eic
        self.cross_rack = cross_rack_lookup
        self.write_through = write_through
        self.hbm: dict[int, Tier] = {}
        self.dram: dict[int, Tier] = {}
        self.eic: dict[int, Tier] = {}
        self.ssd: Tier | None = Tier("ssd", self.ssd_blocks, block_bytes, policy(self.ssd_blocks)) \
            if self.ssd_blocks > 0 else None
        self.hbm_holders: dict[int, dict[int, None]] = {}
        self.eic_racks: dict[int, int] = {}
        self.hits = [0] * 6  # blocks served per location
        self.moved: dict[str, int] = {}  # blocks per move kind (fetch_*, demote_*, spill_*)
        wpn = layout.workers_per_node
        self._gpu_ep: dict[int, Endpoint] = {}  # worker -> endpoint, filled lazily
        self._wpn = wpn
        # Every tier of a run has the same policy class (Unbounded stands in only for filter-free
        # ones): without an admission filter a tier with capacity admits everything, skip the call.
        self.admission_filter = admission_filter
        self.chain = TierChain.cluster(dram=dram_blocks > 0, eic=self.eic_blocks > 0, ssd=self.ssd_blocks > 0,
                                       evict_to_eic=evict_to_eic)

    # ------------------------------------------------------------ lazy tiers
    def _lazy(self, store: dict, key: int, name: str, blocks: int) -> Tier | None:
        """The tier `store[key]`, created on first use; None when the tier has no capacity."""
        if blocks <= 0:
            return None
        t = store.get(key)
        if t is None:
            t = store[key] = Tier(name, blocks, self.block_bytes, self._policy(blocks))
        return t

    def hbm_tier(self, w: int) -> Tier:
        t = self._lazy(self.hbm, w, "hbm", self.hbm_blocks)
        assert t is not None, "HBM has capacity (NodeSetup rejects a budget under one block)"
        return t

    def dram_tier(self, node: int) -> Tier | None:
        return self._lazy(self.dram, node, "dram", self.dram_blocks)

    def eic_tier(self, rack: int) -> Tier | None:
        return self._lazy(self.eic, rack, "eic", self.eic_blocks)

    def gpu_ep(self, w: int) -> Endpoint:
        ep = self._gpu_ep.get(w)
        if ep is None:
            ep = self._gpu_ep[w] = self.topo.gpu(self.layout.gpu(w))
        return ep

    def _peers(self, w: int) -> list[tuple[int, Tier]]:
        base = w - w % self._wpn
        hbm = self.hbm
        return [(p, hbm[p]) for p in range(base, base + self._wpn) if p != w and p in hbm]

    # ------------------------------------------------------------ read-only
    def probe(self, w: int, blocks: list[int], in_rack: bool = False) -> list[int]:
        """Blocks of the cached prefix per location (LOC_NAMES order) for worker w; nothing moves.

        ``in_rack=True`` stops at the first block not cached inside w's rack.
        """
        lay = self.layout
        h = self.hbm.get(w)
        hpos = h.pos if h is not None else _EMPTY
        peers = [t.pos for _p, t in self._peers(w)]
        d = self.dram.get(lay.node(w))
        dpos = d.pos if d is not None else _EMPTY
        e = self.eic.get(lay.rack(w))
        epos = e.pos if e is not None else _EMPTY
        racks = self.eic_racks if (self.cross_rack and not in_rack) else _EMPTY
        spos = self.ssd.pos if (self.ssd is not None and not in_rack) else _EMPTY
        n0 = n1 = n2 = n3 = n4 = n5 = 0
        for b in blocks:
            if b in hpos:
                n0 += 1
                continue
            hit = False
            for p in peers:
                if b in p:
                    hit = True
                    break
            if hit:
                n1 += 1
            elif b in dpos:
                n2 += 1
            elif b in epos:
                n3 += 1
            elif b in racks:
                n4 += 1
            elif b in spos:
                n5 += 1
            else:
                break
        return [n0, n1, n2, n3, n4, n5]

    def probe_many(self, ws: list[int], blocks: list[int], in_rack: bool = False) -> list[list[int]]:
        """``probe`` for each of `ws`."""
        return [self.probe(w, blocks, in_rack) for w in ws]

    def near_many(self, ws: list[int], blocks: list[int]) -> list[tuple[int, int]]:
        """(blocks cached in w's rack: HBM + peer HBM + DRAM + EIC of ``probe(in_rack=True)``, of which in
        w's HBM) for each of `ws`."""
        return [(c[0] + c[1] + c[2] + c[3], c[0]) for c in self.probe_many(ws, blocks, in_rack=True)]

    def hbm_prefix(self, w: int, blocks: list[int]) -> int:
        h = self.hbm.get(w)
        if h is None:
            return 0
        pos = h.pos
        n = 0
        for b in blocks:
            if b not in pos:
                break
            n += 1
        return n

    def hbm_candidates(self, blocks: list[int], k: int) -> list[int]:
        """Up to k workers holding the deepest of `blocks` in HBM, most recent holder first."""
        out: list[int] = []
        holders = self.hbm_holders
        if not holders:
            return out
        seen: set[int] = set()
        for j in range(len(blocks) - 1, -1, -1):
            hd = holders.get(blocks[j])
            if hd:
                for w in reversed(hd):
                    if w not in seen:
                        seen.add(w)
                        out.append(w)
                        if len(out) >= k:
                            return out
        return out

    def eic_prefix_racks(self, blocks: list[int], off: int, scan: int) -> list[int]:
        """Racks whose EIC pool holds the longest prefix of `blocks` (the last non-empty
        intersection), in rack order starting at `off` and wrapping round, at most `scan`."""
        racks = self.eic_racks
        found: list[int] = []
        if not racks or not len(blocks):
            return found
        m = racks.get(blocks[0], 0)
        for b in blocks[1:]:
            if not m:
                break
            m2 = m & racks.get(b, 0)
            if not m2:
                break
            m = m2
        for part, base in ((m >> off, off), (m & ((1 << off) - 1), 0)):
            while part and len(found) < scan:
                low = part & -part
                found.append(base + low.bit_length() - 1)
                part ^= low
        return found

    def route_lookup(self, blocks: list[int], k: int, off: int, scan: int,
                     rack_load: Sequence[int] | npt.NDArray[np.int64]) -> tuple[list[int], list[int]]:
        """(``hbm_candidates(blocks, k)``, ``eic_prefix_racks(blocks, off, scan)`` stably sorted by
        `rack_load`): a cluster router's two lookups (one compiled call in the compiled twin)."""
        found = self.eic_prefix_racks(blocks, off, scan)
        found.sort(key=rack_load.__getitem__)
        return self.hbm_candidates(blocks, k), found

    # ------------------------------------------------------------ moves
    def acquire(self, w: int, blocks: list[int], pos0: int) -> tuple[list[int], Moves, Moves]:
        """Serve the cached prefix of `blocks` into w's HBM.

        Returns (blocks per location, critical transfers {(src, dst): blocks}
        the request waits for, background transfers it does not).
        """
        lay = self.layout
        node, rack = lay.node(w), lay.rack(w)
        hbm = self.hbm_tier(w)
        hpos = hbm.pos
        peers = self._peers(w)
        dram = self.dram.get(node)
        eic = self.eic.get(rack)
        racks = self.eic_racks if self.cross_rack else _EMPTY
        ssd = self.ssd
        me = self.gpu_ep(w)
        topo = self.topo
        crit_src: dict = {}
        crit = crit_src
        holders = self.hbm_holders
        bg: Moves = {}
        ev: list[tuple[int, int]] = []
        c = [0, 0, 0, 0, 0, 0]
        for j, b in enumerate(blocks):
            pos = pos0 + j
            if b in hpos:
                hbm.touch(b, pos)
                c[0] += 1
                continue
            src = None
            for p, pt in peers:
                if b in pt.pos:
                    pt.touch(b, pos)
                    src = self.gpu_ep(p)
                    c[1] += 1
                    break
            if src is None:
                if dram is not None and b in dram.pos:
                    tier, src, loc = dram, topo.dram(node), 2
                    if self.write_through:
                        dram.touch(b, pos)
                    else:
                        dram.take(b)
                elif eic is not None and b in eic.pos:
                    tier, src, loc = eic, topo.eic(rack), 3
                    eic.touch(b, pos)
                elif b in racks:
                    m = racks[b]
                    r2 = (m & -m).bit_length() - 1
                    tier, src, loc = self.eic[r2], topo.eic(r2), 4
                    tier.touch(b, pos)
                elif ssd is not None and b in ssd.pos:
                    tier, src, loc = ssd, topo.ssd(), 5
                    ssd.touch(b, pos)
                else:
                    break
                tier.stats.hits += 1
                tier.stats.promotions_out += 1
                c[loc] += 1
            crit[src] = crit.get(src, 0) + 1
            hbm.put(b, pos, ev)
            if b in hpos:
                hd = holders.get(b)
                if hd is None:
                    holders[b] = {w: None}
                else:
                    hd[w] = None
            if ev:
                # Demote at once: a victim that is a later block of this very prefix
                # is then still found in DRAM/EIC by this walk.
                demote(self, w, ev, bg)
                ev.clear()
        hbm.stats.hits += c[0]
        hits = self.hits
        for k in range(6):
            hits[k] += c[k]
        return c, {(src, me): n for src, n in crit_src.items()}, bg

    def prefetch(self, w: int, blocks: list[int], pos0: int) -> tuple[list[int], Moves, Moves]:
        """``acquire`` without counting hits (a session prefetch, ``sim.modes.cluster_prefetch``): the
        blocks move the same way; the hit counters it raised are taken back (promotions stay)."""
        c, crit, bg = self.acquire(w, blocks, pos0)
        self.hbm[w].stats.hits -= c[0]
        for k in range(6):
            self.hits[k] -= c[k]
        for (src, _dst), n in crit.items():
            kind = src[0]
            tier = self.dram.get(src[1]) if kind == "dram" else self.eic.get(src[1]) if kind == "eic" \
                else self.ssd if kind == "ssd" else None  # a peer's HBM counts no tier hit
            if tier is not None:
                tier.stats.hits -= n
        return c, crit, bg

    def hbm_has(self, w: int, blocks: list[int]) -> list[bool]:
        """Which of `blocks` are in w's HBM."""
        h = self.hbm.get(w)
        pos = h.pos if h is not None else _EMPTY
        return [b in pos for b in blocks]

    def store(self, w: int, blocks: list[int], pos0: int, start: int) -> Moves:
        """Write blocks[start:] (computed by prefill) into w's HBM; returns background transfers."""
        hbm = self.hbm_tier(w)
        node = self.layout.node(w)
        dram = self.dram_tier(node) if self.write_through else self.dram.get(node)
        bg: Moves = {}
        ev: list[tuple[int, int]] = []
        me = self.gpu_ep(w)
        hpos = hbm.pos
        holders = self.hbm_holders
        wt = self.write_through
        for j in range(start, len(blocks)):
            b = blocks[j]
            pos = pos0 + j
            if b in hpos:
                hbm.touch(b, pos)
                continue
            if dram is not None:
                if not wt:
                    if b in dram.pos:  # keep HBM/DRAM of a node exclusive: the DRAM copy is superseded
                        dram.take(b)
                elif b not in dram.pos and dram.admits(b, pos):
                    spill: list[tuple[int, int]] = []
                    dram.put(b, pos, spill)
                    add_move(bg, me, self.topo.dram(node))
                    count_move(self, "write_through_dram")
                    if spill:
                        dram_spill(self, node, spill, bg)
            hbm.put(b, pos, ev)
            if b in hpos:
                hd = holders.get(b)
                if hd is None:
                    holders[b] = {w: None}
                else:
                    hd[w] = None
        if ev:  # the blocks just written are distinct, so victims can wait until the end
            demote(self, w, ev, bg)
        return bg

    # ------------------------------------------------------------ report
    def tier_groups(self) -> dict[str, list[Tier]]:
        return {
            "hbm": list(self.hbm.values()),
            "dram": list(self.dram.values()),
            "eic": list(self.eic.values()),
            "ssd": [self.ssd] if self.ssd is not None else [],
        }

    def capacity_blocks(self) -> dict[str, int]:
        """Capacity of the whole cluster per tier kind (instantiated or not)."""
        t, lay = self.topo, self.layout
        return {
            "hbm": self.hbm_blocks * lay.n_workers,
            "dram": self.dram_blocks * t.n_nodes,
            "eic": self.eic_blocks * t.n_racks,
            "ssd": self.ssd_blocks,
        }
