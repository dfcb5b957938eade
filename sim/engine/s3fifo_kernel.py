"""S3-FIFO over three lists: small = 0, main = 1 (resident), ghost = 2.

Mirrors sim/policies/s3fifo.py: 2-bit frequency in FREQ, small target in
PARAM_A, ghost size in PARAM_B, move-to-main threshold in PARAM_C. A tier
has capacity + ghost size + 1 slots (the ghost list overflows by one
before its oldest key is dropped).
"""
from __future__ import annotations

from numba import njit

from sim.engine.layout import FREQ, LEN, PARAM_A, PARAM_B, PARAM_C, SIZE, tier_at
from sim.engine.slots import KEY, POS
from sim.engine.tier_slots import drop_slot, find, new_slot, pop_front, push_back, retire, unlink

SMALL, MAIN, GHOST = 0, 1, 2
MAX_FREQ = 3


@njit(cache=True)
def s3_touch(M, t, s):
    if M[s + FREQ] < MAX_FREQ:
        M[s + FREQ] += 1


@njit(cache=True)
def s3_insert(M, t, key, pos):
    s = find(M, t, key)
    if s >= 0:  # in the ghost list: straight to main
        unlink(M, t, s)
        M[s + POS] = pos
        M[s + FREQ] = 0
        push_back(M, t, MAIN, s)
    else:
        s = new_slot(M, t, key, pos)
        M[s + FREQ] = 0
        push_back(M, t, SMALL, s)
    M[tier_at(t) + LEN] += 1


@njit(cache=True)
def s3_victim(M, t):
    a = tier_at(t)
    n_small = M[a + SIZE + SMALL]
    if n_small > 0 and (n_small >= M[a + PARAM_A] or M[a + SIZE + MAIN] == 0):
        thr = M[a + PARAM_C]
        while M[a + SIZE + SMALL] > 0:
            s = pop_front(M, t, SMALL)
            if M[s + FREQ] >= thr:
                push_back(M, t, MAIN, s)
                continue
            key, pos = M[s + KEY], M[s + POS]
            M[a + LEN] -= 1
            ghost_size = M[a + PARAM_B]
            if ghost_size > 0:
                push_back(M, t, GHOST, s)
                if M[a + SIZE + GHOST] > ghost_size:
                    drop_slot(M, t, pop_front(M, t, GHOST))
            else:
                drop_slot(M, t, s)
            return key, pos
    while True:
        s = pop_front(M, t, MAIN)
        f = M[s + FREQ]
        if f > 0:
            M[s + FREQ] = f - 1
            push_back(M, t, MAIN, s)
        else:
            return retire(M, t, s)
