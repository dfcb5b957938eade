"""Compiled (numba) twin of ``sim.cache.cluster.ClusterCache`` for queue-ordered policies (LRU, FIFO).

The Python cluster cache spends its time in per-block tier work when tiers
are full: ~55 tier operations per request on the Mooncake trace (an HBM
insert evicts a victim that goes to the node's DRAM and the rack's EIC pool,
whose victims go to the remote SSD...). Here the same rules run on flat
arrays (``sim.engine.cluster_state``), one call per request operation. Every
rule, counter, lazily created tier and transfer (and the order transfers are
first recorded in) is the Python version's; ``tests/test_cluster_compiled.py``
replays traces both ways. The routers' read-only queries are in
``sim.engine.cluster_queries``.

Transfers are returned as (src kind, src index, dst kind, dst index, blocks)
rows aggregated per (src, dst) in first-recorded order (dict order in Python).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.cluster_state import (
    B_COLS,
    BNEXT,
    CREATED,
    CROSS,
    DBASE,
    DEM_IN,
    DROPPED,
    EBASE,
    EHEAD,
    EIC_CAP_POS,
    EP_DRAM,
    EP_EIC,
    EP_GPU,
    EP_SSD,
    EVICT_TO_EIC,
    HITS,
    HITS0,
    INST,
    M_DRAM_EIC,
    M_DRAM_SSD,
    M_EIC_SSD,
    M_HBM_DRAM,
    M_HBM_EIC,
    M_HBM_SSD,
    M_WT_DRAM,
    MOVED0,
    NCR,
    NMV,
    NPR,
    PROM_OUT,
    SSD_T,
    T_COLS,
    TAKEN,
    WPN,
    WPR,
    WT,
    ensure,
    existing,
    find_in,
    find_ssd,
    holder_drop,
    node_copies,
    put_new,
    record_critical,
    record_move,
    remove,
    touch,
)
from sim.engine.slots import I64
from sim.engine.unowned import unowned

FROM_HBM, FROM_DRAM = 0, 1
# Constants passed to a kernel that is not inlined go as I64(...) / np.bool_(...), and counters passed to one
# start as I64(0): numba types a bare constant as a literal and compiles the callee once per literal value
# (also for a counter's first, still-literal type during inference). Measured on a cold cache: _below_dram
# compiled 5 times, _demote 3, record_move 13; the cluster engine's first compile took 94 -> 59 s CPU.
# (I64: sim.engine.slots, shared with the node engine)


# ----------------------------------------------------------------- demotion chain
@njit(cache=True)
def _eic_gone(S, T, G, H, B, MV, rack, eic, gone, ng, X):
    """EIC victims: leave the rack index, go to the remote SSD (unless already there)."""
    ssd = G[SSD_T]
    sent = dropped = lost = I64(0)  # counts passed to a kernel start as int64, not literal 0 (I64)
    scratch = X[4]  # SSD victims are only counted
    for i in range(ng):
        v = gone[i]
        if find_in(G, H, eic, v) >= 0:  # evicted and written back within one batch
            continue
        if ssd >= 0:
            if find_ssd(B, v) >= 0:
                continue
            lost += put_new(S, T, G, H, B, ssd, v, scratch, 0)
            sent += 1
            continue
        dropped += 1
    T[eic * T_COLS + DROPPED] += dropped
    if sent:
        T[ssd * T_COLS + DEM_IN] += sent
        record_move(G, MV, I64(EP_EIC), rack, I64(EP_SSD), I64(0), sent)
        G[MOVED0 + M_EIC_SSD] += sent
    if lost:
        T[ssd * T_COLS + DROPPED] += lost


@njit(cache=True)
def _below_dram(S, T, G, H, B, MV, node, blocks, n, sk, si, frm, X):
    """Blocks leaving DRAM (or HBM with no DRAM) -> the rack's EIC pool, else the remote SSD.
    Returns how many found a place (already there counts); the others are dropped."""
    rack = node // G[NPR]
    eic = ensure(T, G[EBASE] + rack)
    ssd = G[SSD_T]
    placed = sent = I64(0)
    g1 = X[3]
    for i in range(n):
        b = blocks[i]
        if eic >= 0:
            if find_in(G, H, eic, b) >= 0:
                placed += 1
            else:
                if put_new(S, T, G, H, B, eic, b, g1, 0):
                    _eic_gone(S, T, G, H, B, MV, rack, eic, g1, I64(1), X)
                placed += 1
                sent += 1
        elif ssd >= 0:
            if find_ssd(B, b) >= 0:
                placed += 1
            else:
                T[ssd * T_COLS + DROPPED] += put_new(S, T, G, H, B, ssd, b, g1, 0)
                T[ssd * T_COLS + DEM_IN] += 1
                placed += 1
                sent += 1
    if sent:
        if eic >= 0:
            T[eic * T_COLS + DEM_IN] += sent
            record_move(G, MV, sk, si, I64(EP_EIC), rack, sent)
            G[MOVED0 + (M_HBM_EIC if frm == FROM_HBM else M_DRAM_EIC)] += sent
        else:
            record_move(G, MV, sk, si, I64(EP_SSD), I64(0), sent)
            G[MOVED0 + (M_HBM_SSD if frm == FROM_HBM else M_DRAM_SSD)] += sent
    if frm == FROM_DRAM and placed < n:
        T[(G[DBASE] + node) * T_COLS + DROPPED] += n - placed
    return placed


@njit(cache=True)
def _dram_spill(S, T, G, H, B, MV, node, spill, n, X):
    """DRAM victims: dropped with evict_to_eic (the pool got them when they left HBM), else pushed down."""
    if G[EVICT_TO_EIC] and G[EIC_CAP_POS]:
        T[(G[DBASE] + node) * T_COLS + DROPPED] += n
    else:
        _below_dram(S, T, G, H, B, MV, node, spill, n, I64(EP_DRAM), node, I64(FROM_DRAM), X)


X_ROWS = 7


def scratch(n: int) -> np.ndarray:
    """Buffers of one operation on up to n blocks (and a node's workers), held by the caller across calls
    so the kernels allocate nothing and pass no reference-counted array (``sim.engine.unowned``): rows
    gone, spill, rest (victims of the demotion chain), two one-block rows for the chain below DRAM, the
    HBM victims of the operation, then its peers (acquire) or one DRAM victim (write-through store)."""
    return np.zeros((X_ROWS, max(1, n)), np.int64)


@njit(cache=True)
def _demote(S, T, G, H, B, MV, w, node, rack, ev, nev, X, rewritten):
    """HBM victims ev[:nev] of w go down; `rewritten`: a victim may be back in w's HBM (a store that
    wrote a block twice), never so for acquire's one victim (its block was just evicted for another)."""
    dram = ensure(T, G[DBASE] + node)
    eic = ensure(T, G[EBASE] + rack) if G[EVICT_TO_EIC] else -1
    gone, spill, rest = X[0], X[1], X[2]
    ng = nsp = nrest = to_eic = to_dram = I64(0)
    for i in range(nev):
        b = ev[i]  # its HBM slot (and holder entry) left in put_new
        s = find_in(G, H, w, b) if rewritten else -1
        if s >= 0:
            # Evicted and written again by this very store (a block twice in a request): ClusterCache
            # drops its holder entry here although the block is back in HBM; so do we.
            holder_drop(S, G, B, s)
        kept = False
        if eic >= 0:  # evict_to_eic: publish the victim to the rack's pool
            if find_in(G, H, eic, b) >= 0:
                kept = True
            else:
                ng += put_new(S, T, G, H, B, eic, b, gone, ng)
                to_eic += 1
                kept = True
        if dram >= 0:
            s = find_in(G, H, dram, b)
            if s >= 0:  # write-through copy already there
                touch(S, T, dram, s)
                continue
            nsp += put_new(S, T, G, H, B, dram, b, spill, nsp)
            to_dram += 1
            continue
        if not kept:
            rest[nrest] = b
            nrest += 1
    if to_eic:
        T[eic * T_COLS + DEM_IN] += to_eic
        record_move(G, MV, I64(EP_GPU), w, I64(EP_EIC), rack, to_eic)
        G[MOVED0 + M_HBM_EIC] += to_eic
    if to_dram:
        T[dram * T_COLS + DEM_IN] += to_dram
        record_move(G, MV, I64(EP_GPU), w, I64(EP_DRAM), node, to_dram)
        G[MOVED0 + M_HBM_DRAM] += to_dram
    if ng:
        _eic_gone(S, T, G, H, B, MV, rack, eic, gone, ng, X)
    if nsp:
        _dram_spill(S, T, G, H, B, MV, node, spill, nsp, X)
    if nrest:
        placed = _below_dram(S, T, G, H, B, MV, node, rest, nrest, I64(EP_GPU), w, I64(FROM_HBM), X)
        T[w * T_COLS + DROPPED] += nrest - placed


# ----------------------------------------------------------------- operations
@njit(cache=True)
def acquire(S, T, G, H, B, blocks, w, cnt, CR, MV, X):
    """ClusterCache.acquire: counts per location -> cnt, critical rows -> CR, background rows -> MV;
    X: ``scratch`` for at least len(blocks) and the node's workers. Returns (critical rows, background rows)."""
    S, T, G, H, B = unowned(S), unowned(T), unowned(G), unowned(H), unowned(B)  # sim.engine.unowned
    MV, CR, X = unowned(MV), unowned(CR), unowned(X)
    G[NCR] = 0
    G[NMV] = 0
    node, rack = w // G[WPN], w // G[WPR]
    hbm = ensure(T, w)
    base = w - w % G[WPN]
    npeer = 0
    ev, peers = X[5], X[6]
    for p in range(base, base + G[WPN]):
        if p != w and T[p * T_COLS + CREATED]:
            peers[npeer] = p
            npeer += 1
    dram = existing(T, G[DBASE] + node)
    eic = existing(T, G[EBASE] + rack)
    ssd = G[SSD_T]
    cross = G[CROSS]
    wt = G[WT]
    ebase = G[EBASE]
    n0 = n1 = n2 = n3 = n4 = n5 = 0
    for j in range(blocks.shape[0]):
        b = blocks[j]
        s = find_in(G, H, hbm, b)
        if s >= 0:
            touch(S, T, hbm, s)
            n0 += 1
            continue
        sk = -1
        si = I64(0)
        # b is not in w's HBM: any HBM copy on the node is a peer's; look for the first only if one exists
        for q in range(npeer if node_copies(G, H, node, b) > 0 else 0):
            p = peers[q]
            s = find_in(G, H, p, b)
            if s >= 0:
                touch(S, T, p, s)
                sk, si = EP_GPU, p
                n1 += 1
                break
        if sk < 0:
            s = find_in(G, H, dram, b) if dram >= 0 else -1
            if s >= 0:
                if wt:
                    touch(S, T, dram, s)
                else:
                    remove(S, T, G, H, B, dram, s)
                    T[dram * T_COLS + TAKEN] += 1
                T[dram * T_COLS + HITS] += 1
                T[dram * T_COLS + PROM_OUT] += 1
                sk, si = EP_DRAM, node
                n2 += 1
            else:
                s = find_in(G, H, eic, b) if eic >= 0 else -1
                if s >= 0:
                    touch(S, T, eic, s)
                    T[eic * T_COLS + HITS] += 1
                    T[eic * T_COLS + PROM_OUT] += 1
                    sk, si = EP_EIC, rack
                    n3 += 1
                elif cross and B[b * B_COLS + EHEAD] >= 0:
                    best = -1  # the lowest rack whose pool holds b
                    e = B[b * B_COLS + EHEAD]
                    while e >= 0:
                        if best < 0 or S[e + INST] < S[best + INST]:
                            best = e
                        e = S[e + BNEXT]
                    t2 = S[best + INST]
                    touch(S, T, t2, best)
                    T[t2 * T_COLS + HITS] += 1
                    T[t2 * T_COLS + PROM_OUT] += 1
                    sk, si = EP_EIC, t2 - ebase
                    n4 += 1
                else:
                    s = find_ssd(B, b) if ssd >= 0 else -1
                    if s < 0:
                        break
                    touch(S, T, ssd, s)
                    T[ssd * T_COLS + HITS] += 1
                    T[ssd * T_COLS + PROM_OUT] += 1
                    sk, si = EP_SSD, I64(0)
                    n5 += 1
        record_critical(G, CR, sk, si)
        v = put_new(S, T, G, H, B, hbm, b, ev, 0)
        if v:
            # Demote at once: a victim that is a later block of this very prefix
            # is then still found in DRAM/EIC by this walk.
            _demote(S, T, G, H, B, MV, w, node, rack, ev, I64(1), X, np.bool_(False))
    T[hbm * T_COLS + HITS] += n0
    cnt[0], cnt[1], cnt[2], cnt[3], cnt[4], cnt[5] = n0, n1, n2, n3, n4, n5
    for k in range(6):
        G[HITS0 + k] += cnt[k]
    return G[NCR], G[NMV]


@njit(cache=True)
def store(S, T, G, H, B, blocks, w, start, MV, X):
    """ClusterCache.store: write blocks[start:] into w's HBM; background rows -> MV; X: ``scratch`` for at
    least len(blocks). Returns how many background rows."""
    S, T, G, H, B = unowned(S), unowned(T), unowned(G), unowned(H), unowned(B)  # sim.engine.unowned
    MV, X = unowned(MV), unowned(X)
    G[NMV] = 0
    hbm = ensure(T, w)
    node = w // G[WPN]
    wt = G[WT]
    dram = ensure(T, G[DBASE] + node) if wt else existing(T, G[DBASE] + node)
    n = blocks.shape[0]
    ev = X[5]
    nev = I64(0)
    if dram < 0 or not wt:
        for j in range(start, n):
            b = blocks[j]
            s = find_in(G, H, hbm, b)
            if s >= 0:
                touch(S, T, hbm, s)
                continue
            if dram >= 0:
                s = find_in(G, H, dram, b)
                if s >= 0:  # keep HBM/DRAM of a node exclusive: the DRAM copy is superseded
                    remove(S, T, G, H, B, dram, s)
                    T[dram * T_COLS + TAKEN] += 1
            nev += put_new(S, T, G, H, B, hbm, b, ev, nev)
    else:
        sp = X[6]
        for j in range(start, n):
            b = blocks[j]
            s = find_in(G, H, hbm, b)
            if s >= 0:
                touch(S, T, hbm, s)
                continue
            if find_in(G, H, dram, b) < 0:
                v = put_new(S, T, G, H, B, dram, b, sp, 0)
                record_move(G, MV, I64(EP_GPU), w, I64(EP_DRAM), node, I64(1))
                G[MOVED0 + M_WT_DRAM] += 1
                if v:
                    _dram_spill(S, T, G, H, B, MV, node, sp, I64(1), X)
            nev += put_new(S, T, G, H, B, hbm, b, ev, nev)
    if nev:  # the blocks just written are distinct, so victims can wait until the end
        _demote(S, T, G, H, B, MV, w, node, w // G[WPR], ev, nev, X, np.bool_(True))
    return G[NMV]
