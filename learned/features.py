"""Per-access features of the learned eviction policy.

Every feature of access ``pos`` (one block of one request, indexed like
``AccessContext`` arrays) is a function of the accesses up to and including
the request that makes it: what a cache that keeps a few counters per block
and per session has seen at that moment. Nothing reads the future; the test
suite checks this by changing a workload's later requests and comparing.

The columns (``FEATURES``, in order):

``depth``            index of the block in its request (0 = first block).
``to_end``           blocks after this one in the request (0 = the last, usually
                     partial, block; its hash changes when the prompt grows).
``req_len_bucket``   request length bucket: floor(log2(blocks in the request)).
``frequency``        accesses of this block so far, this one included.
``recency_ms``       ms since the block's previous access (NaN on first access).
``reuse_gap``        accesses (block positions) since the block's previous access
                     (NaN on first access): recency in the cache's own clock.
``age_ms``           ms since the block's first access.
``sessions``         distinct sessions that touched the block so far (a request
                     with an unknown session counts as its own session).
``fanout``           distinct blocks seen right after this block so far: 2 or more
                     means the prefix up to here is shared by different
                     continuations (a system prompt or a shared document).
``session_gap_ms``   ms since the session's previous turn. For unknown sessions the
                     previous turn is inferred from the prefix: the request that last
                     touched this request's deepest previously seen block. NaN if none.
``prefix_seen``      leading blocks of this request seen before (the prefix an
                     infinite cache would hit), in blocks.

Size of the tier is deliberately not a column. The label is "reused within a
horizon H" with H taken from the trace's reuse distances, not from the tier,
so one score per access serves every tier (each worker's HBM, DRAM, SSD) and
is computed once. The tier size acts through the eviction rule instead: a
block's priority is its last access position plus ``H x P(reuse)``, and a
small tier reaches deep into that order while a large one evicts only its
tail. Measured on the Mooncake conversation trace: labels with a
capacity-scaled horizon (H = k x capacity, capacity as a feature) lost to LRU
at 16k blocks for every k tried, while the fixed horizon gains at 1k, 4k and
16k blocks (see the README section of the learned policy).

How it is computed: the per-block counters (frequency, sessions, fanout, first
and previous access) are what an online tracker updates in O(1) per access.
The tracker's results for a whole workload are computed here at once with
numpy, from the ``AccessContext`` (``next_use`` links each access of a block to
the next one, so the previous access and the block's first access follow by
inverting and pointer-jumping those links) - the same numbers, without a
Python loop per access. The policy then reads a row by position: O(1) per
block.
"""
from __future__ import annotations

import numpy as np

from sim.policies.base import NEVER, AccessContext

FEATURES: tuple[str, ...] = (
    "depth",
    "to_end",
    "req_len_bucket",
    "frequency",
    "recency_ms",
    "reuse_gap",
    "age_ms",
    "sessions",
    "fanout",
    "session_gap_ms",
    "prefix_seen",
)
N_FEATURES = len(FEATURES)


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


def access_features(ctx: AccessContext) -> np.ndarray:
    """float32 matrix (accesses x ``N_FEATURES``), one row per access, columns ``FEATURES``."""
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
    sess_req = ctx.session[starts[:-1]]
    known = np.flatnonzero(sess_req >= 0)
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
