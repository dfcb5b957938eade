"""Reference single-tier replays: hit counts without any timing.

Used by the tests and by the oracle to check the simulator. The tier rule:
on a hit ``touch``; on a miss, if the policy ``admit``s the key, evict
``victim()``s while full, then ``insert``. Positions are indexes into the
access sequence (``Workload.block_ids`` for workload replays), which is what
``AccessContext`` arrays are indexed by.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.policies import make_policy
from sim.policies.base import AccessContext


@dataclass
class ReplayStats:
    hits: int = 0
    misses: int = 0
    inserts: int = 0  # misses that the policy admitted
    evictions: int = 0


def context_for_keys(keys, depth=None) -> AccessContext:
    """An AccessContext for a bare key sequence (one access per 'request').

    ``depth`` defaults to 0 for every access (every block shallow).
    """
    from trace.workload import Workload

    keys = np.asarray(keys, dtype=np.int64)
    n = len(keys)
    w = Workload(
        name="keys",
        arrival_ms=np.zeros(n),
        input_tokens=np.ones(n, dtype=np.int64),
        output_tokens=np.zeros(n, dtype=np.int64),
        session_id=np.full(n, -1, dtype=np.int64),
        block_offsets=np.arange(n + 1, dtype=np.int64),
        block_ids=keys,
        block_tokens=1,
    )
    ctx = AccessContext.from_workload(w)
    if depth is not None:
        depth = np.asarray(depth, dtype=np.int64)
        if depth.shape != keys.shape:
            raise ValueError("depth must have one entry per key")
        ctx.set_depth(depth)
    return ctx


def replay(policy_name: str, keys, capacity: int, ctx: AccessContext | None = None, **params) -> ReplayStats:
    """Feed accesses ``keys`` (positions 0..n-1) to one tier of `capacity` keys."""
    keys = np.asarray(keys, dtype=np.int64)
    if ctx is None:
        ctx = context_for_keys(keys)
    pol = make_policy(policy_name, capacity, ctx, **params)
    st = ReplayStats()
    hits = inserts = evictions = 0
    contains, touch, insert, victim, admit = pol.__contains__, pol.touch, pol.insert, pol.victim, pol.admit
    for pos, key in enumerate(keys.tolist()):
        if contains(key):
            touch(key, pos)
            hits += 1
        elif capacity > 0 and admit(key, pos):
            while len(pol) >= capacity:
                victim()
                evictions += 1
            insert(key, pos)
            inserts += 1
    st.hits, st.misses, st.inserts, st.evictions = hits, len(keys) - hits, inserts, evictions
    return st


def replay_hits(policy_name: str, keys: np.ndarray, capacity: int, ctx: AccessContext | None = None, **params) -> int:
    """Number of hits of `policy_name` on access sequence `keys` at `capacity`.

    ``ctx`` defaults to ``context_for_keys(keys)`` (next uses of the sequence,
    depth 0 everywhere); extra ``params`` go to the policy.
    """
    return replay(policy_name, keys, capacity, ctx, **params).hits


def prefix_replay(policy_name: str, workload, capacity: int, **params) -> tuple[int, int]:
    """(hit_blocks, total_blocks) of a single-tier prefix cache on `workload`.

    Per request: the hit is the longest run of leading blocks that are all
    resident (strict-prefix rule: it stops at the first missing block); only
    then are the request's blocks processed in order - resident ones touched,
    missing ones admitted/inserted (evicting while full). Positions are indexes
    into ``workload.block_ids``; the policy gets
    ``AccessContext.from_workload(workload)``.
    """
    ctx = AccessContext.from_workload(workload)
    pol = make_policy(policy_name, capacity, ctx, **params)
    contains, touch, insert, victim, admit = pol.__contains__, pol.touch, pol.insert, pol.victim, pol.admit
    ids = workload.block_ids.tolist()
    offs = workload.block_offsets.tolist()
    hit_blocks = 0
    for i in range(len(offs) - 1):
        lo, hi = offs[i], offs[i + 1]
        h = lo
        while h < hi and contains(ids[h]):
            h += 1
        hit_blocks += h - lo
        for pos in range(lo, hi):
            key = ids[pos]
            if contains(key):
                touch(key, pos)
            elif capacity > 0 and admit(key, pos):
                while len(pol) >= capacity:
                    victim()
                insert(key, pos)
    return hit_blocks, len(ids)
