"""sim.cache.node.NodeCache over the arrays: the same moves in the same order.

Tiers: worker w's HBM is tier w, DRAM is NW, SSD is NW + 1. Traffic comes
back as (dram_to_hbm, ssd_to_hbm, hbm_to_dram, dram_to_ssd) blocks and is
added to the node totals in the header of ``M``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.layout import (
    LIST,
    NW,
    PREFETCHED,
    RESIDENT_LISTS,
    SCRATCH,
    SCRATCH_N,
    ST_DEMOTIONS_IN,
    ST_DROPPED,
    ST_HITS,
    ST_PROMOTIONS_OUT,
    TR_DRAM_TO_HBM,
    TR_DRAM_TO_SSD,
    TR_HBM_TO_DRAM,
    TR_SSD_TO_HBM,
    WRITE_THROUGH,
    tier_at,
)
from sim.engine.slots import I64, KEY
from sim.engine.tier_ops import resident, tier_admits, tier_put_absent, tier_take, tier_touch
from sim.engine.unowned import unowned

# The entry points called from Python (lookup, fetch, store, prefetch) work on ``unowned(M)``: their
# nested calls then skip the atomic reference counts (sim.engine.unowned).

# Where lookup found each block, for fetch: ``rec[j]`` its slot and ``rec[width + j]`` its tier, width =
# the scratch width (SCRATCH_N). An empty ``rec`` records nothing. The compiled replay passes one so
# fetch need not hash each block again; fetch trusts an entry only while its slot still holds the block
# (``_still_at``), so results never depend on it.


@njit(cache=True)
def lookup(M, w, blocks, rec):
    """Longest cached prefix of `blocks` for worker w: (in HBM, in DRAM, in SSD). `rec` as lookup_from
    (the Python callers pass one empty array they keep, so no call allocates)."""
    return lookup_from(unowned(M), w, blocks, I64(0), rec)


@njit(cache=True)
def lookup_from(M, w, blocks, p0, rec):
    """lookup knowing the first p0 blocks are in w's HBM (the router just found them; their slots are
    already in rec), recording where each block was in `rec` when it is not empty."""
    dram = M[NW]
    ssd = dram + 1
    nh, nd_, ns = p0, 0, 0
    keep = len(rec) > 0
    width = M[SCRATCH_N]
    for j in range(p0, len(blocks)):
        b = blocks[j]
        t = w
        s = resident(M, w, b)
        if s >= 0:
            nh += 1
        else:
            t = dram
            s = resident(M, dram, b)
            if s >= 0:
                nd_ += 1
            else:
                t = ssd
                s = resident(M, ssd, b)
                if s < 0:
                    break
                ns += 1
        if keep:
            rec[j] = s
            rec[width + j] = t
    return nh, nd_, ns


@njit(cache=True)
def hbm_prefix(M, w, blocks, rec):
    """hbm_prefix_rec from Python (`rec`: a kept (1, 0) array, so no call allocates)."""
    return hbm_prefix_rec(unowned(M), w, blocks, rec, I64(0))


@njit(cache=True)
def hbm_prefix_rec(M, w, blocks, rec, row):
    """How many leading blocks w's HBM holds; their slots go to rec[row, j] when rec is not empty."""
    keep = rec.shape[1] >= len(blocks)
    n = 0
    for j in range(len(blocks)):
        s = resident(M, w, blocks[j])
        if s < 0:
            break
        if keep:
            rec[row, j] = s
        n += 1
    return n


@njit(cache=True, inline="always")
def _still_at(M, s, b):
    """Slot s (recorded by lookup) still holds block b, resident: slots belong to one tier, and a slot
    freed and reused since holds another key or sits on no list."""
    return s >= 0 and M[s + KEY] == b and 0 <= M[s + LIST] < RESIDENT_LISTS


@njit(cache=True, inline="always")
def _levels(M):
    """Scratch buffers: HBM victims, DRAM victims, SSD victims (keys, then positions)."""
    a = M[SCRATCH]
    width = M[SCRATCH_N]
    return a, a + 2 * width, a + 4 * width


@njit(cache=True)
def _push_down(M, vbuf, nv, src, dst, obuf):
    """Move src's victims (at vbuf) into dst; returns (moved, dst's own victims put at obuf)."""
    width = M[SCRATCH_N]
    nout = I64(0)
    moved = 0
    for i in range(nv):
        b, pos = M[vbuf + i], M[vbuf + width + i]
        s = resident(M, dst, b)
        if s >= 0:
            tier_touch(M, dst, s, pos)
        elif tier_admits(M, dst, b, pos):
            nout = tier_put_absent(M, dst, b, pos, obuf, nout)
            moved += 1
        else:
            M[tier_at(src) + ST_DROPPED] += 1
    M[tier_at(dst) + ST_DEMOTIONS_IN] += moved
    return moved, nout


@njit(cache=True)
def _to_ssd(M, nsp):
    """The nsp DRAM victims in the second buffer go down to SSD; SSD victims leave. Returns moved."""
    dram = M[NW]
    _, dram_buf, ssd_buf = _levels(M)
    moved, ngone = _push_down(M, dram_buf, nsp, dram, dram + 1, ssd_buf)
    M[tier_at(dram + 1) + ST_DROPPED] += ngone
    return moved


@njit(cache=True)
def _demote(M, w, nev):
    """The nev HBM victims in the first buffer go down to DRAM, DRAM's to SSD.

    Returns (hbm_to_dram, dram_to_ssd).
    """
    hbm_buf, dram_buf, _ = _levels(M)
    moved, nsp = _push_down(M, hbm_buf, nev, w, M[NW], dram_buf)
    d2s = _to_ssd(M, nsp) if nsp else 0
    return moved, d2s


@njit(cache=True)
def _check_width(M, blocks):
    if len(blocks) > M[SCRATCH_N]:
        raise ValueError("kvsim engine: a request longer than any in the workload the cache was built for")


@njit(cache=True)
def _account(M, d2h, s2h, h2d, d2s):
    M[TR_DRAM_TO_HBM] += d2h
    M[TR_SSD_TO_HBM] += s2h
    M[TR_HBM_TO_DRAM] += h2d
    M[TR_DRAM_TO_SSD] += d2s
    return d2h, s2h, h2d, d2s


@njit(cache=True)
def fetch(M, w, blocks, pos0, n_prefix, count_hits, rec):
    """Bring the first n_prefix of `blocks` (accesses pos0, pos0+1, ...) into w's HBM (`rec`: an empty
    array the caller keeps: nothing recorded)."""
    return fetch_rec(unowned(M), w, blocks, pos0, n_prefix, count_hits, rec, np.bool_(False))


@njit(cache=True)
def fetch_rec(M, w, blocks, pos0, n_prefix, count_hits, rec, unique):
    """fetch using lookup's record `rec` (empty: none). `unique`: no id occurs twice in `blocks`, so a
    block lookup found below HBM cannot have reached w's HBM since (only this fetch inserts there)."""
    dram = M[NW]
    ssd = dram + 1
    wt = M[WRITE_THROUGH] == 1
    _check_width(M, blocks)
    hbm_buf = M[SCRATCH]
    width = M[SCRATCH_N]
    keep = len(rec) > 0
    nev = d2h = s2h = I64(0)
    n_hbm = 0
    for j in range(n_prefix):
        b = blocks[j]
        pos = pos0 + j
        s = -1
        if keep and _still_at(M, rec[j], b):
            t = rec[width + j]
            if t == w:
                tier_touch(M, w, rec[j], pos)
                n_hbm += 1
                continue
            if unique:
                s = rec[j]
        if s < 0:
            s = resident(M, w, b)
            if s >= 0:
                tier_touch(M, w, s, pos)
                n_hbm += 1
                continue
            s = resident(M, dram, b)
            t = dram if s >= 0 else ssd
        if t == dram:
            src = dram
            d2h += 1
            if wt:
                tier_touch(M, dram, s, pos)
            else:
                tier_take(M, dram, s)
        else:
            if s < 0:
                s = resident(M, ssd, b)
            if s < 0:  # evicted since lookup (by this very fetch): the rest recomputes
                break
            src = ssd
            s2h += 1
            tier_take(M, ssd, s)
        if count_hits:
            M[tier_at(src) + ST_HITS] += 1
        M[tier_at(src) + ST_PROMOTIONS_OUT] += 1
        nev = tier_put_absent(M, w, b, pos, hbm_buf, nev)
    if count_hits:
        M[tier_at(w) + ST_HITS] += n_hbm
    h2d = d2s = I64(0)
    if nev:
        h2d, d2s = _demote(M, w, nev)
    return _account(M, d2h, s2h, h2d, d2s)


@njit(cache=True)
def store(M, w, blocks, pos0, start):
    """Write blocks[start:] (computed by prefill) into w's HBM."""
    return store_fresh(unowned(M), w, blocks, pos0, start, len(blocks))


@njit(cache=True)
def store_fresh(M, w, blocks, pos0, start, fresh):
    """store, knowing blocks[fresh:] were never seen before (a distinct workload's own blocks,
    trace.prefix): no tier or ghost list can hold them, so they are put without looking."""
    dram = M[NW]
    ssd = dram + 1
    wt = M[WRITE_THROUGH] == 1
    _check_width(M, blocks)
    hbm_buf, dram_buf, _ = _levels(M)
    nev = h2d = d2s = I64(0)
    for j in range(start, len(blocks)):
        b = blocks[j]
        pos = pos0 + j
        if j >= fresh:
            nev = tier_put_absent(M, w, b, pos, hbm_buf, nev)
            if wt and tier_admits(M, dram, b, pos):
                nsp = tier_put_absent(M, dram, b, pos, dram_buf, I64(0))
                h2d += 1
                if nsp:
                    d2s += _to_ssd(M, nsp)
            continue
        s = resident(M, w, b)
        if s >= 0:
            tier_touch(M, w, s, pos)
            continue
        if not wt:
            # keep exclusivity: a copy that reached a lower tier meanwhile is superseded
            s = resident(M, dram, b)
            if s >= 0:
                tier_take(M, dram, s)
            else:
                s = resident(M, ssd, b)
                if s >= 0:
                    tier_take(M, ssd, s)
        nev = tier_put_absent(M, w, b, pos, hbm_buf, nev)
        if wt and resident(M, dram, b) < 0 and tier_admits(M, dram, b, pos):
            nsp = tier_put_absent(M, dram, b, pos, dram_buf, I64(0))
            h2d += 1
            if nsp:
                d2s += _to_ssd(M, nsp)
    if nev:
        m, d = _demote(M, w, nev)
        h2d += m
        d2s += d
    return _account(M, I64(0), I64(0), h2d, d2s)


@njit(cache=True)
def prefetch(M, w, blocks, pos0):
    """Promote the cached prefix of `blocks` into w's HBM ahead of use (no hits counted)."""
    M = unowned(M)
    none = np.empty(0, dtype=np.int64)
    nh, nd_, ns = lookup_from(M, w, blocks, I64(0), none)
    if nd_ + ns == 0:
        return 0, 0, 0, 0
    tr = fetch_rec(M, w, blocks, pos0, nh + nd_ + ns, np.bool_(False), none, np.bool_(False))
    M[PREFETCHED] += tr[0] + tr[1]
    return tr
