"""Open addressing with linear probing: int64 key -> slot address, for both engines.

The node engine keeps one table per tier inside its array ``M`` (key = block
id); the cluster engine one table for all tier instances (key = instance x
distinct blocks + block). A table of ``size`` entries (a power of two) is
``2 * size`` words of an int64 array from ``base``: entry i is (key, value)
at ``base + 2i``, value -1 when empty, so every int64 is a valid key. The key
sits next to its value, so a probe reads one cache line and never the slot.
Deletion shifts later entries back (no tombstones), so lookups stay short
however long the replay runs.

Nothing iterates over a table: a lookup is exact, so the layout and the hash
decide speed only, never a result.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def table_size(n_keys: int) -> int:
    """Entries for at most `n_keys` keys: a power of two at least twice that (load factor <= 0.5)."""
    size = 4
    while size < 2 * max(1, n_keys):
        size *= 2
    return size


@njit(cache=True, inline="always")
def _home(key, mask):
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(32)) & mask


# ----------------------------------------------------------------- locality-keeping variant (cluster engine)
# Keys k and k+1 with the same k >> _NEAR_BITS start at neighbouring entries, so a walk over consecutive
# block ids of one tier instance (a request's blocks, numbered in first-use order) reads a few cache lines
# instead of one per block. Same table layout and rules as above; one table never mixes the two homes.
_NEAR_BITS = 3
_NEAR_LOW = (1 << _NEAR_BITS) - 1


@njit(cache=True, inline="always")
def _home_near(key, mask):
    hi = np.int64((np.uint64(key >> _NEAR_BITS) * _GOLDEN) >> np.uint64(32))
    return ((hi << _NEAR_BITS) | (key & _NEAR_LOW)) & mask


@njit(cache=True, inline="always")
def _slot(key, mask, near):
    return _home_near(key, mask) if near else _home(key, mask)


@njit(cache=True, inline="always")
def _find(H, base, mask, key, near):
    i = _slot(key, mask, near)
    while True:
        e = base + 2 * i
        v = H[e + 1]
        if v < 0 or H[e] == key:
            return v
        i = (i + 1) & mask


@njit(cache=True, inline="always")
def _insert(H, base, mask, key, val, near):
    i = _slot(key, mask, near)
    while H[base + 2 * i + 1] >= 0:
        i = (i + 1) & mask
    e = base + 2 * i
    H[e] = key
    H[e + 1] = val


@njit(cache=True, inline="always")
def _delete(H, base, mask, key, near):
    i = _slot(key, mask, near)
    while H[base + 2 * i] != key:  # no empty entry lies between a key's home and the key
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        e = base + 2 * j
        if H[e + 1] < 0:
            break
        k = _slot(H[e], mask, near)
        # the entry at j may fill the hole at i unless its home lies cyclically in (i, j]
        if i <= j:
            if i < k <= j:
                continue
        elif k > i or k <= j:
            continue
        H[base + 2 * i] = H[e]
        H[base + 2 * i + 1] = H[e + 1]
        i = j
    H[base + 2 * i + 1] = -1


@njit(cache=True, inline="always")
def find(H, base, mask, key):
    """The value stored for `key`, or -1."""
    return _find(H, base, mask, key, False)


@njit(cache=True, inline="always")
def insert(H, base, mask, key, val):
    """Store `key` -> `val` (val >= 0; `key` must be absent)."""
    _insert(H, base, mask, key, val, False)


@njit(cache=True, inline="always")
def delete(H, base, mask, key):
    """Remove `key` (it must be present)."""
    _delete(H, base, mask, key, False)


@njit(cache=True, inline="always")
def find_near(H, mask, key):
    """``find`` on a table filled by ``insert_near`` (base 0)."""
    return _find(H, 0, mask, key, True)


@njit(cache=True)
def insert_near(H, mask, key, val):
    _insert(H, 0, mask, key, val, True)


@njit(cache=True)
def delete_near(H, mask, key):
    _delete(H, 0, mask, key, True)


@njit(cache=True)
def add_near(H, mask, key, d):
    """Add `d` to the count stored for `key` (a table of counts, base 0, near homes): an absent key starts
    at `d` (> 0), a count reaching 0 is deleted. Returns the change in keys: +1, -1 or 0."""
    i = _home_near(key, mask)
    while True:
        e = 2 * i
        v = H[e + 1]
        if v < 0:
            H[e] = key
            H[e + 1] = d
            return 1
        if H[e] == key:
            if v + d == 0:
                _delete(H, 0, mask, key, True)
                return -1
            H[e + 1] = v + d
            return 0
        i = (i + 1) & mask
