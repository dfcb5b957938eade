"""SimPy's event queue, compiled: the core of the compiled timed single-node replay (sim.engine.timed_node).

The same order as SimPy's: a heap of (time, priority, id) entries, ids from one counter in the order events are
scheduled, so two runs that schedule the same events in the same program order process them in the same order
(ids skipped by entries one run does not make only shift the others' ids, never their order).

An event is a slot in a table with up to ``MAX_CB`` callbacks, each (kind, a, b): what runs when it is processed
(``sim.engine.timed_node.dispatch`` reads the kinds). A handle is ``slot | generation << 32``: a slot is reused
once its event is processed, and a callback or a replica holding an old handle must see that event as processed,
not the slot's new one (``pending``). The tables are arrays in a tuple ``E``; they do not grow here - the driver
checks the room before each event (``room``) and grows them between calls (sim.engine.timed_run).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.slots import I64

URGENT = 0  # a process's start (SimPy's Initialize)
NORMAL = 1
MAX_CB = 3
SLOT = (1 << 32) - 1  # a handle's slot bits

# callback kinds (what sim.engine.timed_node.dispatch runs; a, b their arguments)
K_RESUME = 0  # a replica's process resumes: a = worker
K_FLUID_WAKE = 1  # a link class's wake-up: a = class, b = this wake-up's handle (sim.engine.timed_links)
K_ARRIVALS = 2  # the arrivals process resumes
K_FIRE = 3  # a first-of fires: a = its handle
K_JOIN = 4  # a request's load is in (or far enough): it joins its worker's prefill queue: a = request slot
K_THROUGH_START = 5  # a load's latency is over, its transfer starts: a = request slot, b = 0 DRAM / 1 SSD
K_THROUGH_FINISH = 6  # a transfer is served: a = the load part's event
K_ALL_ONE = 7  # one of an all-of's events: a = the all-of's handle

# E: the event tables
G_F = 0  # float64[1]: the clock (now)
G_I = 1  # int64[4]: counters
Q_T = 2  # float64[cap]: heap entries' times
Q_K = 3  # int64[cap, 3]: heap entries' (priority, id, handle)
EV_GEN = 4  # int64[slots]: each slot's generation
EV_STATE = 5  # int64[slots]: FREE, PENDING or TRIGGERED
EV_NCB = 6  # int64[slots]: callbacks
EV_CB = 7  # int64[slots, MAX_CB, 3]: (kind, a, b)
EV_CNT = 8  # int64[slots]: an all-of's events still to come
FREE_STACK = 9  # int64[slots]: the free slots

# G_I's counters
EID = 0
QN = 1  # heap entries
NFREE = 2  # free slots

FREE = 0
PENDING = 1
TRIGGERED = 2


def events(q_cap: int, slots: int) -> tuple:
    """Empty tables: `q_cap` heap entries, `slots` events."""
    gi = np.zeros(4, dtype=np.int64)
    gi[NFREE] = slots
    return (np.zeros(1), gi, np.zeros(q_cap), np.zeros((q_cap, 3), dtype=np.int64),
            np.zeros(slots, dtype=np.int64), np.zeros(slots, dtype=np.int64), np.zeros(slots, dtype=np.int64),
            np.zeros((slots, MAX_CB, 3), dtype=np.int64), np.zeros(slots, dtype=np.int64),
            np.arange(slots - 1, -1, -1, dtype=np.int64))


def grown(E: tuple, q_cap: int, slots: int) -> tuple:
    """`E` with room for `q_cap` heap entries and `slots` events (both at least the current ones)."""
    gf, gi, qt, qk, gen, state, ncb, cb, cnt, free = E
    n_old = len(gen)
    nq = np.zeros(q_cap)
    nq[:len(qt)] = qt
    nk = np.zeros((q_cap, 3), dtype=np.int64)
    nk[:len(qk)] = qk
    ng, ns, nn, nc, nt = (np.zeros(slots, dtype=np.int64) for _ in range(5))
    ng[:n_old], ns[:n_old], nn[:n_old], nt[:n_old] = gen, state, ncb, cnt
    ncb3 = np.zeros((slots, MAX_CB, 3), dtype=np.int64)
    ncb3[:n_old] = cb
    k = int(gi[NFREE])
    nf = np.zeros(slots, dtype=np.int64)
    nf[:k] = free[:k]
    added = np.arange(slots - 1, n_old - 1, -1, dtype=np.int64)
    nf[k:k + len(added)] = added
    gi = gi.copy()
    gi[NFREE] = k + len(added)
    return gf, gi, nq, nk, ng, ns, nn, ncb3, nt, nf


@njit(cache=True)
def room(E, entries, slots):
    """Whether `entries` more heap entries and `slots` more events fit."""
    gi = E[G_I]
    return gi[QN] + entries <= len(E[Q_T]) and gi[NFREE] >= slots


@njit(cache=True)
def new_event(E):
    """A pending event without callbacks; its handle."""
    gi, gen, state = E[G_I], E[EV_GEN], E[EV_STATE]
    k = gi[NFREE] - 1
    if k < 0:
        raise RuntimeError("timed_events: no free event slot (the driver checks the room)")
    s = E[FREE_STACK][k]
    gi[NFREE] = k
    gen[s] += 1
    state[s] = PENDING
    E[EV_NCB][s] = 0
    return s | (gen[s] << 32)


@njit(cache=True)
def pending(E, h):
    """Whether the event of handle `h` is pending (not triggered, not processed)."""
    s = h & SLOT
    return E[EV_GEN][s] == h >> 32 and E[EV_STATE][s] == PENDING


@njit(cache=True)
def add_cb(E, h, kind, a, b):
    s = h & SLOT
    n = E[EV_NCB][s]
    if n >= MAX_CB:
        raise RuntimeError("timed_events: too many callbacks on one event")
    cb = E[EV_CB]
    cb[s, n, 0], cb[s, n, 1], cb[s, n, 2] = kind, a, b
    E[EV_NCB][s] = n + 1


@njit(cache=True)
def clear_cbs(E, h):
    """A scheduled event that will call nobody (a superseded wake-up: it stays in the queue)."""
    s = h & SLOT
    if E[EV_GEN][s] == h >> 32:
        E[EV_NCB][s] = 0


@njit(cache=True, inline="always")
def _before(t1, p1, e1, t2, p2, e2):
    """Entry (t1, p1, e1) comes off the queue before (t2, p2, e2): SimPy's (time, priority, id) order."""
    return t1 < t2 or (t1 == t2 and (p1 < p2 or (p1 == p2 and e1 < e2)))


@njit(cache=True, inline="always")
def _move(qt, qk, dst, src):
    qt[dst] = qt[src]
    qk[dst, 0], qk[dst, 1], qk[dst, 2] = qk[src, 0], qk[src, 1], qk[src, 2]


@njit(cache=True, inline="always")
def _put(qt, qk, j, t, prio, eid, h):
    qt[j] = t
    qk[j, 0], qk[j, 1], qk[j, 2] = prio, eid, h


@njit(cache=True)
def schedule(E, h, t, prio):
    """Trigger event `h` at time t: a heap entry with the next id."""
    gi, qt, qk = E[G_I], E[Q_T], E[Q_K]
    E[EV_STATE][h & SLOT] = TRIGGERED
    eid = gi[EID]
    gi[EID] = eid + 1
    j = gi[QN]
    if j >= len(qt):
        raise RuntimeError("timed_events: the event heap is full (the driver checks the room)")
    gi[QN] = j + 1
    while j > 0:  # sift up
        p = (j - 1) >> 1
        if _before(qt[p], qk[p, 0], qk[p, 1], t, prio, eid):
            break
        _move(qt, qk, j, p)
        j = p
    _put(qt, qk, j, t, prio, eid, h)


@njit(cache=True)
def succeed(E, h):
    """``event.succeed()``: scheduled now, NORMAL."""
    if not pending(E, h):
        raise RuntimeError("timed_events: succeed on an event already triggered")
    schedule(E, h, E[G_F][0], I64(NORMAL))


@njit(cache=True)
def timer(E, delay):
    """``env.timeout(delay)`` (delay >= 0): a new event scheduled at now + delay; its handle."""
    h = new_event(E)
    schedule(E, h, E[G_F][0] + delay, I64(NORMAL))
    return h


@njit(cache=True)
def pop(E):
    """Take the next entry: the clock moves to its time; returns its handle (the event stays TRIGGERED until
    ``release``)."""
    gi, qt, qk = E[G_I], E[Q_T], E[Q_K]
    n = gi[QN] - 1
    E[G_F][0] = qt[0]
    h = qk[0, 2]
    gi[QN] = n
    if n > 0:  # the last entry sifts down from the root
        t, p0, e0, h0 = qt[n], qk[n, 0], qk[n, 1], qk[n, 2]
        j = 0
        while True:
            c = 2 * j + 1
            if c >= n:
                break
            if c + 1 < n and _before(qt[c + 1], qk[c + 1, 0], qk[c + 1, 1], qt[c], qk[c, 0], qk[c, 1]):
                c += 1
            if _before(t, p0, e0, qt[c], qk[c, 0], qk[c, 1]):
                break
            _move(qt, qk, j, c)
            j = c
        _put(qt, qk, j, t, p0, e0, h0)
    return h


@njit(cache=True)
def release(E, h):
    """Event `h` is processed: its slot is free for a new event (old handles read it as processed)."""
    s = h & SLOT
    E[EV_STATE][s] = FREE
    gi = E[G_I]
    E[FREE_STACK][gi[NFREE]] = s
    gi[NFREE] += 1
