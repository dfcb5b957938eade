"""Slot bookkeeping of one tier: the free list and the linked lists.

Lists are intrusive (PREV/NEXT; LIST = list id, -1 on none) with head,
tail and size per (tier, list) in the tier record.
"""
from __future__ import annotations

from numba import njit

from sim.engine import hashtab
from sim.engine.layout import FREE, HEAD, KEY, LEN, LIST, NEXT, POS, PREV, SIZE, TAIL, tier_at


@njit(cache=True)
def new_slot(M, t, key, pos):
    """Take a free slot of tier t for `key` and index it."""
    a = tier_at(t)
    s = M[a + FREE]
    if s < 0:
        raise RuntimeError("kvsim engine: a tier ran out of slots (sizing bug)")
    M[a + FREE] = M[s + NEXT]
    M[s + KEY] = key
    M[s + POS] = pos
    M[s + LIST] = -1
    hashtab.insert(M, t, s)
    return s


@njit(cache=True)
def drop_slot(M, t, s):
    """Forget slot s (unindex it, return it to the free list); it must be on no list."""
    a = tier_at(t)
    hashtab.delete(M, t, M[s + KEY])
    M[s + LIST] = -1
    M[s + NEXT] = M[a + FREE]
    M[a + FREE] = s


@njit(cache=True)
def retire(M, t, s):
    """Resident slot s leaves tier t (a victim or a removal); returns its (key, pos)."""
    key, pos = M[s + KEY], M[s + POS]
    drop_slot(M, t, s)
    M[tier_at(t) + LEN] -= 1
    return key, pos


@njit(cache=True)
def push_back(M, t, lst, s):
    """Append s at the young end of list `lst`."""
    a = tier_at(t)
    tail = M[a + TAIL + lst]
    M[s + LIST] = lst
    M[s + NEXT] = -1
    M[s + PREV] = tail
    if tail >= 0:
        M[tail + NEXT] = s
    else:
        M[a + HEAD + lst] = s
    M[a + TAIL + lst] = s
    M[a + SIZE + lst] += 1


@njit(cache=True)
def unlink(M, t, s):
    a = tier_at(t)
    lst = M[s + LIST]
    p, n = M[s + PREV], M[s + NEXT]
    if p >= 0:
        M[p + NEXT] = n
    else:
        M[a + HEAD + lst] = n
    if n >= 0:
        M[n + PREV] = p
    else:
        M[a + TAIL + lst] = p
    M[a + SIZE + lst] -= 1
    M[s + LIST] = -1


@njit(cache=True)
def pop_front(M, t, lst):
    """Unlink and return the oldest slot of list `lst` (it must be non-empty)."""
    s = M[tier_at(t) + HEAD + lst]
    unlink(M, t, s)
    return s


@njit(cache=True)
def move_to_back(M, t, s):
    lst = M[s + LIST]
    if M[tier_at(t) + TAIL + lst] != s:
        unlink(M, t, s)
        push_back(M, t, lst, s)
