"""The learned policy's features computed for the whole trace at once with numpy (the path before
``learned.tracker`` streamed them): per-access arrays of the whole trace, the previous access and the
block's first access by inverting and pointer-jumping ``next_use``, distinct pairs by sorting. Kept as
the reference the streaming tracker is compared with, row for row and bit for bit.

One change from that path: a request without blocks (no accesses) is no turn of its session; the old
code read its session and arrival from the next request's first access (a later request).
"""
from __future__ import annotations

import numpy as np

from learned.features import FEATURES, N_FEATURES
from sim.policies.base import NEVER, AccessContext


def previous_use(next_use: np.ndarray) -> np.ndarray:
    """Position of the previous access of the same block, -1 for a first access."""
    n = len(next_use)
    prev = np.full(n, -1, dtype=np.int64)
    has = next_use != NEVER
    prev[next_use[has]] = np.flatnonzero(has)
    return prev


def first_use(prev: np.ndarray) -> np.ndarray:
    """Position of the block's first access (pointer jumping along ``prev``).

    It names the block: two accesses share it iff they touch the same id.
    """
    n = len(prev)
    head = np.where(prev >= 0, prev, np.arange(n, dtype=np.int64))
    while True:  # O(log longest chain) rounds
        nxt = head[head]
        if np.array_equal(nxt, head):
            return head
        head = nxt


def _chain_cumsum(block: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """For each access, the sum of ``flag`` over the accesses of its block up to it."""
    n = len(block)
    order = np.lexsort((np.arange(n), block))  # by block, then by position
    cs = np.cumsum(flag[order])
    b = block[order]
    start = np.ones(n, dtype=bool)
    start[1:] = b[1:] != b[:-1]
    base = (cs - flag[order])[start]  # running sum before each group
    grp = np.cumsum(start) - 1
    out = np.empty(n, dtype=np.int64)
    out[order] = cs - base[grp]
    return out


def _first_of_pair(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """1 at the earliest access of each distinct (a, b) pair among ``valid`` accesses."""
    n = len(a)
    flag = np.zeros(n, dtype=np.int64)
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return flag
    order = idx[np.lexsort((idx, b[idx], a[idx]))]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (a[order[1:]] != a[order[:-1]]) | (b[order[1:]] != b[order[:-1]])
    flag[order[new]] = 1
    return flag


def reference_features(ctx: AccessContext) -> np.ndarray:
    """float32 matrix (accesses x ``N_FEATURES``): the whole-trace numpy computation."""
    n = len(ctx.next_use)
    X = np.zeros((n, N_FEATURES), dtype=np.float32)
    if n == 0:
        return X
    pos = np.arange(n, dtype=np.int64)
    req, depth, t = ctx.request, ctx.depth, ctx.arrival_ms
    n_req = int(req[-1]) + 1
    counts = np.bincount(req, minlength=n_req)
    starts = np.zeros(n_req + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    nblk = counts[req]
    # index within the request, from the request layout itself (equals ctx.depth for contexts
    # built by AccessContext.from_workload; tests may override depth, indexing must not break)
    rank = pos - starts[req]

    prev = previous_use(ctx.next_use)
    head = first_use(prev)
    seen = prev >= 0

    # sessions: unknown session -> the request is its own session
    skey = np.where(ctx.session >= 0, ctx.session, -(req + 2))
    sessions = _chain_cumsum(head, _first_of_pair(head, skey, np.ones(n, dtype=bool)))
    # fanout: the block that follows this one in the same request, named by its first access
    follower = np.full(n, -1, dtype=np.int64)
    same = np.zeros(n, dtype=bool)
    same[:-1] = req[1:] == req[:-1]
    follower[:-1][same[:-1]] = head[1:][same[:-1]]
    fanout = _chain_cumsum(head, _first_of_pair(head, follower, follower >= 0))

    # prefix seen before: deepest block of the request whose previous access is in an earlier request
    old = seen & (req[np.maximum(prev, 0)] < req)
    prefix_seen = np.zeros(n_req, dtype=np.int64)
    np.maximum.at(prefix_seen, req[old], rank[old] + 1)
    # previous turn: the session's previous request, else the request that last touched the
    # deepest previously seen block (the conversation this request continues)
    arr_req = t[starts[:-1]] if n_req else np.zeros(0)
    prev_turn_ms = np.full(n_req, np.nan)
    has_prefix = prefix_seen > 0
    r_idx = np.flatnonzero(has_prefix)
    deepest = starts[r_idx] + prefix_seen[r_idx] - 1
    prev_turn_ms[r_idx] = t[prev[deepest]]
    sess_req = ctx.session[np.minimum(starts[:-1], n - 1)]
    known = np.flatnonzero((sess_req >= 0) & (counts > 0))  # a request without blocks is no turn
    if len(known):
        o = known[np.lexsort((known, sess_req[known]))]
        same_s = sess_req[o[1:]] == sess_req[o[:-1]]
        prev_turn_ms[o] = np.nan  # a known session's turns decide, not the prefix
        prev_turn_ms[o[1:][same_s]] = arr_req[o[:-1][same_s]]

    Xd = {
        "depth": depth,
        "to_end": nblk - 1 - rank,
        "req_len_bucket": np.floor(np.log2(np.maximum(nblk, 1))),
        "frequency": _chain_cumsum(head, np.ones(n, dtype=np.int64)),
        "recency_ms": np.where(seen, t - t[np.maximum(prev, 0)], np.nan),
        "reuse_gap": np.where(seen, pos - prev, np.nan),
        "age_ms": t - t[head],
        "sessions": sessions,
        "fanout": fanout,
        "session_gap_ms": (arr_req - prev_turn_ms)[req],
        "prefix_seen": prefix_seen[req],
    }
    for j, name in enumerate(FEATURES):
        X[:, j] = Xd[name]
    return X
