"""Belady's next use of every block access, in memory that follows the requests, not the accesses.

``next_use[pos]`` (the position of the next access to the same block) is 8 bytes per block access:
2.4 billion accesses at 10M multi-turn requests. In a distinct parent-form workload
(``trace.prefix.PrefixBlocks.distinct``) a block is the own block of one request, at depth d, and every
request holding it inherits it at the same depth d; a request holding the block at depth d holds its
whole prefix too. So for request i the set of later requests holding its block at depth d shrinks as d
grows, and N(i, d) = the first later request holding it is a step function of d, with one step per
branch point (a multi-turn chain: one or two). Then

    next_use[offs[i] + d] = offs[N(i, d)] + d   (or NEVER when there is none)

and the steps are all that is stored: per request the range of its steps, per step (first depth, N).
They are found in one backward pass over the requests that keeps, per distinct block, the latest
request seen (the only array of the size of the blocks: 4 bytes each, and only while it runs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from trace.prefix import PrefixBlocks, fill


@dataclass(frozen=True)
class NextUseSteps:
    """Request i's steps are ``[ends[i + 1], ends[i])`` of ``depth``/``request``, ascending in depth."""

    ends: np.ndarray  # int64 [n + 1]
    depth: np.ndarray  # int64 [m]: the first depth of the step
    request: np.ndarray  # int64 [m]: the next request holding the blocks of the step, -1 none

    def packed(self) -> np.ndarray:
        """``ends``, ``depth``, ``request`` back to back (the engine's layout)."""
        return np.concatenate([self.ends, self.depth, self.request])


@njit(cache=True)
def _steps(parent, shared, own_off, own_ids, latest, width):
    """`latest` (-1 filled, one per distinct block): the earliest request after the current one holding it."""
    n = len(parent)
    cap = 2 * n + 16
    sd = np.empty(cap, np.int64)
    sk = np.empty(cap, np.int64)
    ends = np.empty(n + 1, np.int64)
    buf = np.empty(max(1, width), np.int64)
    m = 0
    for i in range(n - 1, -1, -1):
        ends[i + 1] = m
        nb = fill(parent, shared, own_off, own_ids, i, buf)
        last = -2
        for d in range(nb):
            b = buf[d]
            k = latest[b]
            if k != last:
                if m == cap:
                    cap *= 2
                    sd2 = np.empty(cap, np.int64)
                    sk2 = np.empty(cap, np.int64)
                    for q in range(m):  # not a slice copy: its shape check compiles numba's string formatting (~2 s)
                        sd2[q] = sd[q]
                        sk2[q] = sk[q]
                    sd, sk = sd2, sk2
                sd[m] = d
                sk[m] = k
                m += 1
                last = k
            latest[b] = i
    ends[0] = m
    return ends, sd[:m].copy(), sk[:m].copy()


def next_use_steps(pb: PrefixBlocks) -> NextUseSteps:
    """The steps of a distinct workload (module doc). They are written from the last request back, so
    ``ends`` is descending and request i's steps lie just before request i - 1's."""
    if not pb.distinct:
        raise ValueError("next_use_steps needs a distinct workload (no id in two own slices)")
    dense, n_ids = pb.densified()
    width = int(dense.counts().max()) if len(dense) else 0
    # 4 bytes a distinct block while it runs (358M blocks at 10M requests: 1.3 GiB instead of 2.7)
    latest = np.full(n_ids, -1, np.int32 if len(dense) < 2**31 else np.int64)
    ends, sd, sk = _steps(dense.parent, dense.shared, dense.own_off, dense.ids_stored(), latest, width)
    return NextUseSteps(ends=ends, depth=sd, request=sk)
