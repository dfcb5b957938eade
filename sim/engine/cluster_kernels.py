"""Compiled (numba) twin of ``sim.cache.cluster.ClusterCache`` for queue-ordered policies (LRU, FIFO).

The Python cluster cache spends its time in per-block tier work when tiers
are full: ~55 tier operations per request on the Mooncake trace (an HBM
insert evicts a victim that goes to the node's DRAM and the rack's EIC pool,
whose victims go to the remote SSD...). Here the same rules run on flat
arrays, one call per request operation. Every rule, counter, lazily created
tier and transfer (and the order transfers are first recorded in) is the
Python version's; ``tests/test_cluster_compiled.py`` replays traces both ways.

State (all int64; ``U`` distinct blocks, dense ids 0..U-1):

* ``S[slot]``: one resident (tier instance, block): KEY (block), INST, POS
  (workload position of the latest access), PREV/NEXT (the instance's queue,
  oldest first; for holder entries: the block's holder list), BPREV/BNEXT
  (the block's list of EIC-pool copies). Free slots chain through NEXT.
* ``T[inst]``: HEAD/TAIL/SIZE/CAP of the queue, CREATED, REC (a hit moves
  the block to the back: LRU) and the ``TierStats`` counters. Instances:
  HBM per worker, DRAM per node, EIC per rack, the remote SSD.
* ``H``: open addressing (linear probing, backward-shift deletion), rows
  (key, slot) with key = instance x U + block. Holder entries (``hbm_holders``: block ->
  workers, insertion-ordered) are slots of pseudo-instances after the SSD.
* ``B[block]``: head/tail of its holder list, head of its EIC-copy list (the
  racks whose pool holds it: ``eic_racks``).
* ``G``: sizes, flags, free-list head, counters (hits per location, moves).

Transfers are returned as (src kind, src index, dst kind, dst index, blocks)
rows aggregated per (src, dst) in first-recorded order (dict order in Python).
"""
from __future__ import annotations

import numpy as np
from numba import njit

# S columns
KEY, INST, POS, PREV, NEXT, BPREV, BNEXT = range(7)
S_COLS = 7
# T columns: queue, then TierStats in sim.cache.tier field order
HEAD, TAIL, SIZE, CAP, CREATED, REC = range(6)
HITS, INSERTS, DEM_IN, PROM_OUT, EVICTIONS, TAKEN, DROPPED, REJECTED = range(6, 14)
T_COLS = 14
STAT_NAMES = ("hits", "inserts", "demotions_in", "promotions_out", "evictions", "taken", "dropped", "rejected")
# B columns
HHEAD, HTAIL, EHEAD = range(3)
# G entries
(U_, NW, NN, NR, WPN, WPR, NPR, DBASE, EBASE, SSD_T, HOLD_BASE, EVICT_TO_EIC, CROSS, WT, EIC_CAP_POS,
 FREE, NFREE, MASK, NHOLD, NEIC, NCR, NMV, HITS0) = range(23)
MOVED0 = HITS0 + 6
G_LEN = MOVED0 + 7
MOVE_NAMES = ("hbm_to_eic", "hbm_to_dram", "eic_to_ssd", "write_through_dram", "dram_to_eic", "dram_to_ssd",
              "hbm_to_ssd")
M_HBM_EIC, M_HBM_DRAM, M_EIC_SSD, M_WT_DRAM, M_DRAM_EIC, M_DRAM_SSD, M_HBM_SSD = range(7)
# endpoint kinds of transfer rows
EP_GPU, EP_DRAM, EP_EIC, EP_SSD = range(4)
FROM_HBM, FROM_DRAM = 0, 1

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


# ----------------------------------------------------------------- hash table
@njit(cache=True, inline="always")
def _home(key, mask):
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(33)) & mask


@njit(cache=True)
def _find(H, mask, key):
    i = _home(key, mask)
    while True:
        k = H[i, 0]
        if k == key:
            return H[i, 1]
        if k < 0:
            return -1
        i = (i + 1) & mask


@njit(cache=True)
def _index(H, mask, key, val):
    i = _home(key, mask)
    while H[i, 0] >= 0:
        i = (i + 1) & mask
    H[i, 0] = key
    H[i, 1] = val


@njit(cache=True)
def _unindex(H, mask, key):
    i = _home(key, mask)
    while H[i, 0] != key:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        k = H[j, 0]
        if k < 0:
            break
        h = _home(k, mask)
        # the entry at j may fill the hole at i unless its home lies cyclically in (i, j]
        if i <= j:
            if i < h <= j:
                continue
        elif h > i or h <= j:
            continue
        H[i, 0] = k
        H[i, 1] = H[j, 1]
        i = j
    H[i, 0] = -1


@njit(cache=True)
def rehash(S, G, H):
    """Index every live slot into the (new, empty) table H."""
    mask = G[MASK]
    u = G[U_]
    for s in range(S.shape[0]):
        if S[s, INST] >= 0:
            _index(H, mask, S[s, INST] * u + S[s, KEY], s)


# ----------------------------------------------------------------- slots and queues
@njit(cache=True)
def _alloc(S, G, H, inst, b, pos):
    s = G[FREE]
    if s < 0:
        raise RuntimeError("cluster kernel: slot pool exhausted (sizing bug)")
    G[FREE] = S[s, NEXT]
    G[NFREE] -= 1
    S[s, KEY] = b
    S[s, INST] = inst
    S[s, POS] = pos
    _index(H, G[MASK], inst * G[U_] + b, s)
    return s


@njit(cache=True)
def _free(S, G, H, s):
    _unindex(H, G[MASK], S[s, INST] * G[U_] + S[s, KEY])
    S[s, INST] = -1
    S[s, NEXT] = G[FREE]
    G[FREE] = s
    G[NFREE] += 1


@njit(cache=True, inline="always")
def _find_in(S, G, H, t, b):
    return _find(H, G[MASK], t * G[U_] + b)


@njit(cache=True)
def _unlink(S, T, t, s):
    p, n = S[s, PREV], S[s, NEXT]
    if p >= 0:
        S[p, NEXT] = n
    else:
        T[t, HEAD] = n
    if n >= 0:
        S[n, PREV] = p
    else:
        T[t, TAIL] = p
    T[t, SIZE] -= 1


@njit(cache=True)
def _append(S, T, t, s):
    tail = T[t, TAIL]
    S[s, PREV] = tail
    S[s, NEXT] = -1
    if tail >= 0:
        S[tail, NEXT] = s
    else:
        T[t, HEAD] = s
    T[t, TAIL] = s
    T[t, SIZE] += 1


@njit(cache=True)
def _touch(S, T, t, s, pos):
    S[s, POS] = pos
    if T[t, REC] and T[t, TAIL] != s:
        _unlink(S, T, t, s)
        _append(S, T, t, s)


@njit(cache=True)
def _is_eic(G, t):
    return G[EBASE] <= t < G[EBASE] + G[NR]


@njit(cache=True)
def _remove(S, T, G, H, B, t, s):
    """Slot s leaves instance t (victim or taken): off its queue, its block's EIC list, the index."""
    _unlink(S, T, t, s)
    if _is_eic(G, t):
        b = S[s, KEY]
        p, n = S[s, BPREV], S[s, BNEXT]
        if p >= 0:
            S[p, BNEXT] = n
        else:
            B[b, EHEAD] = n
        if n >= 0:
            S[n, BPREV] = p
        G[NEIC] -= 1
    _free(S, G, H, s)


@njit(cache=True)
def _put_new(S, T, G, H, B, t, b, pos, out, k):
    """Insert b (not resident) into t; a victim (block, pos) goes to out[k]. Returns 1 on a victim."""
    vict = 0
    if T[t, SIZE] >= T[t, CAP]:
        h = T[t, HEAD]
        out[k, 0] = S[h, KEY]
        out[k, 1] = S[h, POS]
        _remove(S, T, G, H, B, t, h)
        T[t, EVICTIONS] += 1
        vict = 1
    s = _alloc(S, G, H, t, b, pos)
    _append(S, T, t, s)
    T[t, INSERTS] += 1
    if _is_eic(G, t):
        n = B[b, EHEAD]
        S[s, BPREV] = -1
        S[s, BNEXT] = n
        if n >= 0:
            S[n, BPREV] = s
        B[b, EHEAD] = s
        G[NEIC] += 1
    return vict


@njit(cache=True)
def _ensure(T, t):
    """The lazily created instance t, or -1 when its kind has no capacity."""
    if T[t, CAP] <= 0:
        return -1
    T[t, CREATED] = 1
    return t


@njit(cache=True)
def _existing(T, t):
    return t if T[t, CREATED] else -1


# ----------------------------------------------------------------- holders (hbm_holders)
@njit(cache=True)
def _holder_add(S, G, H, B, b, w):
    h = G[HOLD_BASE] + w
    if _find_in(S, G, H, h, b) >= 0:
        return  # dict semantics: an existing key keeps its place
    s = _alloc(S, G, H, h, b, 0)
    tail = B[b, HTAIL]
    S[s, PREV] = tail
    S[s, NEXT] = -1
    if tail >= 0:
        S[tail, NEXT] = s
    else:
        B[b, HHEAD] = s
    B[b, HTAIL] = s
    G[NHOLD] += 1


@njit(cache=True)
def _holder_remove(S, G, H, B, b, w):
    s = _find_in(S, G, H, G[HOLD_BASE] + w, b)
    if s < 0:
        return
    p, n = S[s, PREV], S[s, NEXT]
    if p >= 0:
        S[p, NEXT] = n
    else:
        B[b, HHEAD] = n
    if n >= 0:
        S[n, PREV] = p
    else:
        B[b, HTAIL] = p
    _free(S, G, H, s)
    G[NHOLD] -= 1


# ----------------------------------------------------------------- transfer rows
@njit(cache=True)
def _move(G, MV, sk, si, dk, di, n):
    m = G[NMV]
    for i in range(m):
        if MV[i, 0] == sk and MV[i, 1] == si and MV[i, 2] == dk and MV[i, 3] == di:
            MV[i, 4] += n
            return
    MV[m, 0] = sk
    MV[m, 1] = si
    MV[m, 2] = dk
    MV[m, 3] = di
    MV[m, 4] = n
    G[NMV] = m + 1


@njit(cache=True)
def _crit(G, CR, sk, si):
    m = G[NCR]
    for i in range(m):
        if CR[i, 0] == sk and CR[i, 1] == si:
            CR[i, 2] += 1
            return
    CR[m, 0] = sk
    CR[m, 1] = si
    CR[m, 2] = 1
    G[NCR] = m + 1


# ----------------------------------------------------------------- demotion chain
@njit(cache=True)
def _eic_gone(S, T, G, H, B, MV, rack, eic, gone, ng):
    """EIC victims: leave the rack index, go to the remote SSD (unless already there)."""
    ssd = G[SSD_T]
    sent = dropped = lost = 0
    scratch = np.empty((1, 2), np.int64)
    for i in range(ng):
        v, vpos = gone[i, 0], gone[i, 1]
        if _find_in(S, G, H, eic, v) >= 0:  # evicted and written back within one batch
            continue
        if ssd >= 0:
            if _find_in(S, G, H, ssd, v) >= 0:
                continue
            lost += _put_new(S, T, G, H, B, ssd, v, vpos, scratch, 0)
            sent += 1
            continue
        dropped += 1
    T[eic, DROPPED] += dropped
    if sent:
        T[ssd, DEM_IN] += sent
        _move(G, MV, EP_EIC, rack, EP_SSD, 0, sent)
        G[MOVED0 + M_EIC_SSD] += sent
    if lost:
        T[ssd, DROPPED] += lost


@njit(cache=True)
def _below_dram(S, T, G, H, B, MV, node, blocks, n, sk, si, frm):
    """Blocks leaving DRAM (or HBM with no DRAM) -> the rack's EIC pool, else the remote SSD.
    Returns how many found a place (already there counts); the others are dropped."""
    rack = node // G[NPR]
    eic = _ensure(T, G[EBASE] + rack)
    ssd = G[SSD_T]
    placed = sent = 0
    g1 = np.empty((1, 2), np.int64)
    for i in range(n):
        b, pos = blocks[i, 0], blocks[i, 1]
        if eic >= 0:
            if _find_in(S, G, H, eic, b) >= 0:
                placed += 1
            else:
                if _put_new(S, T, G, H, B, eic, b, pos, g1, 0):
                    _eic_gone(S, T, G, H, B, MV, rack, eic, g1, 1)
                placed += 1
                sent += 1
        elif ssd >= 0:
            if _find_in(S, G, H, ssd, b) >= 0:
                placed += 1
            else:
                T[ssd, DROPPED] += _put_new(S, T, G, H, B, ssd, b, pos, g1, 0)
                T[ssd, DEM_IN] += 1
                placed += 1
                sent += 1
    if sent:
        if eic >= 0:
            T[eic, DEM_IN] += sent
            _move(G, MV, sk, si, EP_EIC, rack, sent)
            G[MOVED0 + (M_HBM_EIC if frm == FROM_HBM else M_DRAM_EIC)] += sent
        else:
            _move(G, MV, sk, si, EP_SSD, 0, sent)
            G[MOVED0 + (M_HBM_SSD if frm == FROM_HBM else M_DRAM_SSD)] += sent
    if frm == FROM_DRAM and placed < n:
        T[G[DBASE] + node, DROPPED] += n - placed
    return placed


@njit(cache=True)
def _dram_spill(S, T, G, H, B, MV, node, spill, n):
    """DRAM victims: dropped with evict_to_eic (the pool got them when they left HBM), else pushed down."""
    if G[EVICT_TO_EIC] and G[EIC_CAP_POS]:
        T[G[DBASE] + node, DROPPED] += n
    else:
        _below_dram(S, T, G, H, B, MV, node, spill, n, EP_DRAM, node, FROM_DRAM)


@njit(cache=True)
def _demote(S, T, G, H, B, MV, w, node, rack, ev, nev):
    dram = _ensure(T, G[DBASE] + node)
    eic = _ensure(T, G[EBASE] + rack) if G[EVICT_TO_EIC] else -1
    gone = np.empty((nev, 2), np.int64)
    spill = np.empty((nev, 2), np.int64)
    rest = np.empty((nev, 2), np.int64)
    ng = nsp = nrest = to_eic = to_dram = 0
    for i in range(nev):
        b, pos = ev[i, 0], ev[i, 1]
        _holder_remove(S, G, H, B, b, w)
        kept = False
        if eic >= 0:  # evict_to_eic: publish the victim to the rack's pool
            if _find_in(S, G, H, eic, b) >= 0:
                kept = True
            else:
                ng += _put_new(S, T, G, H, B, eic, b, pos, gone, ng)
                to_eic += 1
                kept = True
        if dram >= 0:
            s = _find_in(S, G, H, dram, b)
            if s >= 0:  # write-through copy already there
                _touch(S, T, dram, s, pos)
                continue
            nsp += _put_new(S, T, G, H, B, dram, b, pos, spill, nsp)
            to_dram += 1
            continue
        if not kept:
            rest[nrest, 0] = b
            rest[nrest, 1] = pos
            nrest += 1
    if to_eic:
        T[eic, DEM_IN] += to_eic
        _move(G, MV, EP_GPU, w, EP_EIC, rack, to_eic)
        G[MOVED0 + M_HBM_EIC] += to_eic
    if to_dram:
        T[dram, DEM_IN] += to_dram
        _move(G, MV, EP_GPU, w, EP_DRAM, node, to_dram)
        G[MOVED0 + M_HBM_DRAM] += to_dram
    if ng:
        _eic_gone(S, T, G, H, B, MV, rack, eic, gone, ng)
    if nsp:
        _dram_spill(S, T, G, H, B, MV, node, spill, nsp)
    if nrest:
        placed = _below_dram(S, T, G, H, B, MV, node, rest, nrest, EP_GPU, w, FROM_HBM)
        T[w, DROPPED] += nrest - placed


# ----------------------------------------------------------------- operations
@njit(cache=True)
def acquire(S, T, G, H, B, blocks, w, pos0, cnt, CR, MV):
    """ClusterCache.acquire: counts per location -> cnt, critical rows -> CR, background rows -> MV."""
    G[NCR] = 0
    G[NMV] = 0
    node, rack = w // G[WPN], w // G[WPR]
    hbm = _ensure(T, w)
    base = w - w % G[WPN]
    npeer = 0
    peers = np.empty(G[WPN], np.int64)
    for p in range(base, base + G[WPN]):
        if p != w and T[p, CREATED]:
            peers[npeer] = p
            npeer += 1
    dram = _existing(T, G[DBASE] + node)
    eic = _existing(T, G[EBASE] + rack)
    ssd = G[SSD_T]
    cross = G[CROSS]
    wt = G[WT]
    ebase = G[EBASE]
    ev = np.empty((1, 2), np.int64)
    n0 = n1 = n2 = n3 = n4 = n5 = 0
    for j in range(blocks.shape[0]):
        b = blocks[j]
        pos = pos0 + j
        s = _find_in(S, G, H, hbm, b)
        if s >= 0:
            _touch(S, T, hbm, s, pos)
            n0 += 1
            continue
        sk = -1
        si = 0
        for q in range(npeer):
            p = peers[q]
            s = _find_in(S, G, H, p, b)
            if s >= 0:
                _touch(S, T, p, s, pos)
                sk, si = EP_GPU, p
                n1 += 1
                break
        if sk < 0:
            s = _find_in(S, G, H, dram, b) if dram >= 0 else -1
            if s >= 0:
                if wt:
                    _touch(S, T, dram, s, pos)
                else:
                    _remove(S, T, G, H, B, dram, s)
                    T[dram, TAKEN] += 1
                T[dram, HITS] += 1
                T[dram, PROM_OUT] += 1
                sk, si = EP_DRAM, node
                n2 += 1
            else:
                s = _find_in(S, G, H, eic, b) if eic >= 0 else -1
                if s >= 0:
                    _touch(S, T, eic, s, pos)
                    T[eic, HITS] += 1
                    T[eic, PROM_OUT] += 1
                    sk, si = EP_EIC, rack
                    n3 += 1
                elif cross and B[b, EHEAD] >= 0:
                    best = -1  # the lowest rack whose pool holds b
                    e = B[b, EHEAD]
                    while e >= 0:
                        if best < 0 or S[e, INST] < S[best, INST]:
                            best = e
                        e = S[e, BNEXT]
                    t2 = S[best, INST]
                    _touch(S, T, t2, best, pos)
                    T[t2, HITS] += 1
                    T[t2, PROM_OUT] += 1
                    sk, si = EP_EIC, t2 - ebase
                    n4 += 1
                else:
                    s = _find_in(S, G, H, ssd, b) if ssd >= 0 else -1
                    if s < 0:
                        break
                    _touch(S, T, ssd, s, pos)
                    T[ssd, HITS] += 1
                    T[ssd, PROM_OUT] += 1
                    sk, si = EP_SSD, 0
                    n5 += 1
        _crit(G, CR, sk, si)
        v = _put_new(S, T, G, H, B, hbm, b, pos, ev, 0)
        _holder_add(S, G, H, B, b, w)
        if v:
            # Demote at once: a victim that is a later block of this very prefix
            # is then still found in DRAM/EIC by this walk.
            _demote(S, T, G, H, B, MV, w, node, rack, ev, 1)
    T[hbm, HITS] += n0
    cnt[0], cnt[1], cnt[2], cnt[3], cnt[4], cnt[5] = n0, n1, n2, n3, n4, n5
    for k in range(6):
        G[HITS0 + k] += cnt[k]


@njit(cache=True)
def store(S, T, G, H, B, blocks, w, pos0, start, MV):
    """ClusterCache.store: write blocks[start:] into w's HBM; background rows -> MV."""
    G[NMV] = 0
    hbm = _ensure(T, w)
    node = w // G[WPN]
    wt = G[WT]
    dram = _ensure(T, G[DBASE] + node) if wt else _existing(T, G[DBASE] + node)
    n = blocks.shape[0]
    ev = np.empty((max(0, n - start), 2), np.int64)
    nev = 0
    if dram < 0 or not wt:
        for j in range(start, n):
            b = blocks[j]
            s = _find_in(S, G, H, hbm, b)
            if s >= 0:
                _touch(S, T, hbm, s, pos0 + j)
                continue
            if dram >= 0:
                s = _find_in(S, G, H, dram, b)
                if s >= 0:  # keep HBM/DRAM of a node exclusive: the DRAM copy is superseded
                    _remove(S, T, G, H, B, dram, s)
                    T[dram, TAKEN] += 1
            nev += _put_new(S, T, G, H, B, hbm, b, pos0 + j, ev, nev)
            _holder_add(S, G, H, B, b, w)
    else:
        sp = np.empty((1, 2), np.int64)
        for j in range(start, n):
            b = blocks[j]
            pos = pos0 + j
            s = _find_in(S, G, H, hbm, b)
            if s >= 0:
                _touch(S, T, hbm, s, pos)
                continue
            if _find_in(S, G, H, dram, b) < 0:
                v = _put_new(S, T, G, H, B, dram, b, pos, sp, 0)
                _move(G, MV, EP_GPU, w, EP_DRAM, node, 1)
                G[MOVED0 + M_WT_DRAM] += 1
                if v:
                    _dram_spill(S, T, G, H, B, MV, node, sp, 1)
            nev += _put_new(S, T, G, H, B, hbm, b, pos, ev, nev)
            _holder_add(S, G, H, B, b, w)
    if nev:  # the blocks just written are distinct, so victims can wait until the end
        _demote(S, T, G, H, B, MV, w, node, w // G[WPR], ev, nev)


# ----------------------------------------------------------------- read-only (routers)
@njit(cache=True)
def probe(S, T, G, H, B, blocks, ws, nw, in_rack, cnt):
    """ClusterCache.probe for workers ws[:nw] -> cnt[i] (blocks of the cached prefix per location)."""
    for i in range(nw):
        _probe1(S, T, G, H, B, blocks, ws[i], in_rack, cnt[i])


@njit(cache=True)
def _probe1(S, T, G, H, B, blocks, w, in_rack, cnt):
    hbm = _existing(T, w)
    base = w - w % G[WPN]
    dram = _existing(T, G[DBASE] + w // G[WPN])
    eic = _existing(T, G[EBASE] + w // G[WPR])
    racks = G[CROSS] != 0 and not in_rack
    ssd = G[SSD_T] if not in_rack else -1
    n0 = n1 = n2 = n3 = n4 = n5 = 0
    for j in range(blocks.shape[0]):
        b = blocks[j]
        if hbm >= 0 and _find_in(S, G, H, hbm, b) >= 0:
            n0 += 1
            continue
        hit = False
        for p in range(base, base + G[WPN]):
            if p != w and T[p, CREATED] and _find_in(S, G, H, p, b) >= 0:
                hit = True
                break
        if hit:
            n1 += 1
        elif dram >= 0 and _find_in(S, G, H, dram, b) >= 0:
            n2 += 1
        elif eic >= 0 and _find_in(S, G, H, eic, b) >= 0:
            n3 += 1
        elif racks and B[b, EHEAD] >= 0:
            n4 += 1
        elif ssd >= 0 and _find_in(S, G, H, ssd, b) >= 0:
            n5 += 1
        else:
            break
    cnt[0], cnt[1], cnt[2], cnt[3], cnt[4], cnt[5] = n0, n1, n2, n3, n4, n5


@njit(cache=True)
def hbm_candidates(S, G, B, blocks, k, out):
    """Up to k workers holding the deepest blocks in HBM, most recent holder first -> out; returns how many."""
    m = 0
    if G[NHOLD] == 0:
        return 0
    for j in range(blocks.shape[0] - 1, -1, -1):
        s = B[blocks[j], HTAIL]
        while s >= 0:
            w = S[s, INST] - G[HOLD_BASE]
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
            s = S[s, PREV]
    return m


@njit(cache=True)
def eic_prefix_racks(S, G, B, blocks, off, scan, mark, out):
    """Racks whose EIC pool holds the longest prefix of blocks (the last non-empty intersection),
    in rack order from `off` round (at most `scan`) -> out; returns how many. `mark` is scratch (n racks)."""
    n = blocks.shape[0]
    if G[NEIC] == 0 or n == 0:
        return 0
    ebase = G[EBASE]
    nr = G[NR]
    for r in range(nr):
        mark[r] = 0
    e = B[blocks[0], EHEAD]
    cnt = 0
    while e >= 0:
        mark[S[e, INST] - ebase] = 1
        cnt += 1
        e = S[e, BNEXT]
    if cnt == 0:
        return 0
    level = 1
    for j in range(1, n):
        both = 0
        e = B[blocks[j], EHEAD]
        while e >= 0:
            r = S[e, INST] - ebase
            if mark[r] == level:
                both += 1
            e = S[e, BNEXT]
        if both == 0:
            break
        e = B[blocks[j], EHEAD]
        while e >= 0:
            r = S[e, INST] - ebase
            if mark[r] == level:
                mark[r] = level + 1
            e = S[e, BNEXT]
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
