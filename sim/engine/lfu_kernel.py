"""LFU in O(1): frequency buckets in increasing order, LRU order inside a bucket.

Mirrors sim/policies/lfu.py (evict the oldest key of the lowest frequency;
a hit moves the key to the young end of the next frequency; insert = 1).
Buckets are 5-word records in the tier's auxiliary region, linked in
frequency order; a slot's HIDX holds its bucket. A tier has slots + 2
bucket records (a touch creates the next bucket before the old one can
empty). The tier record's HEAD fields hold the lowest bucket and the free
bucket list (LFU uses no slot lists).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine import slots
from sim.engine.layout import FREQ, HEAD, HEAPBASE, HIDX, LEN, LIST, NSLOTS, tier_at
from sim.engine.slots import I64, PREV
from sim.engine.tier_slots import new_slot, retire

B_FREQ, B_HEAD, B_TAIL, B_PREV, B_NEXT = range(5)  # B_HEAD, B_TAIL: the bucket's slot list anchor
B_WORDS = 5
LOW = HEAD  # tier field: the lowest-frequency bucket, -1 none
BFREE = HEAD + 1  # tier field: first free bucket record


def aux_words(nslots: int) -> int:
    return B_WORDS * (nslots + 2) if nslots else 0


def init_buckets(M: np.ndarray, t: int) -> None:
    """Chain tier t's bucket records into its free list."""
    a = int(tier_at(t))
    n = int(M[a + NSLOTS])
    if not n:
        return
    recs = M[a + HEAPBASE] + B_WORDS * np.arange(n + 2, dtype=np.int64)
    M[recs[:-1] + B_NEXT] = recs[1:]
    M[recs[-1] + B_NEXT] = -1
    M[a + BFREE] = recs[0]
    M[a + LOW] = -1


@njit(cache=True)
def _bucket_new(M, t, f, after):
    """A bucket of frequency f linked after bucket `after` (-1: at the front)."""
    a = tier_at(t)
    b = M[a + BFREE]
    M[a + BFREE] = M[b + B_NEXT]
    M[b + B_FREQ] = f
    M[b + B_HEAD] = -1
    M[b + B_TAIL] = -1
    if after < 0:
        nxt = M[a + LOW]
        M[a + LOW] = b
    else:
        nxt = M[after + B_NEXT]
        M[after + B_NEXT] = b
    M[b + B_PREV] = after
    M[b + B_NEXT] = nxt
    if nxt >= 0:
        M[nxt + B_PREV] = b
    return b


@njit(cache=True)
def _join(M, b, s):
    slots.link_back(M, s, M, b + B_HEAD, PREV)
    M[s + HIDX] = b


@njit(cache=True)
def _leave(M, t, s):
    """Unlink s from its bucket; an emptied bucket goes back to the free list."""
    b = M[s + HIDX]
    slots.unlink(M, s, M, b + B_HEAD, PREV)
    if M[b + B_HEAD] < 0:
        a = tier_at(t)
        bp, bn = M[b + B_PREV], M[b + B_NEXT]
        if bp >= 0:
            M[bp + B_NEXT] = bn
        else:
            M[a + LOW] = bn
        if bn >= 0:
            M[bn + B_PREV] = bp
        M[b + B_NEXT] = M[a + BFREE]
        M[a + BFREE] = b


@njit(cache=True)
def lfu_insert(M, t, key, pos):
    a = tier_at(t)
    s = new_slot(M, t, key, pos)
    M[s + LIST] = 0
    M[s + FREQ] = 1
    b = M[a + LOW]
    if b < 0 or M[b + B_FREQ] != 1:
        b = _bucket_new(M, t, I64(1), I64(-1))
    _join(M, b, s)
    M[a + LEN] += 1


@njit(cache=True)
def lfu_touch(M, t, s):
    b = M[s + HIDX]
    f = M[s + FREQ] + 1
    nb = M[b + B_NEXT]
    if nb < 0 or M[nb + B_FREQ] != f:
        nb = _bucket_new(M, t, f, b)
    _leave(M, t, s)
    _join(M, nb, s)
    M[s + FREQ] = f


@njit(cache=True)
def lfu_victim(M, t):
    s = M[M[tier_at(t) + LOW] + B_HEAD]
    _leave(M, t, s)
    return retire(M, t, s)


@njit(cache=True)
def lfu_remove(M, t, s):
    _leave(M, t, s)
    retire(M, t, s)
