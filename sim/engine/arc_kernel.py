"""ARC over four lists: T1 = 0, T2 = 1 (resident), B1 = 2, B2 = 3 (ghosts).

Mirrors sim/policies/arc.py call for call, including the pending key that
``admit`` announces so that ``victim`` can run the paper's REPLACE(x, p).
Ghost keys keep their slot. Resident + ghost entries never exceed 2 x
capacity (a new key trims a ghost list whenever the sum is there), so a tier
has 2c + 1 slots. p lives in the tier record as float64 bits.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.layout import ARC_P, ARC_PENDING_P, CAP, HAS_PENDING, LEN, LIST, PENDING, PENDING_SLOT, SIZE, tier_at
from sim.engine.slots import KEY, POS
from sim.engine.tier_slots import drop_slot, find, move_to_back, new_slot, pop_front, push_back, unlink

T1, T2, B1, B2 = 0, 1, 2, 3


@njit(cache=True)
def _adapted_p(M, t, lst):
    """p after a request for a non-resident key on list `lst` (-1: on none)."""
    a = tier_at(t)
    p = M.view(np.float64)[a + ARC_P]
    nb1, nb2 = M[a + SIZE + B1], M[a + SIZE + B2]
    if lst == B1:
        return min(float(M[a + CAP]), p + (1.0 if nb1 >= nb2 else nb2 / nb1))
    if lst == B2:
        return max(0.0, p - (1.0 if nb2 >= nb1 else nb1 / nb2))
    return p


@njit(cache=True)
def arc_admit(M, t, key, pos):
    a = tier_at(t)
    if M[a + HAS_PENDING] == 1 and M[a + PENDING] == key:
        return True  # announced just before (tier_admits, then put): nothing changed since
    s = find(M, t, key)
    lst = M[s + LIST] if s >= 0 else -1
    if lst != T1 and lst != T2:
        M[a + PENDING] = key
        M[a + PENDING_SLOT] = s  # victims only add ghosts, so the slot stays valid until insert
        M[a + HAS_PENDING] = 1
        M.view(np.float64)[a + ARC_PENDING_P] = _adapted_p(M, t, lst)
    return True


@njit(cache=True)
def arc_touch(M, t, s):
    M[tier_at(t) + HAS_PENDING] = 0
    if M[s + LIST] == T1:
        unlink(M, t, s)
        push_back(M, t, T2, s)
    else:
        move_to_back(M, t, s)


@njit(cache=True)
def arc_victim(M, t):
    a = tier_at(t)
    F = M.view(np.float64)
    has = M[a + HAS_PENDING] == 1
    p = F[a + ARC_PENDING_P] if has else F[a + ARC_P]
    n1, n2 = M[a + SIZE + T1], M[a + SIZE + T2]
    x_in_b2 = False
    if has:
        sx = M[a + PENDING_SLOT]
        x_in_b2 = sx >= 0 and M[sx + LIST] == B2
    if n1 > 0 and (n2 == 0 or n1 > p or (n1 == p and has and x_in_b2)):
        s = pop_front(M, t, T1)
        push_back(M, t, B1, s)
    else:
        s = pop_front(M, t, T2)
        push_back(M, t, B2, s)
    M[a + LEN] -= 1
    return M[s + KEY], M[s + POS]


@njit(cache=True)
def arc_insert(M, t, key, pos):
    a = tier_at(t)
    c = M[a + CAP]
    pending = M[a + HAS_PENDING] == 1 and M[a + PENDING] == key
    s = M[a + PENDING_SLOT] if pending else find(M, t, key)
    if s >= 0:  # a ghost hit (resident keys are touched, not inserted)
        F = M.view(np.float64)
        if pending:
            F[a + ARC_P] = F[a + ARC_PENDING_P]
        else:
            F[a + ARC_P] = _adapted_p(M, t, M[s + LIST])
        unlink(M, t, s)
        M[s + POS] = pos
        push_back(M, t, T2, s)
    else:
        n_t1, n_t2 = M[a + SIZE + T1], M[a + SIZE + T2]
        n_b1, n_b2 = M[a + SIZE + B1], M[a + SIZE + B2]
        if n_t1 + n_b1 >= c:
            if n_b1 > 0:
                drop_slot(M, t, pop_front(M, t, B1))
        elif n_t1 + n_t2 + n_b1 + n_b2 >= 2 * c and n_b2 > 0:
            drop_slot(M, t, pop_front(M, t, B2))
        push_back(M, t, T1, new_slot(M, t, key, pos))
    M[a + HAS_PENDING] = 0
    M[a + LEN] += 1
