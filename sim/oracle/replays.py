"""Fast single-tier replays on the access arrays: content, Belady, LRU.

Each returns a boolean hit mask over accesses, so token- and block-weighted
figures come from the same run. Belady and LRU are compiled loops (numba)
over flat arrays, tuned for the oracle: no policy objects, no dicts. They
key blocks by access positions, which the access arrays already provide:

* Belady keeps "the block whose next use is at position p" as ``p`` itself
  (next uses are distinct positions), so residency is a flag per position
  and the farthest-next-use victim is the top of a max-heap of positions.
* LRU keys a block by the position of its first access (``prev`` chains
  lead there), a dense key for an intrusive recency list. The list is
  written out in the loop rather than taken from the engines' core
  (``sim.engine.slots``): through those calls numba keeps reference
  counting inside this loop, which made it about 5x slower (Mooncake, five
  capacities: 7 ms vs 35-44 ms).

``tests/test_oracle_bounds.py`` checks both against the plain Python loops
they replaced (a dict + heap, an OrderedDict) on random sequences.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.oracle.access import NEVER, Accesses


def content_hits(acc: Accesses) -> np.ndarray:
    """Unlimited capacity: an access hits when its id appeared before."""
    return acc.prev >= 0


@njit(cache=True)
def _belady(nxt, capacity, never):
    n = len(nxt)
    hit = np.zeros(n, np.bool_)
    kept = np.zeros(n, np.bool_)  # kept[p]: some resident block's next use is p
    heap = np.empty(n, np.int64)  # max-heap of next uses, stale entries dropped lazily
    size = 0
    count = 0
    for pos in range(n):
        nu = nxt[pos]
        if kept[pos]:
            hit[pos] = True
            kept[pos] = False
            count -= 1
            if nu == never:
                continue  # never used again: free the slot now (same hits)
        elif nu == never:
            continue
        elif count >= capacity:
            while not kept[heap[0]]:  # drop stale entries
                size -= 1
                last = heap[size]
                i = 0
                while True:
                    c = 2 * i + 1
                    if c >= size:
                        break
                    if c + 1 < size and heap[c + 1] > heap[c]:
                        c += 1
                    if heap[c] <= last:
                        break
                    heap[i] = heap[c]
                    i = c
                heap[i] = last
            top = heap[0]
            if top < nu:
                continue  # the incoming block is the farthest: bypass it
            kept[top] = False  # evict the farthest (stays in the heap, now stale)
            count -= 1
        kept[nu] = True
        count += 1
        i = size
        size += 1
        while i > 0:
            par = (i - 1) // 2
            if heap[par] >= nu:
                break
            heap[i] = heap[par]
            i = par
        heap[i] = nu
    return hit


def belady_hits(acc: Accesses, capacity: int) -> np.ndarray:
    """Belady/MIN with bypass on the flattened access sequence.

    Keep the `capacity` blocks whose next uses are nearest: on a miss the
    incoming block competes with the residents and the one with the farthest
    next use (possibly the incoming block itself, or one never used again)
    stays out. Farthest-in-future with bypass maximises the number of hits
    for unit-size items (Belady 1966; the optional-caching form, see
    e.g. Brehob et al.). Prefix order is ignored here; see bounds.py for why
    on prefix-consistent traces the hits nonetheless form prefixes.
    """
    if capacity <= 0 or acc.n == 0:
        return np.zeros(acc.n, dtype=bool)
    return _belady(acc.next, int(capacity), NEVER)


@njit(cache=True)
def _lru_prefix(prev, offsets, capacity):
    n = len(prev)
    hit = np.zeros(n, np.bool_)
    key = np.empty(n, np.int64)  # position of the block's first access
    older = np.full(n, -1, np.int64)
    newer = np.full(n, -1, np.int64)
    inside = np.zeros(n, np.bool_)
    for pos in range(n):
        key[pos] = pos if prev[pos] < 0 else key[prev[pos]]
    lru = -1  # least recently used end
    mru = -1
    size = 0
    for i in range(len(offsets) - 1):
        lo, hi = offsets[i], offsets[i + 1]
        h = lo
        while h < hi and inside[key[h]]:
            hit[h] = True
            h += 1
        for pos in range(lo, hi):
            k = key[pos]
            if inside[k]:
                if k == mru:
                    continue
                a, b = older[k], newer[k]  # unlink
                if a != -1:
                    newer[a] = b
                else:
                    lru = b
                older[b] = a
            else:
                inside[k] = True
                size += 1
            older[k] = mru  # append as most recent
            newer[k] = -1
            if mru != -1:
                newer[mru] = k
            else:
                lru = k
            mru = k
            if size > capacity:
                v = lru
                lru = newer[v]
                older[lru] = -1
                inside[v] = False
                size -= 1
    return hit


def lru_prefix_hits(acc: Accesses, capacity: int) -> np.ndarray:
    """Strict-prefix LRU, the rule of ``sim.policies.replay.prefix_replay``.

    Per request: the hit is the run of leading blocks resident at arrival;
    then every block of the request is touched (resident) or inserted
    (missing), evicting the least recently used block while full.
    """
    if capacity <= 0 or acc.n == 0:
        return np.zeros(acc.n, dtype=bool)
    return _lru_prefix(acc.prev, acc.offsets, int(capacity))
