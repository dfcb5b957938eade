"""Slot bookkeeping of one node tier on the shared core (``sim.engine.slots``, ``sim.engine.hashtab``).

A tier record (``layout.tier_at``) holds the tier's free-list head, its hash
table and the anchors and sizes of its lists 0..3; a slot's LIST field names
the list it is on (-1 none).
"""
from __future__ import annotations

from numba import njit

from sim.engine import hashtab, slots
from sim.engine.layout import FREE, HBASE, HEAD, HMASK, LEN, LIST, SIZE, tier_at
from sim.engine.slots import KEY, POS, PREV


@njit(cache=True, inline="always")
def find(M, t, key):
    """Slot holding `key` in tier t (resident or ghost), or -1."""
    a = tier_at(t)
    return hashtab.find(M, M[a + HBASE], M[a + HMASK], key)


@njit(cache=True, inline="always")
def new_slot(M, t, key, pos):
    """Take a free slot of tier t for `key` and index it."""
    a = tier_at(t)
    s = slots.take_free(M, M, a + FREE)
    M[s + KEY] = key
    M[s + POS] = pos
    M[s + LIST] = -1
    hashtab.insert(M, M[a + HBASE], M[a + HMASK], key, s)
    return s


@njit(cache=True, inline="always")
def drop_slot(M, t, s):
    """Forget slot s (unindex it, return it to the free list); it must be on no list."""
    a = tier_at(t)
    hashtab.delete(M, M[a + HBASE], M[a + HMASK], M[s + KEY])
    M[s + LIST] = -1
    slots.give_free(M, s, M, a + FREE)


@njit(cache=True, inline="always")
def retire(M, t, s):
    """Resident slot s leaves tier t (a victim or a removal); returns its (key, pos)."""
    key, pos = M[s + KEY], M[s + POS]
    drop_slot(M, t, s)
    M[tier_at(t) + LEN] -= 1
    return key, pos


@njit(cache=True, inline="always")
def push_back(M, t, lst, s):
    """Append s at the young end of list `lst`."""
    a = tier_at(t)
    slots.link_back(M, s, M, a + HEAD + 2 * lst, PREV)
    M[s + LIST] = lst
    M[a + SIZE + lst] += 1


@njit(cache=True, inline="always")
def unlink(M, t, s):
    a = tier_at(t)
    lst = M[s + LIST]
    slots.unlink(M, s, M, a + HEAD + 2 * lst, PREV)
    M[a + SIZE + lst] -= 1
    M[s + LIST] = -1


@njit(cache=True, inline="always")
def pop_front(M, t, lst):
    """Unlink and return the oldest slot of list `lst` (it must be non-empty)."""
    s = M[tier_at(t) + HEAD + 2 * lst]
    unlink(M, t, s)
    return s


@njit(cache=True, inline="always")
def move_to_back(M, t, s):
    slots.to_back(M, s, M, tier_at(t) + HEAD + 2 * M[s + LIST], PREV)
