"""The timed single-node replay's event model, compiled: arrivals, loads, dispatch, in SimPy's order.

The compiled twin of sim.modes.single ``_run_timed`` on the compiled cache (``fast``): the arrivals process,
each request's route / lookup / fetch (sim.engine.timed_ops), its load-or-recompute choice and its DRAM / SSD
loads and write-backs over the links (sim.timing.node_io ``NodeIO``: sim.engine.timed_links), its join to its
worker's replica (sim.engine.timed_replica), and ``run``, which pops the compiled queue (sim.engine.timed_events)
and dispatches each event's callbacks. The same events are scheduled in the same program order, so they come
off in the same (time, priority, id) order, and the same floats are computed - every per-request result, busy
time, byte count and histogram bin equal to the Python replay's (tests/engine/test_timed_node.py). The Python
path's chained hops (``succeed_last``, ``fire_last``) are plain queued events here: the order is the same
(sim.timing.event_loop).

What it covers (sim.engine.timed_run.refusal names what it does not): no host bridge, no session prefetcher,
no synchronous write-through, coalesced decode stretches, either preemption, load policy and overlap. The
state's arrays and their columns: sim.engine.timed_layout.
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
    SLOT,
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
from sim.engine.timed_layout import (
    C_BT,
    C_EVERY,
    C_FASTER,
    C_GROUP,
    C_LAYERS,
    C_MAX_SEQS,
    C_N,
    C_NW,
    C_OVERLAP_NONE,
    DONE,
    F_BB,
    F_DRAM_LAT,
    F_SSD_LAT,
    GROW,
    GROW_EVENTS,
    GROW_JOBS,
    GROW_REQUESTS,
    GROW_ROWS,
    I_CACHED,
    I_I,
    I_INP,
    I_LD_D,
    I_LD_S,
    I_NEXT,
    I_NPRE,
    I_OUT,
    I_POS0,
    I_PREV,
    I_THD_D,
    I_THD_S,
    I_USED,
    I_WK,
    L_LOAD,
    MARGIN,
    NAN,
    PAUSE,
    PER_REQUEST_EVENTS,
    R_ARR,
    R_EXTRA,
    R_KV,
    R_PSTART,
    R_READY,
    X_AI,
    X_ARR_DONE,
    X_ARR_WAITS,
    X_D0,
    X_FLUSHED,
    X_GROW,
    X_NRQ_FREE,
    X_OCC_AT_START,
    X_OCC_K,
    X_REC_PREFIXES,
    X_REC_TOKENS,
    X_STOP,
)
from sim.engine.timed_links import READ, estimate_s, most_jobs, serve, wake
from sim.engine.timed_ops import arrive
from sim.engine.timed_replica import resume, row_of, submit, write_back
from sim.engine.timed_step import (
    choose_prefix3,
    ready_offset_s,
)
from sim.engine.unowned import unowned

F64 = np.float64




# ------------------------------------------------------------------ requests: arrival, load, join
@njit(cache=True)
def _join_request(ST, s):
    """sim.modes.single ``join``: the load is in (or far enough for the layer-wise overlap)."""
    RI, RF = ST.RQ[0], ST.RQ[1]
    now = ST.E[G_F][0]
    i = RI[s, I_I]
    ST.ROWS[3][row_of(ST, i), L_LOAD] = now - RF[s, R_ARR]
    n_in = RI[s, I_INP]
    RI[s, I_CACHED] = max(0, min(RI[s, I_USED], n_in - 1))
    submit(ST, RI[s, I_WK], s)


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
    p = row_of(ST, i)
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
            E[EV_CNT][done & SLOT] = 2
            add_cb(E, ev_d, I64(K_ALL_ONE), done, I64(0))
            add_cb(E, ev_s, I64(K_ALL_ONE), done, I64(0))
        else:
            done = ev_d if ev_d != -1 else ev_s
    rrec[p] = recomputed
    write_back(ST, wk, h2d, d2s)
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
        cnt[a & SLOT] -= 1
        if cnt[a & SLOT] == 0:
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
        s = h & SLOT
        n = ncb[s]
        for j in range(n):  # SimPy takes the callbacks before running them
            ka[j], aa[j], ba[j] = cbs[s, j, 0], cbs[s, j, 1], cbs[s, j, 2]
        release(E, h)
        for j in range(n):
            dispatch(ST, ka[j], aa[j], ba[j])
    return DONE
