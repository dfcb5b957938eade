"""Fast single-tier replays on the access arrays: content, Belady, LRU.

Each returns a boolean hit mask over accesses, so token- and block-weighted
figures come from the same run. They are plain Python loops over dicts and a
heap (O(log n) per access), tuned for the oracle: no policy objects.
"""
from __future__ import annotations

from collections import OrderedDict
from heapq import heappop, heappush

import numpy as np

from sim.oracle.access import NEVER, Accesses


def content_hits(acc: Accesses) -> np.ndarray:
    """Unlimited capacity: an access hits when its id appeared before."""
    return acc.prev >= 0


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
    n = acc.n
    hit = np.zeros(n, dtype=bool)
    if capacity <= 0 or n == 0:
        return hit
    ids = acc.ids.tolist()
    nxt = acc.next.tolist()
    res: dict[int, int] = {}
    heap: list[tuple[int, int]] = []  # (-next use, key), lazily invalidated
    hits: list[int] = []
    for pos in range(n):
        k = ids[pos]
        nu = nxt[pos]
        if k in res:
            hits.append(pos)
            if nu == NEVER:
                del res[k]  # never used again: free the slot now (same hits)
            else:
                res[k] = nu
                heappush(heap, (-nu, k))
            continue
        if nu == NEVER:
            continue
        if len(res) < capacity:
            res[k] = nu
            heappush(heap, (-nu, k))
            continue
        while True:  # drop stale heap entries
            neg, kk = heap[0]
            if res.get(kk) == -neg:
                break
            heappop(heap)
        if -neg > nu:
            heappop(heap)
            del res[kk]
            res[k] = nu
            heappush(heap, (-nu, k))
        if len(heap) > 4 * len(res) + 1024:
            heap = [(-v, kk) for kk, v in res.items()]
            heap.sort()
    hit[hits] = True
    return hit


def lru_prefix_hits(acc: Accesses, capacity: int) -> np.ndarray:
    """Strict-prefix LRU, the rule of ``sim.policies.replay.prefix_replay``.

    Per request: the hit is the run of leading blocks resident at arrival;
    then every block of the request is touched (resident) or inserted
    (missing), evicting the least recently used block while full.
    """
    n = acc.n
    hit = np.zeros(n, dtype=bool)
    if capacity <= 0 or n == 0:
        return hit
    ids = acc.ids.tolist()
    offs = acc.offsets.tolist()
    od: OrderedDict[int, None] = OrderedDict()
    move, pop = od.move_to_end, od.popitem
    hits: list[int] = []
    for i in range(len(offs) - 1):
        lo, hi = offs[i], offs[i + 1]
        h = lo
        while h < hi and ids[h] in od:
            h += 1
        if h > lo:
            hits.extend(range(lo, h))
        for pos in range(lo, hi):
            k = ids[pos]
            if k in od:
                move(k)
            else:
                od[k] = None
                if len(od) > capacity:
                    pop(last=False)
    hit[hits] = True
    return hit
