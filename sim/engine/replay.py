"""The hit-rate-only replay (sim.modes.single._run_fast) as one compiled loop.

Same order of operations as the Python loop, request by request: retire
departed requests from the load signal, run due session prefetches, route,
look up, fetch, store, record, sample occupancy. Runs over [i0, i1) so the
caller can report progress between chunks; all state lives in arrays.

Arguments are grouped in tuples:
``W = (arrival_s, block_offsets, input_tokens, session_index, service_s)`` (block_offsets: each
request's first access position), ``P = (parent, shared, own_off, own_ids, buf, pbuf, rec, distinct)``
the block lists in ``trace.prefix`` form, materialised one request at a time into ``buf`` (``pbuf``
for a prefetched one);
``rec`` where lookup found each block (node_ops) and ``distinct`` whether own
blocks are new when their request arrives, so store puts them without looking,
``Q = (dep_t, dep_w, pf_t, pf_s, pf_r, pf_w, last_arrival, last_req, gaps)``
(the departure and prefetch heaps and the session-gap predictor; ``gaps`` =
[sum, count]), ``out = (worker, hit_blocks, hit_tokens, occ_t, occ)`` (the first three: the rows of
requests [rb, ...), a block of sim.modes.result_rows);
``st`` = [departures, prefetches, occupancy samples] counts.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.layout import LEN, NW, SCRATCH_N, tier_at
from sim.engine.node_ops import fetch_rec, lookup_from, prefetch, store_fresh
from sim.engine.routing import route
from sim.engine.slots import I64
from sim.engine.unowned import unowned
from trace.prefix import fill

PREFETCH_GAP_FRACTION = 0.8  # as sim.timing.prefetch.InstantPrefetch: prefetch at 80% of the mean think time


@njit(cache=True)
def hit_tokens(nh, nd, ns, bt, input_tokens):
    """sim.modes.common.trim_tokens for three tiers, compiled."""
    th, td, ts = nh * bt, nd * bt, ns * bt
    excess = th + td + ts - input_tokens
    if excess > 0:
        cut = min(excess, ts)
        ts -= cut
        excess -= cut
        cut = min(excess, td)
        td -= cut
        excess -= cut
        th -= excess
    return th, td, ts


# ------------------------------------------------------------- heaps
@njit(cache=True)
def _dep_push(dt, dw, n, t, w):
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if dt[p] <= t:
            break
        dt[i], dw[i] = dt[p], dw[p]
        i = p
    dt[i], dw[i] = t, w
    return n + 1


@njit(cache=True)
def _dep_pop(dt, dw, n):
    """Remove the root; returns (its worker, new size)."""
    w0 = dw[0]
    n -= 1
    t, w = dt[n], dw[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and dt[c + 1] < dt[c]:
            c += 1
        if dt[c] >= t:
            break
        dt[i], dw[i] = dt[c], dw[c]
        i = c
    if n > 0:
        dt[i], dw[i] = t, w
    return w0, n


@njit(cache=True, inline="always")
def _pf_less(pt, ps, pr, a, b):
    if pt[a] != pt[b]:
        return pt[a] < pt[b]
    if ps[a] != ps[b]:
        return ps[a] < ps[b]
    return pr[a] < pr[b]


@njit(cache=True)
def _pf_swap(pt, ps, pr, pw, a, b):
    pt[a], pt[b] = pt[b], pt[a]
    ps[a], ps[b] = ps[b], ps[a]
    pr[a], pr[b] = pr[b], pr[a]
    pw[a], pw[b] = pw[b], pw[a]


@njit(cache=True)
def _pf_push(pt, ps, pr, pw, n, t, s, r, w):
    pt[n], ps[n], pr[n], pw[n] = t, s, r, w
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if not _pf_less(pt, ps, pr, i, p):
            break
        _pf_swap(pt, ps, pr, pw, i, p)
        i = p
    return n + 1


@njit(cache=True)
def _pf_pop(pt, ps, pr, pw, n):
    """Move the root to index n - 1 and restore the heap on [0, n - 1); returns n - 1."""
    n -= 1
    _pf_swap(pt, ps, pr, pw, I64(0), n)
    i = I64(0)
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _pf_less(pt, ps, pr, c + 1, c):
            c += 1
        if not _pf_less(pt, ps, pr, c, i):
            break
        _pf_swap(pt, ps, pr, pw, i, c)
        i = c
    return n


# ------------------------------------------------------------- the loop
@njit(cache=True)
def routed_lookup(M, R, wk, blocks, rec):
    """lookup_from after the router chose wk: the leading blocks it found in wk's HBM (their slots in
    R[4], sim.engine.routing) are recorded in `rec` first, so lookup starts after them."""
    width = M[SCRATCH_N]
    sb = R[4]
    p0 = R[0][2]
    row = R[0][3]
    for j in range(p0):
        rec[j] = sb[row, j]
        rec[width + j] = wk
    return lookup_from(M, wk, blocks, p0, rec)


@njit(cache=True)
def replay(M_owned, R, W, P, Q, out, rb, st, load, i0, i1, every, bt, do_prefetch):
    M = unowned(M_owned)  # no atomic reference counts on the kernels' calls (sim.engine.unowned)
    arr_s, offs, inp, sess, svc = W
    parent, shared, own_off, own_ids, buf, pbuf, rec, distinct = P
    dep_t, dep_w, pf_t, pf_s, pf_r, pf_w, last_arr, last_req, gaps = Q
    worker, hit_blocks, hit_tok, occ_t, occ = out
    nw = M[NW]
    for i in range(i0, i1):
        t = arr_s[i]
        while st[0] > 0 and dep_t[0] <= t:
            w0, st[0] = _dep_pop(dep_t, dep_w, st[0])
            load[w0] -= 1
        while st[1] > 0 and pf_t[0] <= t:
            st[1] = _pf_pop(pf_t, pf_s, pf_r, pf_w, st[1])
            k = st[1]
            r = pf_r[k]
            if last_req[pf_s[k]] == r:
                nr = fill(parent, shared, own_off, own_ids, r, pbuf)
                prefetch(M, pf_w[k], pbuf[:nr], offs[r])
        lo = offs[i]
        blocks = buf[:fill(parent, shared, own_off, own_ids, i, buf)]
        s = sess[i]
        wk = route(M, R, load, i, blocks, s)
        nh, n_dram, ns = routed_lookup(M, R, wk, blocks, rec)
        npre = nh + n_dram + ns
        fetch_rec(M, wk, blocks, lo, npre, np.bool_(True), rec, distinct)
        store_fresh(M, wk, blocks, lo, npre, shared[i] if distinct else len(blocks))
        r = i - rb
        worker[r] = wk
        hit_blocks[r, 0], hit_blocks[r, 1], hit_blocks[r, 2] = nh, n_dram, ns
        th, td, ts = hit_tokens(nh, n_dram, ns, bt, inp[i])
        hit_tok[r, 0], hit_tok[r, 1], hit_tok[r, 2] = th, td, ts
        load[wk] += 1
        st[0] = _dep_push(dep_t, dep_w, st[0], t + svc[i], wk)
        if do_prefetch and s >= 0:
            prev = last_arr[s]
            if prev == prev:  # not NaN: the session was seen before
                gaps[0] += t - prev
                gaps[1] += 1.0
            last_arr[s] = t
            last_req[s] = i
            if gaps[1] > 0:
                when = t + PREFETCH_GAP_FRACTION * gaps[0] / gaps[1]
                st[1] = _pf_push(pf_t, pf_s, pf_r, pf_w, st[1], when, s, i, wk)
        if i % every == 0:
            k = st[2]
            occ_t[k] = t
            h = 0
            for w in range(nw):
                h += M[tier_at(w) + LEN]
            occ[k, 0], occ[k, 1], occ[k, 2] = h, M[tier_at(nw) + LEN], M[tier_at(nw + 1) + LEN]
            st[2] = k + 1


def _chunks(n: int, chunk: int, rows):
    """(first, end, row block) of each chunk of at most `chunk` requests; a chunk never straddles two blocks."""
    i0 = 0
    while i0 < n:
        b = rows.at(i0)
        i1 = min(n, i0 + chunk, b.lo + b.n)
        yield i0, i1, b
        i0 = i1


def _heap_room(Q: tuple, st: np.ndarray, k: int) -> tuple:
    """`Q` with room in both heaps for `k` more entries (a request pushes at most one on each): each array
    doubled, its entries kept, when the heap could fill up."""
    dep, pf = int(st[0]), int(st[1])
    if dep + k <= len(Q[0]) and pf + k <= len(Q[2]):
        return Q

    def grown(a: np.ndarray, used: int) -> np.ndarray:
        if used + k <= len(a):
            return a
        b = np.zeros(max(2 * len(a), used + k), dtype=a.dtype)
        b[:used] = a[:used]
        return b

    return (grown(Q[0], dep), grown(Q[1], dep), *(grown(a, pf) for a in Q[2:6]), *Q[6:])


def run_fast(cache, R: tuple, w, session_index: np.ndarray, service_s: np.ndarray, load: np.ndarray,
             every: int, do_prefetch: bool, rows, progress=None, chunk: int = 4096) -> None:
    """Drive ``replay`` over the whole workload `w`, writing the per-request rows into `rows` (a
    sim.modes.result_rows.ResultRows: each chunk within one block, done once replayed).

    `cache` is a CompiledNodeCache (its occupancy lists are filled here).
    """
    n = len(w)
    n_sess = int(session_index.max()) + 1 if n else 0
    W = (w.arrival_ms / 1000.0, w.block_offsets, w.input_tokens, session_index, service_s)
    pb = w.prefix_blocks()
    width = max(1, int(w.n_blocks().max()) if n else 1)
    P = (pb.parent, pb.shared, pb.own_off, pb.ids_stored(), np.empty(width, dtype=np.int64),
         np.empty(width, dtype=np.int64), np.empty(2 * max(1, int(cache.M[SCRATCH_N])), dtype=np.int64),
         bool(pb.distinct))
    # the departure and prefetch heaps grow between chunks (_heap_room): they hold the requests in flight by
    # the load signal and the sessions awaiting a prefetch, not a slot per request
    Q = (
        np.zeros(chunk), np.zeros(chunk, dtype=np.int64),
        np.zeros(chunk), np.zeros(chunk, dtype=np.int64), np.zeros(chunk, dtype=np.int64),
        np.zeros(chunk, dtype=np.int64),
        np.full(max(1, n_sess), np.nan), np.full(max(1, n_sess), -1, dtype=np.int64), np.zeros(2),
    )
    m = n // every + 2
    occ_arrays = (np.zeros(m), np.zeros((m, 3), dtype=np.int64))
    st = np.zeros(3, dtype=np.int64)
    bt = w.block_tokens
    for i0, i1, b in _chunks(n, chunk, rows):
        out = (b.worker, b.hit_blocks, b.hit_tokens, *occ_arrays)
        Q = _heap_room(Q, st, i1 - i0)
        replay(cache.M, R, W, P, Q, out, b.lo, st, load, i0, i1, every, bt, do_prefetch)
        rows.done(i0, i1 - i0)
        if progress:
            progress(i1 - 1)
    k = int(st[2])
    occ_t, occ = occ_arrays[0][:k].tolist(), occ_arrays[1][:k].tolist()
    for name, col in (("hbm", 0), ("dram", 1), ("ssd", 2)):
        cache.occupancy[name] = [(t, row[col]) for t, row in zip(occ_t, occ, strict=True)]
