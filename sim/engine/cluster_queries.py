"""Read-only queries of the compiled cluster cache for the routers (``sim.routing.cluster``).

``probe`` counts where each candidate worker would find a request's cached
prefix; ``hbm_candidates`` and ``eic_prefix_racks`` read the per-block
holder and EIC-copy lists (``sim.engine.cluster_state``) so no router scans
the workers or racks.
"""
from __future__ import annotations

from numba import njit

from sim.engine.cluster_state import (
    B_COLS,
    BNEXT,
    BPREV,
    CREATED,
    CROSS,
    DBASE,
    EBASE,
    EHEAD,
    HTAIL,
    INST,
    NEIC,
    NHOLD,
    NR,
    SSD_T,
    T_COLS,
    WPN,
    WPR,
    existing,
    find_in,
    find_ssd,
    node_copies,
)
from sim.engine.unowned import unowned


@njit(cache=True)
def probe(S, T, G, H, B, blocks, ws, nw, in_rack, cnt):
    """ClusterCache.probe for workers ws[:nw] -> cnt[i] (blocks of the cached prefix per location)."""
    S, T, G, H, B = unowned(S), unowned(T), unowned(G), unowned(H), unowned(B)  # sim.engine.unowned
    for i in range(nw):
        _probe1(S, T, G, H, B, blocks, ws[i], in_rack, cnt[i])


@njit(cache=True)
def _probe1(S, T, G, H, B, blocks, w, in_rack, cnt):
    hbm = existing(T, w)
    node = w // G[WPN]
    dram = existing(T, G[DBASE] + node)
    eic = existing(T, G[EBASE] + w // G[WPR])
    racks = G[CROSS] != 0 and not in_rack
    ssd = G[SSD_T] if not in_rack else -1
    n0 = n1 = n2 = n3 = n4 = n5 = 0
    for j in range(blocks.shape[0]):
        b = blocks[j]
        if hbm >= 0 and find_in(G, H, hbm, b) >= 0:
            n0 += 1
            continue
        # w's HBM misses b, so every HBM copy on its node is a peer's (a holder is a created instance)
        if node_copies(G, H, node, b) > 0:
            n1 += 1
        elif dram >= 0 and find_in(G, H, dram, b) >= 0:
            n2 += 1
        elif eic >= 0 and find_in(G, H, eic, b) >= 0:
            n3 += 1
        elif racks and B[b * B_COLS + EHEAD] >= 0:
            n4 += 1
        elif ssd >= 0 and find_ssd(B, b) >= 0:
            n5 += 1
        else:
            break
    cnt[0], cnt[1], cnt[2], cnt[3], cnt[4], cnt[5] = n0, n1, n2, n3, n4, n5


@njit(cache=True)
def near(S, T, G, H, B, blocks, ws, nw, out):
    """(near, hbm) of ``probe(in_rack=True)`` for workers ws[:nw] -> out[i]: near = blocks of the prefix
    held in w's HBM, a peer's HBM, the node's DRAM or the rack's EIC pool; hbm = those in w's HBM.
    The same walk as ``_probe1`` (it stops at the first block in none of them) with the one split the
    routers read, so it looks in the rack's pool (where most of a moved session lives) before the node."""
    S, T, G, H, B = unowned(S), unowned(T), unowned(G), unowned(H), unowned(B)  # sim.engine.unowned
    wpn = G[WPN]
    for i in range(nw):
        w = ws[i]
        hbm = existing(T, w)
        node = w // wpn
        # "near" is the same for every worker of a node: a block in w's HBM is one of the node's HBM
        # copies (node_copies counts w too), and DRAM and the EIC pool are the node's and rack's. So a
        # second candidate of a node only counts its own HBM hits in the prefix its node-mate found.
        seen = -1
        for q in range(i):
            if ws[q] // wpn == node:
                seen = q
                break
        if seen >= 0:
            n = out[seen, 0]
            n0 = 0
            if hbm >= 0:
                for j in range(n):
                    if find_in(G, H, hbm, blocks[j]) >= 0:
                        n0 += 1
            out[i, 0] = n
            out[i, 1] = n0
            continue
        dram = existing(T, G[DBASE] + node)
        eic = existing(T, G[EBASE] + w // G[WPR])
        n0 = n = 0
        for j in range(blocks.shape[0]):
            b = blocks[j]
            if hbm >= 0 and find_in(G, H, hbm, b) >= 0:
                n0 += 1
            elif not ((eic >= 0 and find_in(G, H, eic, b) >= 0) or (dram >= 0 and find_in(G, H, dram, b) >= 0)
                      or node_copies(G, H, node, b) > 0):
                break
            n += 1
        out[i, 0] = n
        out[i, 1] = n0


@njit(cache=True)
def hbm_candidates(S, G, B, blocks, k, out):
    """Up to k workers holding the deepest blocks in HBM, most recent holder first -> out; returns how many."""
    S, G, B = unowned(S), unowned(G), unowned(B)
    m = 0
    if G[NHOLD] == 0:
        return 0
    for j in range(blocks.shape[0] - 1, -1, -1):
        s = B[blocks[j] * B_COLS + HTAIL]
        while s >= 0:
            w = S[s + INST]  # an HBM slot: its instance is its worker
            new = True
            for i in range(m):
                if out[i] == w:
                    new = False
                    break
            if new:
                out[m] = w
                m += 1
                if m >= k:
                    return m
            s = S[s + BPREV]
    return m


@njit(cache=True)
def eic_prefix_racks(S, G, B, blocks, off, scan, mark, out):
    """Racks whose EIC pool holds the longest prefix of blocks (the last non-empty intersection),
    in rack order from `off` round (at most `scan`) -> out; returns how many. `mark` is scratch (n racks)."""
    S, G, B = unowned(S), unowned(G), unowned(B)
    n = blocks.shape[0]
    if G[NEIC] == 0 or n == 0:
        return 0
    ebase = G[EBASE]
    nr = G[NR]
    for r in range(nr):
        mark[r] = 0
    e = B[blocks[0] * B_COLS + EHEAD]
    cnt = 0
    while e >= 0:
        mark[S[e + INST] - ebase] = 1
        cnt += 1
        e = S[e + BNEXT]
    if cnt == 0:
        return 0
    level = 1
    for j in range(1, n):
        both = 0
        e = B[blocks[j] * B_COLS + EHEAD]
        while e >= 0:
            r = S[e + INST] - ebase
            if mark[r] == level:
                both += 1
            e = S[e + BNEXT]
        if both == 0:
            break
        e = B[blocks[j] * B_COLS + EHEAD]
        while e >= 0:
            r = S[e + INST] - ebase
            if mark[r] == level:
                mark[r] = level + 1
            e = S[e + BNEXT]
        level += 1
    m = 0
    for r in range(off, nr):
        if m >= scan:
            break
        if mark[r] == level:
            out[m] = r
            m += 1
    for r in range(0, off):
        if m >= scan:
            break
        if mark[r] == level:
            out[m] = r
            m += 1
    return m


@njit(cache=True)
def route_lookup(S, G, B, blocks, k, off, scan, mark, rack_load, hout, rout):
    """``hbm_candidates`` -> hout and ``eic_prefix_racks`` -> rout in one call (a router's two lookups),
    the racks then stably ordered by `rack_load` (as ``sorted(racks, key=rack_load.__getitem__)``);
    returns (how many workers, how many racks)."""
    m1 = hbm_candidates(S, G, B, blocks, k, hout)
    m2 = eic_prefix_racks(S, G, B, blocks, off, scan, mark, rout)
    for i in range(1, m2):  # insertion sort: stable, and m2 <= scan (a handful)
        r = rout[i]
        lv = rack_load[r]
        j = i - 1
        while j >= 0 and rack_load[rout[j]] > lv:
            rout[j + 1] = rout[j]
            j -= 1
        rout[j + 1] = r
    return m1, m2


@njit(cache=True)
def hbm_has(T, G, H, blocks, w, out):
    """out[j] = 1 if blocks[j] is in w's HBM (session prefetch's use/waste accounting)."""
    T, G, H = unowned(T), unowned(G), unowned(H)
    created = T[w * T_COLS + CREATED]
    for j in range(blocks.shape[0]):
        out[j] = 1 if created and find_in(G, H, w, blocks[j]) >= 0 else 0
