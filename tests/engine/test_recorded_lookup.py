"""The replay's shortcuts (sim.engine.node_ops) decide exactly as the plain calls.

``lookup_from`` starts after the prefix the router found, ``fetch_rec`` reuses the slots lookup
recorded (trusting one only while it still holds its block) and ``store_fresh`` puts a distinct
workload's never-seen blocks without looking. Two copies of a tiny cache (so fetches evict blocks of the
very request they serve) take the same random stream, one through the plain calls and one through the
shortcuts; results, traffic and every tier's counters must agree after each request.
"""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.policies  # noqa: F401  (registers the policies)
from sim.cache.node import Traffic
from sim.engine import node_ops
from sim.engine.dispatch import KERNELS
from sim.engine.layout import SCRATCH_N
from sim.engine.node_cache import CompiledNodeCache
from sim.policies.base import AccessContext
from trace.workload import Workload


def _state(cache):
    return [(len(t), t.stats) for t in cache.hbm + [cache.dram, cache.ssd]], cache.traffic


@st.composite
def streams(draw):
    """Requests over a small id space; with `fresh`, each request ends with ids never used before (a
    distinct workload's own blocks) and repeats none."""
    fresh = draw(st.booleans())
    reqs, fresh_from, next_id = [], [], 1000
    for _ in range(draw(st.integers(1, 40))):
        old = draw(st.lists(st.integers(0, 12), max_size=6, unique=fresh))
        new = list(range(next_id, next_id + draw(st.integers(0, 4)))) if fresh else []
        next_id += len(new)
        reqs.append(old + new or [0])
        fresh_from.append(len(old) if fresh and new else len(reqs[-1]))
    return reqs, fresh_from, fresh


@settings(max_examples=120, deadline=None)
@given(case=streams(), policy=st.sampled_from(sorted(KERNELS)),
       caps=st.tuples(st.integers(0, 4), st.integers(0, 5), st.integers(0, 6)),
       workers=st.integers(1, 3), write_through=st.booleans(), seed=st.integers(0, 9))
def test_shortcuts_decide_as_the_plain_calls(case, policy, caps, workers, write_through, seed):
    reqs, fresh_from, unique = case
    w = Workload.from_requests(reqs)
    ctx = AccessContext.from_workload(w)
    plain, short = (CompiledNodeCache(policy, *caps[:1], workers, *caps[1:], 10, ctx, {"depth_threshold": 2},
                                      write_through=write_through) for _ in range(2))
    width = int(short.M[SCRATCH_N])
    rec = np.full(2 * max(1, width), -1, dtype=np.int64)
    sb = np.zeros((1, max(1, width)), dtype=np.int64)
    rng = np.random.default_rng(seed)
    for i, blocks in enumerate(reqs):
        blocks = np.array(blocks, dtype=np.int64)
        lo = int(w.block_offsets[i])
        wk = int(rng.integers(workers))
        found = plain.lookup(wk, blocks)
        p0 = node_ops.hbm_prefix_rec(short.M, wk, blocks, sb, 0)
        assert p0 == plain.hbm_prefix(wk, blocks)
        rec[:p0], rec[width:width + p0] = sb[0, :p0], wk
        assert node_ops.lookup_from(short.M, wk, blocks, p0, rec) == found
        n = sum(found)
        got = node_ops.fetch_rec(short.M, wk, blocks, lo, n, True, rec, unique)
        assert Traffic(*got) == plain.fetch(wk, blocks, lo, n)
        got = node_ops.store_fresh(short.M, wk, blocks, lo, n, fresh_from[i])
        assert Traffic(*got) == plain.store(wk, blocks, lo, n)
        assert _state(short) == _state(plain)
