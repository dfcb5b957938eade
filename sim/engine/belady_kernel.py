"""Belady's MIN: evict the resident key used farthest in the future.

Mirrors sim/policies/belady.py: keys never used again (next use NEVER) sit
on the dead list (list 0, the one that became dead earliest leaves first);
live keys sit in a 4-ary heap ordered by (-next use, key) in the tier's
auxiliary region, entries of 3 words [-next_use, key, slot] so sifting reads
the heap alone; a live slot has LIST = 1 and HIDX = its entry index.
"""
from __future__ import annotations

from numba import njit

from sim.engine.layout import HEAPBASE, HEAPLEN, HIDX, LEN, LIST, NEVER, SIZE, next_use_at, tier_at
from sim.engine.slots import KEY
from sim.engine.tier_slots import new_slot, pop_front, push_back, retire, unlink

E_WORDS = 3
DEAD, LIVE = 0, 1


def aux_words(nslots: int) -> int:
    return E_WORDS * nslots


@njit(cache=True, inline="always")
def _less(p1, p2, q1, q2):
    return p1 < q1 or (p1 == q1 and p2 < q2)


@njit(cache=True)
def _place(M, base, i, p1, p2, s):
    e = base + E_WORDS * i
    M[e] = p1
    M[e + 1] = p2
    M[e + 2] = s
    M[s + HIDX] = i


@njit(cache=True)
def _sift(M, base, n, i, p1, p2, s):
    """Put entry (p1, p2, s) into the hole at index i of a heap of n entries.

    4-ary: half the depth of a binary heap, and a node's children share two
    cache lines.
    """
    while i > 0:  # up
        parent = (i - 1) >> 2
        e = base + E_WORDS * parent
        if not _less(p1, p2, M[e], M[e + 1]):
            break
        _place(M, base, i, M[e], M[e + 1], M[e + 2])
        i = parent
    while True:  # down
        c = 4 * i + 1
        if c >= n:
            break
        best = c
        eb = base + E_WORDS * c
        for k in range(c + 1, min(c + 4, n)):
            ek = base + E_WORDS * k
            if _less(M[ek], M[ek + 1], M[eb], M[eb + 1]):
                best, eb = k, ek
        if not _less(M[eb], M[eb + 1], p1, p2):
            break
        _place(M, base, i, M[eb], M[eb + 1], M[eb + 2])
        i = best
    _place(M, base, i, p1, p2, s)


@njit(cache=True)
def _heap_add(M, t, s, nu):
    a = tier_at(t)
    n = M[a + HEAPLEN] + 1
    M[a + HEAPLEN] = n
    M[s + LIST] = LIVE
    _sift(M, M[a + HEAPBASE], n, n - 1, -nu, M[s + KEY], s)


@njit(cache=True)
def _heap_delete(M, t, s):
    a = tier_at(t)
    base = M[a + HEAPBASE]
    n = M[a + HEAPLEN] - 1
    M[a + HEAPLEN] = n
    i = M[s + HIDX]
    if i != n:
        e = base + E_WORDS * n
        _sift(M, base, n, i, M[e], M[e + 1], M[e + 2])
    M[s + LIST] = -1


@njit(cache=True)
def _leave(M, t, s):
    if M[s + LIST] == DEAD:
        unlink(M, t, s)
    else:
        _heap_delete(M, t, s)


@njit(cache=True)
def belady_insert(M, t, key, pos):
    s = new_slot(M, t, key, pos)
    nu = next_use_at(M, pos)
    if nu == NEVER:
        push_back(M, t, DEAD, s)
    else:
        _heap_add(M, t, s, nu)
    M[tier_at(t) + LEN] += 1


@njit(cache=True)
def belady_touch(M, t, s, pos):
    nu = next_use_at(M, pos)
    if M[s + LIST] == LIVE and nu != NEVER:
        a = tier_at(t)
        _sift(M, M[a + HEAPBASE], M[a + HEAPLEN], M[s + HIDX], -nu, M[s + KEY], s)
        return
    _leave(M, t, s)
    if nu == NEVER:
        push_back(M, t, DEAD, s)  # (again) the youngest dead key
    else:
        _heap_add(M, t, s, nu)


@njit(cache=True)
def belady_victim(M, t):
    a = tier_at(t)
    if M[a + SIZE + DEAD] > 0:
        s = pop_front(M, t, DEAD)
    else:
        s = M[M[a + HEAPBASE] + 2]
        _heap_delete(M, t, s)
    return retire(M, t, s)


@njit(cache=True)
def belady_remove(M, t, s):
    _leave(M, t, s)
    retire(M, t, s)
