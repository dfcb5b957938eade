"""Belady's MIN: evict the resident key used farthest in the future.

Mirrors sim/policies/belady.py: priority (-next use, key), smallest first,
so ties (e.g. keys never used again) go to the smaller key. An indexed
4-ary heap in the tier's auxiliary region; entries are 3 words
[-next_use, key, slot] so sifting reads the heap alone; a slot's HIDX is
its entry index. Resident slots carry LIST = 0 as a flag.
"""
from __future__ import annotations

from numba import njit

from sim.engine.layout import HEAPBASE, HEAPLEN, HIDX, KEY, LEN, LIST, NU_BASE, POS, tier_at
from sim.engine.slots import drop_slot, new_slot

E_WORDS = 3


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

    A 4-ary heap: half the depth of a binary one, and a node's children
    share two cache lines, which matters for the SSD tier's thousands of
    entries (every new block pops a victim there).
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
def belady_insert(M, t, key, pos):
    a = tier_at(t)
    s = new_slot(M, t, key, pos)
    M[s + LIST] = 0
    n = M[a + HEAPLEN] + 1
    M[a + HEAPLEN] = n
    _sift(M, M[a + HEAPBASE], n, n - 1, -M[M[NU_BASE] + pos], key, s)
    M[a + LEN] += 1


@njit(cache=True)
def belady_touch(M, t, s, pos):
    a = tier_at(t)
    _sift(M, M[a + HEAPBASE], M[a + HEAPLEN], M[s + HIDX], -M[M[NU_BASE] + pos], M[s + KEY], s)


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


@njit(cache=True)
def belady_victim(M, t):
    s = M[M[tier_at(t) + HEAPBASE] + 2]
    _heap_delete(M, t, s)
    key, pos = M[s + KEY], M[s + POS]
    drop_slot(M, t, s)
    M[tier_at(t) + LEN] -= 1
    return key, pos


@njit(cache=True)
def belady_remove(M, t, s):
    _heap_delete(M, t, s)
    drop_slot(M, t, s)
    M[tier_at(t) + LEN] -= 1
