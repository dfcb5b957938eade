"""The timed single-node replay's event model, compiled: arrivals, loads, replicas, in SimPy's order.

The compiled twin of sim.modes.single ``_run_timed`` on the compiled cache (``fast``), with its replicas
(sim.replica.engine ``BatchingReplica`` over a ``PrefillScheduler`` and a ``TokenPool``: sim.replica.workers) and
links (sim.timing.node_io ``NodeIO``): the same events scheduled in the same program order on the compiled queue
(sim.engine.timed_events), so the same (time, priority, id) order, and the same floats - every per-request
result, busy time, byte count and histogram bin equal to the Python replay's (tests/engine/test_timed_node.py).
The Python path's chained hops (``succeed_last``, ``fire_last``) are plain queued events here: the order is the
same (sim.timing.event_loop).

What it covers (sim.engine.timed_run.refusal names what it does not): no host bridge, no session
prefetcher, no synchronous write-through, coalesced decode stretches, either preemption, load policy and
overlap.

State: ``E`` the event tables, ``L`` the links (sim.engine.timed_links: link w < n_workers is worker w's PCIe
in, n_workers + w its PCIe out, 2 n_workers the NVMe), ``WK`` the replicas, ``RQ`` the requests in flight (a
slot each from arrival to done; the replicas' queues are linked lists through them), ``ROWS`` a ring of result
rows the driver empties into the run's row blocks, ``X`` counters, ``C`` / ``CF`` constants.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.layout import LEN, tier_at
from sim.engine.slots import I64
from sim.engine.timed_events import (
    EV_CB,
    EV_CNT,
    EV_NCB,
    G_F,
    G_I,
    K_ALL_ONE,
    K_ARRIVALS,
    K_FIRE,
    K_FLUID_WAKE,
    K_JOIN,
    K_RESUME,
    K_THROUGH_FINISH,
    K_THROUGH_START,
    QN,
    URGENT,
    add_cb,
    new_event,
    pending,
    pop,
    release,
    room,
    schedule,
    succeed,
    timer,
)
from sim.engine.timed_links import READ, WRITE, estimate_s, most_jobs, serve, wake
from sim.engine.timed_ops import arrive, first_token
from sim.engine.timed_step import (
    choose_prefix3,
    decode_line,
    done_by,
    hist_add,
    hist_add_progression,
    iteration_s,
    ready_offset_s,
    span,
)
from sim.engine.unowned import unowned

F64 = np.float64

NAN = np.nan
_SLOT = (1 << 32) - 1

# C: int constants
C_NW, C_MAX_SEQS, C_BUDGET, C_POOL, C_OVERLAP_NONE, C_FASTER, C_SWAP, C_LAYERS, C_BT, C_N, C_EVERY, C_GROUP = range(12)
C_SIZE = 12
# CF: float constants
F_DRAM_LAT, F_SSD_LAT, F_BB, F_KVB, F_SWAP_BS = range(5)
F_SIZE = 5
# X: counters and driver state
(X_AI, X_D0, X_ARR_DONE, X_STOP, X_FLUSHED, X_REC_PREFIXES, X_REC_TOKENS, X_OCC_K, X_NRQ_FREE, X_GROW,
 X_ARR_WAITS, X_OCC_AT_START) = range(12)
X_SIZE = 12
# run's answers
DONE, PAUSE, GROW = 0, 1, 2
GROW_EVENTS, GROW_JOBS, GROW_REQUESTS, GROW_ROWS = 1, 2, 4, 8
# The most events one request makes in one callback: at arrival two load parts (their events and latency timers),
# an all-of, the first-of and its timer, two write-backs' wake-ups and the re-timed classes', its replica's start
# and wake-up (15); at its first token two write-backs and a wake-up (7). One callback handles at most a group of
# arrivals or a batch of first tokens (max_num_seqs), so `short` keeps that much room free before each event.
PER_REQUEST_EVENTS = 16
MARGIN = 64

# RQ = (RI int64[slots, RI_SIZE], RF float64[slots, RF_SIZE], free stack int64[slots])
(I_I, I_INP, I_OUT, I_POS0, I_WK, I_NPRE, I_CTX, I_LEFT, I_MEM, I_CACHED, I_TODO, I_DONE, I_PREEMPTED,
 I_NEEDS_MEM, I_USED, I_PREV, I_NEXT, I_LD_D, I_LD_S, I_THD_D, I_THD_S) = range(21)
RI_SIZE = 21
R_ARR, R_READY, R_PSTART, R_KV, R_EXTRA = range(5)
RF_SIZE = 5

# WK = (WI int64[workers, WI_SIZE], WF float64[workers, WF_SIZE], WB int64[workers, max_seqs + 1, 3],
#       LINES float64[max_seqs + 1, 3]: decode lines by batch (a, b, known))
(W_PC, W_WAKE, W_K, W_INCOMING, W_USED, W_PEAK, W_STARTED, W_LOAD_TOKENS, W_OUTSTANDING, W_BLEN, W_SB, W_SK,
 W_SKK, W_ITERS, W_STRETCHES, W_DEC_TOK, W_PRE_TOK, W_PREEMPTS, W_RECOMP_TOK, W_MAX_BATCH) = range(20)
# the replica's lists of request slots: (head, tail, length) from these columns
W_WAIT, W_ACT, W_DQ, W_RQ, W_RUN = 20, 23, 26, 29, 32
WI_SIZE = 35
WF_EXTRA, WF_DEBT, WF_T0, WF_T, WF_A, WF_B, WF_TOOK, WF_BUSY, WF_PBUSY, WF_DBUSY, WF_SWAP = range(11)
WF_SIZE = 11
PC_START, PC_DEBT, PC_IDLE, PC_ITER, PC_STRETCH, PC_TAIL = range(6)

# ROWS = (worker int64[cap], hit_blocks int64[cap, 3], hit_tokens int64[cap, 3], latencies float64[cap, 6]
#         (queue, load, prefill, ttft, tpot, e2e), recomputed_tokens int64[cap], done int64[cap]); request i at i % cap
L_QUEUE, L_LOAD, L_PREFILL, L_TTFT, L_TPOT, L_E2E = range(6)

# ST: a sim.engine.timed_state.TimedState: E, L, WK, RQ, ROWS, X, C, CF (above), STEP (sim.engine.timed_step's
# step array), HIST (timed_step.hist_arrays), W (arrival s, block offsets, input tokens, output tokens, session
# index), CACHE ((M, R, load, P, state) as sim.engine.timed_ops takes them), OCC (occupancy times, occupancy)


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
def _row(ST, i):
    return i % len(ST.ROWS[0])


@njit(cache=True)
def _finish(ST, s):
    """Request in slot s finished (sim.modes.single ``done``): its row, its worker's load, its slot."""
    RI, RF, free = ST.RQ
    now = ST.E[G_F][0]
    rw, _hb, _ht, lat, _rec, rdone = ST.ROWS
    i = RI[s, I_I]
    p = _row(ST, i)
    n_out = RI[s, I_OUT]
    lat[p, L_TPOT] = (now - RF[s, R_KV]) / (n_out - 1) if n_out > 1 else 0.0
    lat[p, L_E2E] = now - RF[s, R_ARR]
    ST.CACHE[2][rw[p]] -= 1
    rdone[p] = 1
    X = ST.X
    free[X[X_NRQ_FREE]] = s
    X[X_NRQ_FREE] += 1


@njit(cache=True)
def _write_back(ST, wk, h2d, d2s):
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
    _write_back(ST, w, h2d, d2s)
    RF[s, R_KV] = now
    lat = ST.ROWS[3]
    p = _row(ST, i)
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


# ------------------------------------------------------------------ requests: arrival, load, join

@njit(cache=True)
def _submit(ST, w, s):
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


@njit(cache=True)
def _join_request(ST, s):
    """sim.modes.single ``join``: the load is in (or far enough for the layer-wise overlap)."""
    RI, RF = ST.RQ[0], ST.RQ[1]
    now = ST.E[G_F][0]
    i = RI[s, I_I]
    ST.ROWS[3][_row(ST, i), L_LOAD] = now - RF[s, R_ARR]
    n_in = RI[s, I_INP]
    RI[s, I_CACHED] = max(0, min(RI[s, I_USED], n_in - 1))
    _submit(ST, RI[s, I_WK], s)


@njit(cache=True)
def _through_start(ST, s, path):
    """A load part's transfer starts (priority_link.through's ``start``, one read hop)."""
    E, L, C, CF = ST.E, ST.L, ST.C, ST.CF
    RI = ST.RQ[0]
    bb = int(CF[F_BB])
    if path == 0:
        ev = serve(E, L, RI[s, I_WK], I64(READ), float(RI[s, I_LD_D] * bb), np.bool_(True))
        add_cb(E, ev, I64(K_THROUGH_FINISH), RI[s, I_THD_D], I64(0))
    else:
        ev = serve(E, L, 2 * C[C_NW], I64(READ), float(RI[s, I_LD_S] * bb), np.bool_(True))
        add_cb(E, ev, I64(K_THROUGH_FINISH), RI[s, I_THD_S], I64(0))


@njit(cache=True)
def _through(ST, s, path, latency):
    """``priority_link.through`` of a load part after `latency`: its completion event."""
    E = ST.E
    RI = ST.RQ[0]
    done = new_event(E)
    RI[s, I_THD_D if path == 0 else I_THD_S] = done
    if latency > 0:
        h = timer(E, latency)
        add_cb(E, h, I64(K_THROUGH_START), s, path)
    else:
        _through_start(ST, s, path)
    return done


@njit(cache=True)
def _request(ST, i):
    """Request i arrives (sim.modes.single ``request``): route, look up, fetch, start the load."""
    E, L, C, CF = ST.E, ST.L, ST.C, ST.CF
    RI, RF, free = ST.RQ
    X = ST.X
    arr_s, offs, inp, out, sess_idx = ST.W
    M, R, load, P, _state = ST.CACHE
    rw, rhb, rht, _lat, rrec, _rdone = ST.ROWS
    now = E[G_F][0]
    lo = offs[i]
    n_in = inp[i]
    p = _row(ST, i)
    wk, npre, th, td, ts, d2h, s2h, h2d, d2s = arrive(M, R, load, i, sess_idx[i], P, lo, (rw, rhb, rht), p,
                                                      C[C_BT], n_in)
    X[X_NRQ_FREE] -= 1
    s = free[X[X_NRQ_FREE]]
    RI[s, :] = 0
    RI[s, I_I], RI[s, I_INP], RI[s, I_OUT], RI[s, I_POS0], RI[s, I_WK], RI[s, I_NPRE] = i, n_in, out[i], lo, wk, npre
    RI[s, I_PREV], RI[s, I_NEXT] = -1, -1
    RF[s, R_ARR], RF[s, R_READY], RF[s, R_PSTART], RF[s, R_KV], RF[s, R_EXTRA] = now, NAN, NAN, NAN, 0.0
    done = -1
    load_s = F64(0.0)
    pre = F64(0.0)
    recomputed = 0
    if td == 0 and ts == 0 and d2h == 0 and s2h == 0:  # load_policy.hbm_only: nothing to load
        RI[s, I_USED] = th
    else:
        bb = int(CF[F_BB])
        tokens = np.empty(3, dtype=np.int64)
        loads = np.zeros(3)
        tokens[0], tokens[1], tokens[2] = th, td, ts
        loads[1] = estimate_s(L, wk, d2h * bb, CF[F_DRAM_LAT])
        loads[2] = estimate_s(L, 2 * C[C_NW], s2h * bb, CF[F_SSD_LAT])
        k, used, recomputed, load_s, pre, _done_s = choose_prefix3(ST.STEP, tokens, loads, n_in, C[C_LAYERS],
                                                                  C[C_OVERLAP_NONE] != 0, C[C_FASTER] != 0)
        RI[s, I_USED] = used
        if recomputed > 0:
            X[X_REC_PREFIXES] += 1
            X[X_REC_TOKENS] += recomputed
        nd = d2h if k >= 2 else 0
        ns = s2h if k >= 3 else 0
        RI[s, I_LD_D], RI[s, I_LD_S] = nd, ns
        ev_d = _through(ST, s, I64(0), CF[F_DRAM_LAT]) if nd else -1
        ev_s = _through(ST, s, I64(1), CF[F_SSD_LAT]) if ns else -1
        if ev_d != -1 and ev_s != -1:  # node_io.all_done
            done = new_event(E)
            E[EV_CNT][done & _SLOT] = 2
            add_cb(E, ev_d, I64(K_ALL_ONE), done, I64(0))
            add_cb(E, ev_s, I64(K_ALL_ONE), done, I64(0))
        else:
            done = ev_d if ev_d != -1 else ev_s
    rrec[p] = recomputed
    _write_back(ST, wk, h2d, d2s)
    if done == -1:  # PrefixLoad.ready: nothing loading
        _join_request(ST, s)
    elif C[C_OVERLAP_NONE]:
        add_cb(E, done, I64(K_JOIN), s, I64(0))
    else:  # first of the load and the layer-wise ready time (first_of(..., last=True))
        early = ready_offset_s(load_s, pre, C[C_LAYERS], np.bool_(False))
        h = timer(E, early)
        first = new_event(E)
        add_cb(E, done, I64(K_FIRE), first, I64(0))
        add_cb(E, h, I64(K_FIRE), first, I64(0))
        add_cb(E, first, I64(K_JOIN), s, I64(0))


@njit(cache=True)
def _sample(ST):
    """Occupancy of the tiers now (sim.modes.single ``_sample``)."""
    M = unowned(ST.CACHE[0])
    occ_t, occ = ST.OCC
    X = ST.X
    nw = ST.C[C_NW]
    k = X[X_OCC_K]
    occ_t[k] = ST.E[G_F][0]
    h = 0
    for w in range(nw):
        h += M[tier_at(w) + LEN]
    occ[k, 0], occ[k, 1], occ[k, 2] = h, M[tier_at(nw) + LEN], M[tier_at(nw + 1) + LEN]
    X[X_OCC_K] = k + 1


@njit(cache=True)
def _arrivals(ST):
    """The arrivals process from where it waited: the requests due at an instant are handled after the timer
    to the next arrival is scheduled (sim.modes.single ``arrivals``)."""
    E = ST.E
    X, C = ST.X, ST.C
    arr_s = ST.W[0]
    n, every = C[C_N], C[C_EVERY]
    while True:
        i = X[X_AI]
        if i == n:
            for j in range(X[X_D0], n):
                _request(ST, j)
            X[X_D0] = n
            X[X_ARR_DONE] = 1
            return
        dt = arr_s[i] - E[G_F][0]
        if dt > 0:
            h = timer(E, dt)
            for j in range(X[X_D0], i):
                _request(ST, j)
            X[X_D0] = i
            add_cb(E, h, I64(K_ARRIVALS), I64(0), I64(0))
            X[X_ARR_WAITS] += 1
            return
        if i % every == 0:
            _sample(ST)
            if X[X_ARR_WAITS] == 0:  # SimPy's clock is still its initial int 0 (the driver reports it so)
                X[X_OCC_AT_START] += 1
        X[X_AI] = i + 1


@njit(cache=True)
def dispatch(ST, kind, a, b):
    """Run one callback."""
    E = ST.E
    if kind == K_RESUME:
        resume(ST, a)
    elif kind == K_FLUID_WAKE:
        wake(E, ST.L, a, b)
    elif kind == K_ARRIVALS:
        _arrivals(ST)
    elif kind == K_FIRE:
        if pending(E, a):
            succeed(E, a)
    elif kind == K_JOIN:
        _join_request(ST, a)
    elif kind == K_THROUGH_START:
        _through_start(ST, a, b)
    elif kind == K_THROUGH_FINISH:
        succeed(E, a)
    elif kind == K_ALL_ONE:
        cnt = E[EV_CNT]
        cnt[a & _SLOT] -= 1
        if cnt[a & _SLOT] == 0:
            succeed(E, a)


@njit(cache=True)
def start(ST):
    """The arrivals process starts at time 0 (SimPy's Initialize: URGENT)."""
    E = ST.E
    h = new_event(E)
    add_cb(E, h, I64(K_ARRIVALS), I64(0), I64(0))
    schedule(E, h, F64(0.0), I64(URGENT))


@njit(cache=True)
def short(ST):
    """What must grow before the next event (GROW_* bits; 0: room for anything the next one does)."""
    E, L, X, C = ST.E, ST.L, ST.X, ST.C
    g = C[C_GROUP]
    most = g + C[C_MAX_SEQS]  # requests one callback can touch
    need = 0
    per = PER_REQUEST_EVENTS * most + MARGIN
    if not room(E, per, per):
        need |= GROW_EVENTS
    if most_jobs(L) + 2 * most + 8 > L[2].shape[1]:  # a write-back a request on a class (and a load)
        need |= GROW_JOBS
    if X[X_NRQ_FREE] < g + 1:
        need |= GROW_REQUESTS
    if X[X_AI] + g + 1 > X[X_FLUSHED] + len(ST.ROWS[0]):
        need |= GROW_ROWS
    return need


@njit(cache=True)
def run(ST):
    """Process events until the queue is empty (DONE), the arrivals reach X_STOP (PAUSE) or something must grow
    (GROW, the bits in X_GROW)."""
    E, X = ST.E, ST.X
    gi, ncb, cbs = E[G_I], E[EV_NCB], E[EV_CB]
    ka = np.zeros(3, dtype=np.int64)
    aa = np.zeros(3, dtype=np.int64)
    ba = np.zeros(3, dtype=np.int64)
    while gi[QN] > 0:
        if X[X_AI] >= X[X_STOP] and not X[X_ARR_DONE]:
            return PAUSE
        need = short(ST)
        if need:
            X[X_GROW] = need
            return GROW
        h = pop(E)
        s = h & _SLOT
        n = ncb[s]
        for j in range(n):  # SimPy takes the callbacks before running them
            ka[j], aa[j], ba[j] = cbs[s, j, 0], cbs[s, j, 1], cbs[s, j, 2]
        release(E, h)
        for j in range(n):
            dispatch(ST, ka[j], aa[j], ba[j])
    return DONE
