"""``ClusterCache``'s interface on the compiled kernels, for LRU and FIFO.

State layout: ``sim.engine.cluster_state``; the rules: ``sim.engine.cluster_kernels``;
the routers' queries: ``sim.engine.cluster_queries``.

Same lookup/fetch/store/demote rules, counters, lazily created tiers and
transfers as the Python ``sim.cache.cluster.ClusterCache`` (the reference,
used for every other policy and with ``engine="python"``). Blocks are dense
ids 0..n_blocks-1 (``sim.modes.cluster`` maps the trace's ids
once). The slot pool and its index grow on demand, so memory follows what
the run keeps resident, not the cluster's size.
"""
from __future__ import annotations

import numpy as np

from sim.cache.layout import Layout, Moves
from sim.cache.tier import TierStats
from sim.engine import cluster_kernels, cluster_queries
from sim.engine import cluster_state as K
from sim.engine.hashtab import table_size
from sim.engine.slots import NEXT

_POOL0 = 1 << 15  # initial slots
_INT32_MAX = 2**31 - 1


class TierView:
    """A tier's counters and occupancy for the report (``tier_groups``)."""

    __slots__ = ("name", "capacity", "stats", "_n")

    def __init__(self, name: str, capacity: int, row: np.ndarray) -> None:
        self.name = name
        self.capacity = capacity
        self.stats = TierStats(**{k: int(row[K.HITS + i]) for i, k in enumerate(K.STAT_NAMES)})
        self._n = int(row[K.SIZE])

    def __len__(self) -> int:
        return self._n


class CompiledClusterCache:
    """Lazy tiers + the ClusterCache rules + router queries, state in numpy arrays."""

    def __init__(
        self,
        layout: Layout,
        *,
        hbm_blocks: int,
        dram_blocks: int,
        eic_blocks: int,
        ssd_blocks: int,
        block_bytes: int,
        n_blocks: int,
        recency: bool,
        evict_to_eic: bool = True,
        cross_rack_lookup: bool = False,
        write_through: bool = False,
    ) -> None:
        """`recency`: a hit moves a block to the back of its tier's queue (LRU) or not (FIFO).
        A tier kind whose capacity covers all `n_blocks` never evicts: its order is irrelevant."""
        self.layout = layout
        topo = self.topo = layout.topo
        self.hbm_blocks = hbm_blocks
        self.dram_blocks = dram_blocks
        self.eic_blocks = eic_blocks if topo.has_eic else 0
        self.ssd_blocks = ssd_blocks if topo.has_remote_ssd else 0
        self.block_bytes = block_bytes
        self.evict_to_eic = evict_to_eic
        self.cross_rack = cross_rack_lookup
        self.write_through = write_through
        nw, nn, nr = layout.n_workers, topo.n_nodes, topo.n_racks
        self._base = {"hbm": 0, "dram": nw, "eic": nw + nn, "ssd": nw + nn + nr}
        n_inst = nw + nn + nr + 1
        T = np.zeros((n_inst, K.T_COLS), np.int64)
        T[:, K.HEAD] = T[:, K.TAIL] = -1
        for kind, cap, count in (("hbm", hbm_blocks, nw), ("dram", dram_blocks, nn), ("eic", self.eic_blocks, nr),
                                 ("ssd", self.ssd_blocks, 1)):
            b = self._base[kind]
            T[b:b + count, K.CAP] = max(0, cap)
            T[b:b + count, K.REC] = int(recency and cap < n_blocks)
        G = np.zeros(K.G_LEN, np.int64)
        G[K.U_] = max(1, n_blocks)
        G[K.NW], G[K.NN], G[K.NR] = nw, nn, nr
        G[K.WPN], G[K.WPR], G[K.NPR] = layout.workers_per_node, layout.workers_per_rack, topo.nodes_per_rack
        G[K.DBASE], G[K.EBASE] = self._base["dram"], self._base["eic"]
        G[K.EVICT_TO_EIC], G[K.CROSS], G[K.WT] = evict_to_eic, cross_rack_lookup, write_through
        G[K.EIC_CAP_POS] = self.eic_blocks > 0
        G[K.SSD_T] = -1
        G[K.SSD_ALL] = self.ssd_blocks >= n_blocks
        if self.ssd_blocks > 0:
            G[K.SSD_T] = self._base["ssd"]
            T[self._base["ssd"], K.CREATED] = 1
        G[K.FREE] = -1
        self.T, self.G = T, G
        self._t = T.reshape(-1)  # the kernels' flat view of the instance records
        self.S = np.empty(0, np.int32)
        self.B = np.full(max(1, n_blocks) * K.B_COLS, -1, np.int32)
        self.H = np.empty(0, np.int64)
        self._grow(_POOL0)
        self._reindex(_POOL0)
        self._cnt = np.zeros(6, np.int64)
        self._cr = np.zeros((64, 3), np.int64)
        self._x = cluster_kernels.scratch(max(64, layout.workers_per_node))
        self._mv = np.zeros((64, 5), np.int64)  # one operation's rows involve one worker, node and rack: < 10
        self._out = np.zeros(64, np.int64)
        self._mark = np.zeros(nr, np.int64)
        self._pw = np.zeros(16, np.int64)
        self._pc = np.zeros((16, 6), np.int64)
        self._rout = np.zeros(16, np.int64)
        self._gpu_ep: dict[int, tuple] = {}
        self._eps: dict[int, tuple] = {}  # endpoint by kind + 4 * index (see _ep)
        self._pairs: dict[tuple, tuple] = {}  # (src kind, index, dst kind, index) -> (src, dst) endpoints
        self._wpn = layout.workers_per_node
        self._room = -1  # slots / index keys the operations may still take without a check (_reserve)
        self._fits = 0  # the longest request the scratch buffers hold

    # ------------------------------------------------------------ storage
    def _grow(self, need: int) -> None:
        """At least `need` more free slots: the pool grows by half (slot addresses stay valid, so the
        index is kept). Slot and block records are int32 while every slot address fits, int64 beyond."""
        G = self.G
        old = self.S.shape[0] // K.S_COLS
        cap = max(old + old // 2, old + need, _POOL0)
        dtype = np.int32 if cap * K.S_COLS <= _INT32_MAX else np.int64
        if self.B.dtype != dtype:
            self.B = self.B.astype(dtype)
            self.S = self.S.astype(dtype)
        # In place (realloc: a large block is remapped, not copied), so growing never holds two pools.
        # Nothing else refers to the pool between operations (the kernels get it per call).
        self.S.resize(cap * K.S_COLS, refcheck=False)
        S2 = self.S
        rows = S2.reshape(cap, K.S_COLS)
        rows[old:, K.INST] = -1
        rows[old:cap - 1, NEXT] = K.S_COLS * np.arange(old + 1, cap)  # slot addresses
        rows[cap - 1, NEXT] = G[K.FREE]
        G[K.FREE] = K.S_COLS * old
        G[K.NFREE] += cap - old

    def _reindex(self, keys: int) -> None:
        """A table for at least `keys` keys (twice that, so it is rebuilt rarely), every indexed slot in it."""
        size = table_size(2 * keys)
        self.H = np.empty(0, np.int64)  # the old index goes before the new one is built
        self.H = np.full(2 * size, -1, np.int64)
        self.G[K.MASK] = size - 1
        K.rehash(self.S, self.G, self.H)

    def _reserve(self, n: int) -> None:
        # A block allocates at most a handful of slots (and index keys) per operation (HBM, DRAM, EIC, SSD).
        need = 16 * n + 64
        left = self._room - need
        if left >= 0 and n <= self._fits:
            # Every operation since the last check took at most its `need`, so there is room still:
            # the pool and the index grow at the very operations the full check below would grow them.
            self._room = left
            return
        item = self.G.item  # Python ints: cheaper than numpy scalars
        if item(K.NFREE) < need:
            self._grow(need)
        if 2 * (item(K.NKEYS) + need) > item(K.MASK) + 1:  # load factor <= 0.5 (sim.engine.hashtab)
            self._reindex(item(K.NKEYS) + need)
        wpn = self._wpn
        if self._cr.shape[0] < n + wpn + 8:
            self._cr = np.zeros((2 * n + 64, 3), np.int64)
        if self._x.shape[1] < max(n, wpn):
            self._x = cluster_kernels.scratch(2 * max(n, wpn))
        # Room for the operations to come: free slots and index keys below the load-factor limit.
        self._room = min(item(K.NFREE), (item(K.MASK) + 1) // 2 - item(K.NKEYS)) - need
        self._fits = min(self._cr.shape[0] - wpn - 8, self._x.shape[1])

    # ------------------------------------------------------------ endpoints
    def gpu_ep(self, w: int) -> tuple:
        ep = self._gpu_ep.get(w)
        if ep is None:
            ep = self._gpu_ep[w] = self.topo.gpu(self.layout.gpu(w))
        return ep

    def _ep(self, kind: int, i: int) -> tuple:
        key = kind + 4 * i  # kinds are 0..3 (K.EP_*)
        ep = self._eps.get(key)
        if ep is None:
            if kind == K.EP_GPU:
                ep = self.gpu_ep(i)
            elif kind == K.EP_DRAM:
                ep = self.topo.dram(i)
            elif kind == K.EP_EIC:
                ep = self.topo.eic(i)
            else:
                ep = self.topo.ssd()
            self._eps[key] = ep
        return ep

    def _pair(self, sk: int, si: int, dk: int, di: int) -> tuple:
        ep = self._ep
        p = self._pairs[sk, si, dk, di] = (ep(sk, si), ep(dk, di))
        return p

    def _moves(self, n: int) -> Moves:
        if not n:
            return {}
        # One (src, dst) key per move, built once per distinct move (a dict of 4 ints, not 2 endpoint lookups).
        pairs = self._pairs
        out: Moves = {}
        for sk, si, dk, di, nb in self._mv[:n].tolist():
            p = pairs.get((sk, si, dk, di))
            out[p if p is not None else self._pair(sk, si, dk, di)] = nb
        return out

    # ------------------------------------------------------------ operations
    def acquire(self, w: int, blocks: np.ndarray, pos0: int) -> tuple[list[int], Moves, Moves]:
        """Serve the cached prefix of `blocks` into w's HBM: (blocks per location, critical, background).
        `pos0` (the workload position of blocks[0]) is ``ClusterCache``'s signature; LRU/FIFO never read it."""
        self._reserve(len(blocks))
        ncr, nmv = cluster_kernels.acquire(self.S, self._t, self.G, self.H, self.B, blocks, w, self._cnt, self._cr,
                                           self._mv, self._x)
        if ncr:
            me = self.gpu_ep(w)
            eps = self._eps
            crit = {}
            for sk, si, nb in self._cr[:ncr].tolist():
                src = eps.get(sk + 4 * si)
                crit[(src if src is not None else self._ep(sk, si), me)] = nb
        else:
            crit = {}
        return self._cnt.tolist(), crit, self._moves(nmv)

    def prefetch(self, w: int, blocks: np.ndarray, pos0: int) -> tuple[list[int], Moves, Moves]:
        """``acquire`` without counting hits (a session prefetch, ``sim.modes.cluster_prefetch``): the
        blocks move the same way; the hit counters it raised are taken back (promotions stay)."""
        cnt, crit, bg = self.acquire(w, blocks, pos0)
        T, G = self.T, self.G
        T[w, K.HITS] -= cnt[0]
        for k in range(6):
            G[K.HITS0 + k] -= cnt[k]
        base = {K.EP_DRAM: self._base["dram"], K.EP_EIC: self._base["eic"], K.EP_SSD: self._base["ssd"]}
        for sk, si, nb in self._cr[:int(G[K.NCR])].tolist():
            if sk != K.EP_GPU:  # a peer's HBM counts no tier hit
                T[base[sk] + (si if sk != K.EP_SSD else 0), K.HITS] -= nb
        return cnt, crit, bg

    def hbm_has(self, w: int, blocks: np.ndarray) -> list[bool]:
        """Which of `blocks` are in w's HBM."""
        out = np.zeros(len(blocks), np.int64)
        cluster_queries.hbm_has(self._t, self.G, self.H, np.asarray(blocks, dtype=np.int64), w, out)
        return [bool(x) for x in out.tolist()]

    def store(self, w: int, blocks: np.ndarray, pos0: int, start: int) -> Moves:
        """Write blocks[start:] (computed by prefill) into w's HBM; returns background transfers."""
        self._reserve(len(blocks))
        return self._moves(cluster_kernels.store(self.S, self._t, self.G, self.H, self.B, blocks, w, start, self._mv,
                                                 self._x))

    # ------------------------------------------------------------ read-only (routers)
    def probe(self, w: int, blocks: np.ndarray, in_rack: bool = False) -> list[int]:
        return self.probe_many([w], blocks, in_rack)[0]

    def probe_many(self, ws: list[int], blocks: np.ndarray, in_rack: bool = False) -> list[list[int]]:
        """``probe`` for each of `ws` (one call for a router's candidates)."""
        n = len(ws)
        if self._pw.shape[0] < n:
            self._pw = np.zeros(2 * n, np.int64)
            self._pc = np.zeros((2 * n, 6), np.int64)
        self._pw[:n] = ws
        cluster_queries.probe(self.S, self._t, self.G, self.H, self.B, blocks, self._pw, n, bool(in_rack), self._pc)
        return self._pc[:n].tolist()

    def near_many(self, ws: list[int], blocks: np.ndarray) -> list[tuple[int, int]]:
        """(blocks cached in w's rack per ``probe(in_rack=True)``: HBM + peer HBM + DRAM + EIC, of which in
        w's HBM) for each of `ws`; one walk that needs no split of the rest."""
        n = len(ws)
        if self._pw.shape[0] < n:
            self._pw = np.zeros(2 * n, np.int64)
            self._pc = np.zeros((2 * n, 6), np.int64)
        self._pw[:n] = ws
        cluster_queries.near(self.S, self._t, self.G, self.H, self.B, blocks, self._pw, n, self._pc)
        return [(a, b) for a, b in self._pc[:n, :2].tolist()]

    def hbm_candidates(self, blocks: np.ndarray, k: int) -> list[int]:
        if self._out.shape[0] < k:
            self._out = np.zeros(k, np.int64)
        m = cluster_queries.hbm_candidates(self.S, self.G, self.B, blocks, k, self._out)
        return self._out[:m].tolist()

    def route_lookup(self, blocks: np.ndarray, k: int, off: int, scan: int,
                     rack_load: np.ndarray) -> tuple[list[int], list[int]]:
        """(``hbm_candidates(blocks, k)``, ``eic_prefix_racks(blocks, off, scan)`` stably sorted by
        `rack_load`) in one compiled call."""
        if self._out.shape[0] < k:
            self._out = np.zeros(k, np.int64)
        if self._rout.shape[0] < scan:
            self._rout = np.zeros(scan, np.int64)
        m1, m2 = cluster_queries.route_lookup(self.S, self.G, self.B, blocks, k, off, scan, self._mark, rack_load,
                                              self._out, self._rout)
        return self._out[:m1].tolist(), self._rout[:m2].tolist()

    def eic_prefix_racks(self, blocks: np.ndarray, off: int, scan: int) -> list[int]:
        if self._out.shape[0] < scan:
            self._out = np.zeros(scan, np.int64)
        m = cluster_queries.eic_prefix_racks(self.S, self.G, self.B, blocks, off, scan, self._mark, self._out)
        return self._out[:m].tolist()

    # ------------------------------------------------------------ report
    @property
    def hits(self) -> list[int]:
        return self.G[K.HITS0:K.HITS0 + 6].tolist()

    @property
    def moved(self) -> dict[str, int]:
        vals = self.G[K.MOVED0:K.MOVED0 + len(K.MOVE_NAMES)].tolist()
        return {k: v for k, v in zip(K.MOVE_NAMES, vals, strict=True) if v}

    def _views(self, kind: str, count: int, cap: int) -> dict[int, TierView]:
        b = self._base[kind]
        rows = self.T[b:b + count]
        return {int(i): TierView(kind, cap, rows[i]) for i in np.flatnonzero(rows[:, K.CREATED])}

    @property
    def hbm(self) -> dict[int, TierView]:
        return self._views("hbm", self.layout.n_workers, self.hbm_blocks)

    @property
    def dram(self) -> dict[int, TierView]:
        return self._views("dram", self.topo.n_nodes, self.dram_blocks)

    @property
    def eic(self) -> dict[int, TierView]:
        return self._views("eic", self.topo.n_racks, self.eic_blocks)

    @property
    def ssd(self) -> TierView | None:
        return self._views("ssd", 1, self.ssd_blocks).get(0)

    def tier_groups(self) -> dict[str, list[TierView]]:
        ssd = self.ssd
        return {"hbm": list(self.hbm.values()), "dram": list(self.dram.values()), "eic": list(self.eic.values()),
                "ssd": [ssd] if ssd is not None else []}

    def capacity_blocks(self) -> dict[str, int]:
        """Capacity of the whole cluster per tier kind (instantiated or not)."""
        t, lay = self.topo, self.layout
        return {"hbm": self.hbm_blocks * lay.n_workers, "dram": self.dram_blocks * t.n_nodes,
                "eic": self.eic_blocks * t.n_racks, "ssd": self.ssd_blocks}
