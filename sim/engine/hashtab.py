"""Open addressing with linear probing, one table per tier: block id -> slot.

Entries hold slot addresses (-1 empty); the key is read from the slot.
Deletion shifts later entries back (no tombstones), so lookups stay short
however long the replay runs.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.layout import HBASE, HMASK, KEY, tier_at

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, inline="always")
def _home(key, mask):
    h = np.uint64(key) * _GOLDEN
    return np.int64(h >> np.uint64(32)) & mask


@njit(cache=True)
def find(M, t, key):
    """Slot holding `key` in tier t (resident or ghost), or -1."""
    a = tier_at(t)
    base, mask = M[a + HBASE], M[a + HMASK]
    i = _home(key, mask)
    while True:
        s = M[base + i]
        if s < 0:
            return -1
        if M[s + KEY] == key:
            return s
        i = (i + 1) & mask


@njit(cache=True)
def insert(M, t, s):
    """Index slot s (its KEY must be set and absent from the table)."""
    a = tier_at(t)
    base, mask = M[a + HBASE], M[a + HMASK]
    i = _home(M[s + KEY], mask)
    while M[base + i] >= 0:
        i = (i + 1) & mask
    M[base + i] = s


@njit(cache=True)
def delete(M, t, key):
    """Remove `key` from tier t's table (it must be present)."""
    a = tier_at(t)
    base, mask = M[a + HBASE], M[a + HMASK]
    i = _home(key, mask)
    while M[M[base + i] + KEY] != key:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        s = M[base + j]
        if s < 0:
            break
        k = _home(M[s + KEY], mask)
        # s may move back to the hole at i unless its home lies cyclically in (i, j]
        if i <= j:
            if i < k <= j:
                continue
        elif k > i or k <= j:
            continue
        M[base + i] = s
        i = j
    M[base + i] = -1
