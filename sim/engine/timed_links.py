"""The node's links, compiled: ``sim.timing.priority_link.PriorityLink`` and its ``FluidShare`` classes as arrays.

The compiled timed single-node replay's twin of the Python links (sim.timing.fluid, sim.timing.priority_link),
the same floats in the same order: a class is a processor-sharing server with a virtual clock, its jobs a heap
on (virtual finish, sequence), one wake-up queued at its next finish (superseded ones stay queued and call
nobody, as there). Link l's classes are ``3 l + READ``, ``+ WRITE``, ``+ PREFETCH`` (the prefetch class only
pauses and resumes here: no session prefetcher runs on the compiled path). ``L`` holds the arrays:

* ``LF`` float64[classes, 6]: virtual clock, its last update, load, per-job rate, busy seconds, served;
* ``LI`` int64[classes, 3]: jobs, the next sequence number, the live wake-up's handle (-1: none);
* ``HV`` float64[classes, cap], ``HS`` / ``HE`` int64[classes, cap]: the job heaps (finish, sequence, the
  completion event's handle or -1 for a job nobody waits for);
* ``LP`` float64[links, 4]: read and write bytes/s, the write-back share, contention (1.0) or not;
* ``LB`` float64[links, 3]: bytes per direction (read, write, prefetch), as ``PriorityLink.bytes``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.slots import I64
from sim.engine.timed_events import G_F, K_FLUID_WAKE, NORMAL, add_cb, clear_cbs, new_event, schedule, succeed

READ, WRITE, PREFETCH = 0, 1, 2

LF, LI, HV, HS, HE, LP, LB = 0, 1, 2, 3, 4, 5, 6
# LF's columns
V, T, LOAD, R, BUSY, SERVED = 0, 1, 2, 3, 4, 5
# LI's columns
N, SEQ, TIMER = 0, 1, 2


def links(params: np.ndarray, cap: int = 64) -> tuple:
    """The arrays of links with `params` rows (read bytes/s, write bytes/s, share, contention 0/1)."""
    n = len(params) * 3
    li = np.zeros((n, 3), dtype=np.int64)
    li[:, TIMER] = -1
    return (np.zeros((n, 6)), li, np.zeros((n, cap)), np.zeros((n, cap), dtype=np.int64),
            np.zeros((n, cap), dtype=np.int64), np.ascontiguousarray(params, dtype=np.float64),
            np.zeros((len(params), 3)))


def grown(L: tuple, cap: int) -> tuple:
    """`L` with job heaps of `cap` entries."""
    lf, li, hv, hs, he, lp, lb = L
    n, old = hv.shape
    nv, ns, ne = np.zeros((n, cap)), np.zeros((n, cap), dtype=np.int64), np.zeros((n, cap), dtype=np.int64)
    nv[:, :old], ns[:, :old], ne[:, :old] = hv, hs, he
    return lf, li, nv, ns, ne, lp, lb


@njit(cache=True)
def most_jobs(L):
    """The most jobs any class holds (the driver keeps the heaps ahead of it)."""
    return L[LI][:, N].max()


@njit(cache=True)
def rate(L, c):
    """The per-job rate of class c at its current job count (PriorityLink's _read_rate, _write_rate,
    _prefetch_rate: the other classes' heaps decide the split)."""
    li, lp = L[LI], L[LP]
    link, kind = c // 3, c % 3
    base = 3 * link
    n = li[c, N]
    rb, wb, share, cont = lp[link, 0], lp[link, 1], lp[link, 2], lp[link, 3]
    if kind == READ:
        bw = rb * (1.0 - share) if li[base + WRITE, N] else rb
        return bw / n if cont else rb
    if kind == WRITE:
        bw = wb * share if li[base + READ, N] else wb
        return bw / n if cont else wb
    if li[base + READ, N] or li[base + WRITE, N]:
        return 0.0
    return rb / n if cont else rb


@njit(cache=True)
def rate_now(L, link, kind):
    """``PriorityLink.rate_now``: the bytes/s a transfer of this class starting now would get."""
    li, lp = L[LI], L[LP]
    rb, wb, share, cont = lp[link, 0], lp[link, 1], lp[link, 2], lp[link, 3]
    base = 3 * link
    if not cont:
        return rb if kind == READ else wb
    if kind == READ:
        bw = rb * (1.0 - share) if li[base + WRITE, N] else rb
        return bw / (li[base + READ, N] + 1)
    bw = wb * share if li[base + READ, N] else wb
    return bw / (li[base + WRITE, N] + 1)


@njit(cache=True)
def _push(L, c, v, seq, h):
    hv, hs, he = L[HV], L[HS], L[HE]
    li = L[LI]
    j = li[c, N]
    li[c, N] = j + 1
    while j > 0:
        p = (j - 1) >> 1
        if hv[c, p] < v or (hv[c, p] == v and hs[c, p] < seq):
            break
        hv[c, j], hs[c, j], he[c, j] = hv[c, p], hs[c, p], he[c, p]
        j = p
    hv[c, j], hs[c, j], he[c, j] = v, seq, h


@njit(cache=True)
def _pop(L, c):
    """Remove the first job of class c; its completion handle."""
    hv, hs, he = L[HV], L[HS], L[HE]
    li = L[LI]
    h = he[c, 0]
    n = li[c, N] - 1
    li[c, N] = n
    if n > 0:
        v, s, e = hv[c, n], hs[c, n], he[c, n]
        j = 0
        while True:
            k = 2 * j + 1
            if k >= n:
                break
            if k + 1 < n and (hv[c, k + 1] < hv[c, k] or (hv[c, k + 1] == hv[c, k] and hs[c, k + 1] < hs[c, k])):
                k += 1
            if v < hv[c, k] or (v == hv[c, k] and s < hs[c, k]):
                break
            hv[c, j], hs[c, j], he[c, j] = hv[c, k], hs[c, k], he[c, k]
            j = k
        hv[c, j], hs[c, j], he[c, j] = v, s, e
    return h


@njit(cache=True, inline="always")
def _advance(lf, c, n, now):
    """``FluidShare._advance``: class c (n jobs) served at its rate up to now."""
    dt = now - lf[c, T]
    if dt > 0 and n and lf[c, R] > 0:
        r = lf[c, R]
        lf[c, V] += r * dt
        lf[c, SERVED] += r * dt * n
        lf[c, BUSY] += dt
    lf[c, T] = now


@njit(cache=True)
def _reschedule(E, L, c):
    lf, li = L[LF], L[LI]
    old = li[c, TIMER]
    if old != -1:
        clear_cbs(E, old)  # superseded: it stays queued and calls nobody
    li[c, TIMER] = -1
    if li[c, N] == 0:
        return
    r = lf[c, R]
    if r <= 0:
        if c % 3 == PREFETCH:  # pausable
            return
        raise RuntimeError("FluidShare rate_fn returned a non-positive rate")
    delay = (L[HV][c, 0] - lf[c, V]) / r
    h = new_event(E)
    add_cb(E, h, I64(K_FLUID_WAKE), c, h)
    schedule(E, h, E[G_F][0] + (delay if delay > 0.0 else 0.0), I64(NORMAL))
    li[c, TIMER] = h


@njit(cache=True)
def retime(E, L, c):
    """``FluidShare.retime``: the rate changed for a reason outside class c."""
    lf, li = L[LF], L[LI]
    now = E[G_F][0]
    n = li[c, N]
    if n == 0:
        lf[c, T] = now
        lf[c, R] = 0.0
        li[c, TIMER] = -1
        return
    _advance(lf, c, n, now)
    lf[c, R] = rate(L, c)
    _reschedule(E, L, c)


@njit(cache=True)
def _changed(E, L, c):
    """PriorityLink's on_change of class c (read or write): re-time the other busy classes."""
    li = L[LI]
    base = c - c % 3
    kind = c % 3
    if kind == READ:
        if li[base + WRITE, N]:
            retime(E, L, base + WRITE)
        if li[base + PREFETCH, N]:
            retime(E, L, base + PREFETCH)
    elif kind == WRITE:
        if li[base + READ, N]:
            retime(E, L, base + READ)
        if li[base + PREFETCH, N]:
            retime(E, L, base + PREFETCH)


@njit(cache=True)
def join(E, L, c, size, h):
    """``FluidShare._join`` of a job of `size` (> 0) with completion event `h` (-1: nobody waits)."""
    lf, li = L[LF], L[LI]
    now = E[G_F][0]
    n = li[c, N]
    _advance(lf, c, n, now)
    seq = li[c, SEQ]
    li[c, SEQ] = seq + 1
    _push(L, c, lf[c, V] + size, seq, h)
    lf[c, LOAD] += 0.0  # every job here has load 0.0 (as FluidShare.serve's default)
    lf[c, R] = rate(L, c)
    _reschedule(E, L, c)
    if c % 3 != PREFETCH:
        _changed(E, L, c)


@njit(cache=True)
def serve(E, L, link, kind, nbytes, wait):
    """``PriorityLink.serve`` (`wait`: returns the completion event's handle) or ``serve_quiet`` (returns -1)."""
    L[LB][link, kind] += nbytes if nbytes > 0.0 else 0.0
    c = 3 * link + kind
    if not wait:
        if nbytes > 0:
            join(E, L, c, nbytes, I64(-1))
        return -1
    h = new_event(E)
    if nbytes <= 0:
        succeed(E, h)
        return h
    join(E, L, c, nbytes, h)
    return h


@njit(cache=True)
def wake(E, L, c, h):
    """``FluidShare._wake`` of class c by wake-up `h`: finish the jobs that are done, re-time."""
    lf, li = L[LF], L[LI]
    if h != li[c, TIMER]:
        return  # a newer arrival or departure rescheduled it
    now = E[G_F][0]
    n = li[c, N]
    _advance(lf, c, n, now)
    v = abs(lf[c, V])
    eps = 1e-9 * (v if v > 1.0 else 1.0)
    if n:
        tick = 4.0 * (np.nextafter(now, np.inf) - now) * lf[c, R]  # math.ulp(now) for now >= 0
        if tick > eps:
            eps = tick
    popped = False
    reached = lf[c, V] + eps
    hv = L[HV]
    while li[c, N] and hv[c, 0] <= reached:
        ev = _pop(L, c)
        lf[c, LOAD] -= 0.0
        if ev != -1:
            succeed(E, ev)
        popped = True
    if li[c, N] == 0:
        lf[c, LOAD] = 0.0
        if popped:
            lf[c, R] = 0.0
    elif popped:
        lf[c, R] = rate(L, c)
    _reschedule(E, L, c)
    if popped and c % 3 != PREFETCH:
        _changed(E, L, c)


@njit(cache=True)
def estimate_s(L, link, nbytes, latency_s):
    """``priority_link.estimate_s`` over one read hop: latency + bytes / the share it would get now."""
    if nbytes <= 0:
        return 0.0
    return latency_s + nbytes / rate_now(L, link, I64(READ))

