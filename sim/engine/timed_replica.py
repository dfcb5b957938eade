"""One worker's replica in the compiled timed single-node replay: sim.replica.engine ``BatchingReplica`` over a
``PrefillScheduler`` and a ``TokenPool`` (sim.replica.workers) as a state machine resumed at its waits.

``resume`` runs the replica's loop from where it waited (``W_PC``) until it waits again; ``submit`` queues a
request (starting the replica on first use), ``notify`` wakes it. Its hooks are here too: a request's first
token (the store, its write-backs, its row) and its end (its row, its slot). The same operations in the same
order as the Python (sim.engine.timed_node's module doc).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.slots import I64
from sim.engine.timed_events import (
    G_F,
    K_FIRE,
    K_RESUME,
    URGENT,
    add_cb,
    new_event,
    pending,
    release,
    schedule,
    succeed,
    timer,
)
from sim.engine.timed_layout import (
    C_BUDGET,
    C_MAX_SEQS,
    C_NW,
    C_POOL,
    C_SWAP,
    F_BB,
    F_KVB,
    F_SWAP_BS,
    I_CACHED,
    I_CTX,
    I_DONE,
    I_I,
    I_INP,
    I_LEFT,
    I_MEM,
    I_NEEDS_MEM,
    I_NEXT,
    I_NPRE,
    I_OUT,
    I_POS0,
    I_PREEMPTED,
    I_PREV,
    I_TODO,
    L_E2E,
    L_PREFILL,
    L_QUEUE,
    L_TPOT,
    L_TTFT,
    PC_DEBT,
    PC_IDLE,
    PC_ITER,
    PC_STRETCH,
    PC_TAIL,
    R_ARR,
    R_EXTRA,
    R_KV,
    R_PSTART,
    R_READY,
    W_ACT,
    W_BLEN,
    W_DEC_TOK,
    W_DQ,
    W_INCOMING,
    W_ITERS,
    W_K,
    W_LOAD_TOKENS,
    W_MAX_BATCH,
    W_OUTSTANDING,
    W_PC,
    W_PEAK,
    W_PRE_TOK,
    W_PREEMPTS,
    W_RECOMP_TOK,
    W_RQ,
    W_RUN,
    W_SB,
    W_SK,
    W_SKK,
    W_STARTED,
    W_STRETCHES,
    W_USED,
    W_WAIT,
    W_WAKE,
    WF_A,
    WF_B,
    WF_BUSY,
    WF_DBUSY,
    WF_DEBT,
    WF_EXTRA,
    WF_PBUSY,
    WF_SWAP,
    WF_T,
    WF_T0,
    WF_TOOK,
    X_NRQ_FREE,
)
from sim.engine.timed_links import WRITE, serve
from sim.engine.timed_ops import first_token
from sim.engine.timed_step import (
    decode_line,
    done_by,
    hist_add,
    hist_add_progression,
    iteration_s,
    span,
)

# ------------------------------------------------------------------ linked lists of request slots

@njit(cache=True, inline="always")
def _push_back(WI, RI, w, lst, s):
    t = WI[w, lst + 1]
    RI[s, I_PREV] = t
    RI[s, I_NEXT] = -1
    if t == -1:
        WI[w, lst] = s
    else:
        RI[t, I_NEXT] = s
    WI[w, lst + 1] = s
    WI[w, lst + 2] += 1


@njit(cache=True, inline="always")
def _push_front(WI, RI, w, lst, s):
    h = WI[w, lst]
    RI[s, I_NEXT] = h
    RI[s, I_PREV] = -1
    if h == -1:
        WI[w, lst + 1] = s
    else:
        RI[h, I_PREV] = s
    WI[w, lst] = s
    WI[w, lst + 2] += 1


@njit(cache=True, inline="always")
def _unlink(WI, RI, w, lst, s):
    p, n = RI[s, I_PREV], RI[s, I_NEXT]
    if p == -1:
        WI[w, lst] = n
    else:
        RI[p, I_NEXT] = n
    if n == -1:
        WI[w, lst + 1] = p
    else:
        RI[n, I_PREV] = p
    WI[w, lst + 2] -= 1


# ------------------------------------------------------------------ the token pool (TokenPool)

@njit(cache=True)
def _take(WI, w, n, cap):
    if n > cap - WI[w, W_USED]:
        raise RuntimeError("TokenPool.take beyond its free tokens")
    WI[w, W_USED] += n
    if WI[w, W_USED] > WI[w, W_PEAK]:
        WI[w, W_PEAK] = WI[w, W_USED]


@njit(cache=True)
def _give(WI, w, n):
    WI[w, W_USED] -= n
    if WI[w, W_USED] < 0:
        raise RuntimeError("TokenPool gave back more than it lent")


# ------------------------------------------------------------------ requests: rows and slots

@njit(cache=True)
def row_of(ST, i):
    return i % len(ST.ROWS[0])


@njit(cache=True)
def _finish(ST, s):
    """Request in slot s finished (sim.modes.single ``done``): its row, its worker's load, its slot."""
    RI, RF, free = ST.RQ
    now = ST.E[G_F][0]
    rw, _hb, _ht, lat, _rec, rdone = ST.ROWS
    i = RI[s, I_I]
    p = row_of(ST, i)
    n_out = RI[s, I_OUT]
    lat[p, L_TPOT] = (now - RF[s, R_KV]) / (n_out - 1) if n_out > 1 else 0.0
    lat[p, L_E2E] = now - RF[s, R_ARR]
    ST.CACHE[2][rw[p]] -= 1
    rdone[p] = 1
    X = ST.X
    free[X[X_NRQ_FREE]] = s
    X[X_NRQ_FREE] += 1


@njit(cache=True)
def write_back(ST, wk, h2d, d2s):
    """``NodeIO.write_back(wait=False)``: the demotions go down in the background, nobody waits."""
    E, L, CF, C = ST.E, ST.L, ST.CF, ST.C
    bb = int(CF[F_BB])
    if h2d:
        nbytes = float(h2d * bb)
        if nbytes > 0:
            serve(E, L, C[C_NW] + wk, I64(WRITE), nbytes, np.bool_(False))
    if d2s:
        serve(E, L, 2 * C[C_NW], I64(WRITE), float(d2s * bb), np.bool_(False))


# ------------------------------------------------------------------ the replica (BatchingReplica)

@njit(cache=True)
def _line(ST, B):
    lines = ST.WK[3]
    if lines[B, 2] == 0.0:
        a, b = decode_line(ST.STEP, B)
        lines[B, 0], lines[B, 1], lines[B, 2] = a, b, 1.0
    return lines[B, 0], lines[B, 1]


@njit(cache=True)
def _seq_room(WI, w, max_seqs):
    return max_seqs - (WI[w, W_ACT + 2] + WI[w, W_RUN + 2] + WI[w, W_DQ + 2] + WI[w, W_RQ + 2])


@njit(cache=True)
def notify(ST, w):
    """``BatchingReplica.notify``: new work; wake the replica if it is idle or its stretch should stop."""
    E = ST.E
    WI = ST.WK[0]
    h = WI[w, W_WAKE]
    if h == -1 or not pending(E, h):
        return
    max_seqs = ST.C[C_MAX_SEQS]
    if WI[w, W_RUN + 2] == 0:
        succeed(E, h)
    elif (WI[w, W_WAIT + 2] and WI[w, W_RQ + 2] == 0 and _seq_room(WI, w, max_seqs) > 0) or (
            WI[w, W_DQ + 2] and WI[w, W_RUN + 2] < max_seqs):
        succeed(E, h)


@njit(cache=True)
def _join_batch(ST, w):
    """``BatchingReplica._join``: preempted requests whose memory is back, then the decode queue."""
    WI, WF = ST.WK[0], ST.WK[1]
    RI, RF = ST.RQ[0], ST.RQ[1]
    C = ST.C
    cap, pool = C[C_MAX_SEQS], C[C_POOL]
    while WI[w, W_RQ + 2] and WI[w, W_RUN + 2] < cap:
        s = WI[w, W_RQ]
        if pool - WI[w, W_USED] < RI[s, I_CTX] + WI[w, W_RUN + 2] + 1:
            break
        _unlink(WI, RI, w, W_RQ, s)
        _take(WI, w, RI[s, I_CTX], pool)
        RI[s, I_MEM] = RI[s, I_CTX]
        RI[s, I_NEEDS_MEM] = 0
        WF[w, WF_EXTRA] += RF[s, R_EXTRA]
        RF[s, R_EXTRA] = 0.0
        _push_back(WI, RI, w, W_RUN, s)
        WI[w, W_K] += RI[s, I_CTX]
    while WI[w, W_DQ + 2] and WI[w, W_RUN + 2] < cap:
        s = WI[w, W_DQ]
        _unlink(WI, RI, w, W_DQ, s)
        WI[w, W_INCOMING] -= 1
        _push_back(WI, RI, w, W_RUN, s)
        WI[w, W_K] += RI[s, I_CTX]
    if WI[w, W_RUN + 2] > WI[w, W_MAX_BATCH]:
        WI[w, W_MAX_BATCH] = WI[w, W_RUN + 2]


@njit(cache=True)
def _joins_next(ST, w, B):
    WI = ST.WK[0]
    C = ST.C
    if B >= C[C_MAX_SEQS]:
        return False
    if WI[w, W_DQ + 2]:
        return True
    if WI[w, W_RQ + 2] == 0:
        return False
    return C[C_POOL] - WI[w, W_USED] >= ST.RQ[0][WI[w, W_RQ], I_CTX] + B + 1


@njit(cache=True)
def _make_room(ST, w):
    """``BatchingReplica._make_room``: preempt the latest joined until the next iteration's tokens fit."""
    WI, WF = ST.WK[0], ST.WK[1]
    RI, RF = ST.RQ[0], ST.RQ[1]
    C, CF = ST.C, ST.CF
    pool = C[C_POOL]
    while WI[w, W_RUN + 2] and pool - WI[w, W_USED] < WI[w, W_RUN + 2]:
        s = WI[w, W_RUN + 1]
        _unlink(WI, RI, w, W_RUN, s)
        ctx = RI[s, I_CTX]
        WI[w, W_K] -= ctx
        _give(WI, w, RI[s, I_MEM])
        RI[s, I_MEM] = 0
        RI[s, I_PREEMPTED] += 1
        RI[s, I_NEEDS_MEM] = 1
        if C[C_SWAP]:  # sim.replica.preemption.swap
            nbytes = ctx * CF[F_KVB]
            t = nbytes / CF[F_SWAP_BS]
            block_s, rejoin_s = t, t
            WF[w, WF_SWAP] += 2 * nbytes
        else:  # recompute
            WI[w, W_RECOMP_TOK] += ctx
            one_n = np.empty(1, dtype=np.int64)
            one_c = np.zeros(1, dtype=np.int64)
            one_n[0] = ctx
            block_s, rejoin_s = 0.0, iteration_s(ST.STEP, one_n, one_c, I64(1), I64(0), I64(0))
        WF[w, WF_DEBT] += block_s
        RF[s, R_EXTRA] = rejoin_s
        WI[w, W_PREEMPTS] += 1
        _push_front(WI, RI, w, W_RQ, s)
    return WI[w, W_RUN + 2]


@njit(cache=True)
def _advance(ST, w, k):
    """``BatchingReplica._advance``: every running request gained k tokens; the finished ones leave."""
    WI = ST.WK[0]
    RI = ST.RQ[0]
    B = WI[w, W_RUN + 2]
    WI[w, W_K] += k * B
    WI[w, W_DEC_TOK] += k * B
    finished = False
    s = WI[w, W_RUN]
    while s != -1:
        RI[s, I_CTX] += k
        RI[s, I_MEM] += k
        RI[s, I_LEFT] -= k
        if RI[s, I_LEFT] <= 0:
            finished = True
        s = RI[s, I_NEXT]
    if finished:
        s = WI[w, W_RUN]
        while s != -1:
            nxt = RI[s, I_NEXT]
            if RI[s, I_LEFT] <= 0:
                WI[w, W_K] -= RI[s, I_CTX]
                _give(WI, w, RI[s, I_MEM])
                RI[s, I_MEM] = 0
                _unlink(WI, RI, w, W_RUN, s)
                _finish(ST, s)
            s = nxt


@njit(cache=True)
def _form_batch(ST, w, left, max_new):
    """``PrefillScheduler.form_batch`` into the replica's batch rows (request slot, new tokens, before);
    returns their number."""
    WI, WB = ST.WK[0], ST.WK[2]
    RI = ST.RQ[0]
    C = ST.C
    chunk, pool = C[C_BUDGET], C[C_POOL]
    m = 0
    s = WI[w, W_ACT]
    while s != -1:
        if left <= 0:
            return m
        n = min(RI[s, I_TODO], chunk, left)
        WB[w, m, 0], WB[w, m, 1], WB[w, m, 2] = s, n, RI[s, I_CACHED] + RI[s, I_DONE]
        m += 1
        left -= n
        s = RI[s, I_NEXT]
    while max_new > 0 and left > 0 and WI[w, W_WAIT + 2]:
        s = WI[w, W_WAIT]
        inp = RI[s, I_INP]
        if pool - WI[w, W_USED] < inp:  # PoolAdmission.admit
            break
        _take(WI, w, inp, pool)
        RI[s, I_MEM] = inp
        cached = RI[s, I_CACHED]
        WI[w, W_LOAD_TOKENS] += (inp - cached) - RI[s, I_TODO]
        RI[s, I_TODO] = inp - cached
        RI[s, I_DONE] = 0
        _unlink(WI, RI, w, W_WAIT, s)
        _push_back(WI, RI, w, W_ACT, s)
        max_new -= 1
        n = min(RI[s, I_TODO], chunk, left)
        WB[w, m, 0], WB[w, m, 1], WB[w, m, 2] = s, n, cached
        m += 1
        left -= n
    return m


@njit(cache=True)
def _prefill_done(ST, w, s):
    """The replica's prefill_done hook: the first token (sim.modes.single first_token_fast, written, first_out)
    and the start of decode (Workers.start_decode)."""
    RI, RF = ST.RQ[0], ST.RQ[1]
    WI = ST.WK[0]
    M, _R, _load, P, state = ST.CACHE
    now = ST.E[G_F][0]
    i = RI[s, I_I]
    _a, _b, h2d, d2s = first_token(M, w, i, P, RI[s, I_POS0], RI[s, I_NPRE], state)
    write_back(ST, w, h2d, d2s)
    RF[s, R_KV] = now
    lat = ST.ROWS[3]
    p = row_of(ST, i)
    lat[p, L_QUEUE] = RF[s, R_PSTART] - RF[s, R_READY]
    lat[p, L_PREFILL] = now - RF[s, R_PSTART]
    lat[p, L_TTFT] = now - RF[s, R_ARR]
    if RI[s, I_OUT] <= 1:
        _give(WI, w, RI[s, I_MEM])
        RI[s, I_MEM] = 0
        _finish(ST, s)
        notify(ST, w)
        return
    RI[s, I_CTX] = RI[s, I_INP]
    RI[s, I_LEFT] = RI[s, I_OUT] - 1
    WI[w, W_INCOMING] += 1
    _push_back(WI, RI, w, W_DQ, s)
    notify(ST, w)


@njit(cache=True)
def _complete(ST, w, m):
    """``PrefillScheduler.complete`` of the replica's batch, then prefill_done for each finished request."""
    WI, WB = ST.WK[0], ST.WK[2]
    RI = ST.RQ[0]
    fin = np.empty(m, dtype=np.int64)
    nf = 0
    for j in range(m):
        s, n = WB[w, j, 0], WB[w, j, 1]
        RI[s, I_DONE] += n
        RI[s, I_TODO] -= n
        WI[w, W_LOAD_TOKENS] -= n
        if RI[s, I_TODO] == 0:
            fin[nf] = s
            nf += 1
    if nf:
        s = WI[w, W_ACT]
        while s != -1:
            nxt = RI[s, I_NEXT]
            if RI[s, I_TODO] <= 0:
                _unlink(WI, RI, w, W_ACT, s)
            s = nxt
        WI[w, W_OUTSTANDING] -= nf
    for j in range(nf):
        _prefill_done(ST, w, fin[j])


@njit(cache=True)
def _after_iter(ST, w):
    E = ST.E
    WI, WF = ST.WK[0], ST.WK[1]
    took = E[G_F][0] - WF[w, WF_T0]
    WF[w, WF_BUSY] += took
    WI[w, W_ITERS] += 1
    WI[w, W_STRETCHES] += 1
    counts, tot, acc, _edges, log_lo = ST.HIST
    hist_add(counts, tot, acc, log_lo, took)
    B, m = WI[w, W_SB], WI[w, W_BLEN]
    if B:
        WF[w, WF_DBUSY] += took
    if m:
        WF[w, WF_PBUSY] += took
        _complete(ST, w, m)
    if B:
        _advance(ST, w, I64(1))


@njit(cache=True)
def _after_tail(ST, w):
    WI, WF = ST.WK[0], ST.WK[1]
    took = WF[w, WF_TOOK]
    k = WI[w, W_SK]
    WF[w, WF_BUSY] += took
    WF[w, WF_DBUSY] += took
    WI[w, W_ITERS] += k
    WI[w, W_STRETCHES] += 1
    if k:
        a, b = WF[w, WF_A], WF[w, WF_B]
        counts, tot, acc, edges, log_lo = ST.HIST
        hist_add_progression(counts, tot, acc, edges, log_lo, a + b * WI[w, W_SKK], b * WI[w, W_SB], k)
        _advance(ST, w, k)


@njit(cache=True)
def _after_stretch(ST, w):
    """The stretch's end or a wake-up: finish the iteration in flight; False when that needs a wait."""
    E = ST.E
    WI, WF = ST.WK[0], ST.WK[1]
    wk_h = WI[w, W_WAKE]
    WI[w, W_WAKE] = -1
    if pending(E, wk_h):
        release(E, wk_h)  # never triggered: nothing holds it any more
    now = E[G_F][0]
    t0, T, a, b = WF[w, WF_T0], WF[w, WF_T], WF[w, WF_A], WF[w, WF_B]
    k, B, K = WI[w, W_SK], WI[w, W_SB], WI[w, W_SKK]
    dt = now - t0
    took = T
    if dt < T * (1 - 1e-12):
        j = done_by(a, b, dt, B, K)
        if span(a, b, j, B, K) < dt - 1e-12 * max(1.0, dt):
            j += 1
        j = min(j, k)
        if j < k:
            _give(WI, w, (k - j) * B)
            k = j
            took = span(a, b, k, B, K)
        WI[w, W_SK] = k
        WF[w, WF_TOOK] = took
        end = t0 + took
        if end > now:
            h = timer(E, end - now)
            add_cb(E, h, I64(K_RESUME), w, I64(0))
            WI[w, W_PC] = PC_TAIL
            return False
    WI[w, W_SK] = k
    WF[w, WF_TOOK] = took
    return True


@njit(cache=True)
def _top(ST, w):
    """``BatchingReplica._run``'s loop from its top, until it waits (the wait's resume point in W_PC)."""
    E = ST.E
    WI, WF, WB = ST.WK[0], ST.WK[1], ST.WK[2]
    RI, RF = ST.RQ[0], ST.RQ[1]
    C = ST.C
    max_seqs, pool, budget = C[C_MAX_SEQS], C[C_POOL], C[C_BUDGET]
    while True:
        if WI[w, W_RQ + 2] or WI[w, W_DQ + 2]:
            _join_batch(ST, w)
        B = WI[w, W_RUN + 2]
        if B:
            if pool - WI[w, W_USED] < B:
                B = _make_room(ST, w)
            if B:
                _take(WI, w, B, pool)
        m = I64(0)
        if WI[w, W_ACT + 2] or WI[w, W_WAIT + 2]:
            if WI[w, W_RQ + 2]:
                room_ = I64(0)
            else:
                room_ = max_seqs - (WI[w, W_ACT + 2] + WI[w, W_RUN + 2] + WI[w, W_DQ + 2])
            m = _form_batch(ST, w, budget - B, room_)
        if m == 0 and B == 0:
            if WF[w, WF_DEBT]:
                d = WF[w, WF_DEBT]
                WF[w, WF_DEBT] = 0.0
                WF[w, WF_BUSY] += d
                h = timer(E, d)
                add_cb(E, h, I64(K_RESUME), w, I64(0))
                WI[w, W_PC] = PC_DEBT
                return
            h = new_event(E)
            WI[w, W_WAKE] = h
            add_cb(E, h, I64(K_RESUME), w, I64(0))
            WI[w, W_PC] = PC_IDLE
            return
        if m or WF[w, WF_EXTRA] or WF[w, WF_DEBT] or _joins_next(ST, w, B):
            if m:
                dur = iteration_s(ST.STEP, WB[w, :m, 1], WB[w, :m, 2], m, B, WI[w, W_K])
            else:
                a, b = _line(ST, B)
                dur = span(a, b, I64(1), B, WI[w, W_K])
            owed = WF[w, WF_EXTRA] + WF[w, WF_DEBT]
            if owed:
                dur += owed
                WF[w, WF_EXTRA] = 0.0
                WF[w, WF_DEBT] = 0.0
            t0 = E[G_F][0]
            for j in range(m):  # Workers.chunk_start, then the prefill tokens
                s = WB[w, j, 0]
                if RF[s, R_PSTART] != RF[s, R_PSTART]:
                    RF[s, R_PSTART] = t0
            for j in range(m):
                WI[w, W_PRE_TOK] += WB[w, j, 1]
            h = timer(E, dur)
            add_cb(E, h, I64(K_RESUME), w, I64(0))
            WF[w, WF_T0] = t0
            WI[w, W_SB] = B
            WI[w, W_BLEN] = m
            WI[w, W_PC] = PC_ITER
            return
        # a decode-only stretch up to the next finish or memory limit, in one event
        least = RI[WI[w, W_RUN], I_LEFT]
        s = RI[WI[w, W_RUN], I_NEXT]
        while s != -1:
            if RI[s, I_LEFT] < least:
                least = RI[s, I_LEFT]
            s = RI[s, I_NEXT]
        k = min(least, 1 + (pool - WI[w, W_USED]) // B)
        if k > 1:
            _take(WI, w, (k - 1) * B, pool)
        K = WI[w, W_K]
        a, b = _line(ST, B)
        T = span(a, b, k, B, K)
        t0 = E[G_F][0]
        wk_h = new_event(E)
        WI[w, W_WAKE] = wk_h
        WF[w, WF_T0], WF[w, WF_T], WF[w, WF_A], WF[w, WF_B] = t0, T, a, b
        WI[w, W_SK], WI[w, W_SB], WI[w, W_SKK] = k, B, K
        first = new_event(E)
        h = timer(E, T)
        add_cb(E, h, I64(K_FIRE), first, I64(0))
        add_cb(E, wk_h, I64(K_FIRE), first, I64(0))
        add_cb(E, first, I64(K_RESUME), w, I64(0))
        WI[w, W_PC] = PC_STRETCH
        return


@njit(cache=True)
def resume(ST, w):
    """Replica w's process resumes at its wait (W_PC)."""
    WI = ST.WK[0]
    pc = WI[w, W_PC]
    if pc == PC_IDLE:
        WI[w, W_WAKE] = -1
    elif pc == PC_ITER:
        _after_iter(ST, w)
    elif pc == PC_STRETCH:
        if not _after_stretch(ST, w):
            return
        _after_tail(ST, w)
    elif pc == PC_TAIL:
        _after_tail(ST, w)
    _top(ST, w)


@njit(cache=True)
def submit(ST, w, s):
    """``Workers.submit``: the request joins worker w's prefill queue (its replica starts on first use)."""
    E = ST.E
    WI = ST.WK[0]
    RI, RF = ST.RQ[0], ST.RQ[1]
    if not WI[w, W_STARTED]:
        WI[w, W_STARTED] = 1
        h = new_event(E)
        add_cb(E, h, I64(K_RESUME), w, I64(0))
        schedule(E, h, E[G_F][0], I64(URGENT))
    RF[s, R_READY] = E[G_F][0]
    RI[s, I_TODO] = RI[s, I_INP] - RI[s, I_CACHED]
    WI[w, W_LOAD_TOKENS] += RI[s, I_TODO]
    WI[w, W_OUTSTANDING] += 1
    _push_back(WI, RI, w, W_WAIT, s)
    notify(ST, w)
