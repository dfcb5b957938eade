"""sim.cache.tier.Tier's calls over the engine memory: resident lookup, touch, admits, put, take."""
from __future__ import annotations

from numba import njit

from sim.engine.dispatch import ARC, pol_admit, pol_filters, pol_insert, pol_remove, pol_touch, pol_victim
from sim.engine.layout import (
    CAP,
    LEN,
    LIST,
    POLICY,
    RESIDENT_LISTS,
    SCRATCH_N,
    ST_EVICTIONS,
    ST_INSERTS,
    ST_REJECTED,
    ST_TAKEN,
    tier_at,
)
from sim.engine.slots import POS
from sim.engine.tier_slots import find


@njit(cache=True, inline="always")
def resident(M, t, key):
    """Slot of `key` if it is resident in tier t (not a ghost), else -1."""
    s = find(M, t, key)
    if s >= 0 and 0 <= M[s + LIST] < RESIDENT_LISTS:
        return s
    return -1


@njit(cache=True, inline="always")
def tier_touch(M, t, s, pos):
    M[s + POS] = pos
    pol_touch(M, t, s, pos)


@njit(cache=True)
def tier_admits(M, t, key, pos):
    a = tier_at(t)
    if M[a + CAP] == 0:
        return False
    if not pol_filters(M) or pol_admit(M, t, key, pos):
        return True
    M[a + ST_REJECTED] += 1
    return False


@njit(cache=True)
def tier_put(M, t, key, pos, buf, nev):
    """Make `key` resident in tier t (touch it if it is); victims go to the scratch
    buffer at `buf` from index nev (keys at buf + i, positions at buf + SCRATCH_N + i).

    Returns the new victim count.
    """
    s = resident(M, t, key)
    if s >= 0:
        tier_touch(M, t, s, pos)
        return nev
    return tier_put_absent(M, t, key, pos, buf, nev)


@njit(cache=True)
def tier_put_absent(M, t, key, pos, buf, nev):
    """tier_put for a key the caller has just found not resident (saves the lookup)."""
    a = tier_at(t)
    cap = M[a + CAP]
    width = M[SCRATCH_N]
    if cap == 0:
        M[buf + nev] = key
        M[buf + width + nev] = pos
        return nev + 1
    if M[a + LEN] >= cap:
        if M[POLICY] == ARC:
            pol_admit(M, t, key, pos)  # ARC's REPLACE depends on the incoming key
        n = 0
        while M[a + LEN] >= cap:
            vk, vp = pol_victim(M, t)
            M[buf + nev] = vk
            M[buf + width + nev] = vp
            nev += 1
            n += 1
        M[a + ST_EVICTIONS] += n
    pol_insert(M, t, key, pos)
    M[a + ST_INSERTS] += 1
    return nev


@njit(cache=True)
def tier_take(M, t, s):
    """Remove a resident block that moves elsewhere; return its last position."""
    pos = M[s + POS]
    pol_remove(M, t, s)
    M[tier_at(t) + ST_TAKEN] += 1
    return pos
