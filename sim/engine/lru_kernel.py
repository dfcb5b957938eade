"""LRU's list and its relatives (fifo, session_prefetch, selective_write).

Mirrors sim/policies/lru.py, fifo.py, session_prefetch.py and
selective_write.py: one recency list (list 0, oldest first); FIFO ignores
hits; selective_write adds the admission filter over a reuse history shared
by the node's tiers (the pseudo-tier NW + 2), trimmed to the calling tier's
``history`` (PARAM_A) by one entry per sighting, as the Python policy does.
"""
from __future__ import annotations

from numba import njit

from sim.engine.layout import LEN, NW, PARAM_A, PARAM_C, SIZE, depth_at, tier_at
from sim.engine.slots import KEY
from sim.engine.tier_slots import drop_slot, find, move_to_back, new_slot, pop_front, push_back, retire, unlink


@njit(cache=True)
def lru_insert(M, t, key, pos):
    push_back(M, t, 0, new_slot(M, t, key, pos))
    M[tier_at(t) + LEN] += 1


@njit(cache=True)
def lru_victim(M, t):
    return retire(M, t, pop_front(M, t, 0))


@njit(cache=True)
def list_remove(M, t, s):
    """Remove a resident slot kept on a list (LRU family, ARC, S3-FIFO)."""
    unlink(M, t, s)
    retire(M, t, s)


@njit(cache=True)
def sw_see(M, t, key):
    """Record a sighting of `key` in the node's reuse history; True if seen before."""
    h = M[NW] + 2
    s = find(M, h, key)
    if s >= 0:
        move_to_back(M, h, s)
        return True
    history = M[tier_at(t) + PARAM_A]
    if history > 0:
        push_back(M, h, 0, new_slot(M, h, key, 0))
        if M[tier_at(h) + SIZE] > history:
            drop_slot(M, h, pop_front(M, h, 0))
    return False


@njit(cache=True)
def sw_admit(M, t, key, pos):
    if sw_see(M, t, key):
        return True
    return depth_at(M, pos) <= M[tier_at(t) + PARAM_C]


@njit(cache=True)
def sw_touch(M, t, s):
    move_to_back(M, t, s)
    sw_see(M, t, M[s + KEY])
