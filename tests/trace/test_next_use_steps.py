"""Belady's next uses as steps (trace.next_use) equal the per-access array, read back by the engine too."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.policies  # noqa: F401  (registers the policies)
from sim.engine.layout import NU_REQS, next_use_at
from sim.engine.node_cache import CompiledNodeCache
from sim.modes.single import run_single
from sim.policies.base import AccessContext
from tests.conftest import multi_turn
from trace.next_use import next_use_steps
from trace.prefix import PrefixBlocks
from trace.workload import Workload


@st.composite
def parent_forms(draw):
    """Random distinct parent forms: branching trees, partial shares, empty requests, stored or dense ids."""
    n = draw(st.integers(1, 30))
    parent, shared, own_len = [], [], []
    for i in range(n):
        p = draw(st.integers(-1, i - 1))
        plen = shared[p] + own_len[p] if p >= 0 else 0
        parent.append(p)
        shared.append(draw(st.integers(0, plen)) if p >= 0 else 0)
        own_len.append(draw(st.integers(0, 5)))
    own_off = np.concatenate([[0], np.cumsum(own_len)]).astype(np.int64)
    ids = None
    if draw(st.booleans()):  # stored ids: any distinct values
        ids = np.array(draw(st.permutations(range(1000, 1000 + int(own_off[-1])))), dtype=np.int64)
    return PrefixBlocks(np.array(parent, dtype=np.int64), np.array(shared, dtype=np.int64), own_off, ids,
                        distinct=True)


def _workload(pb: PrefixBlocks) -> Workload:
    n = len(pb)
    offs = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(pb.counts(), out=offs[1:])
    return Workload(name="t", arrival_ms=np.arange(n, dtype=np.float64), input_tokens=pb.counts() * 4,
                    output_tokens=np.ones(n, dtype=np.int64), session_id=np.full(n, -1, dtype=np.int64),
                    block_offsets=offs, block_ids=None, block_tokens=4, prefix=pb)  # type: ignore[arg-type]


@settings(max_examples=120, deadline=None)
@given(pb=parent_forms())
def test_steps_decode_to_the_per_access_next_use(pb):
    w = _workload(pb)
    ctx = AccessContext.from_workload(w)
    expected = ctx.next_use  # from the expanded ids (sort by id, then position)
    steps = next_use_steps(pb)
    cc = CompiledNodeCache("belady", 2, 1, 2, 2, 10, AccessContext.from_workload(w), {})
    assert cc.M[NU_REQS] == len(w)
    assert [next_use_at(cc.M, pos) for pos in range(w.total_blocks)] == expected.tolist()
    assert len(steps.depth) <= w.total_blocks


def test_a_chain_has_one_step_per_request():
    # turn k extends turn k-1 whole: every block's next use is in the next turn
    pb = PrefixBlocks(np.array([-1, 0, 1]), np.array([0, 3, 5]), np.array([0, 3, 5, 6]), None, distinct=True)
    s = next_use_steps(pb)
    assert s.ends.tolist() == [3, 2, 1, 0]  # written from the last request back
    # request 0: all three blocks next used by request 1; request 2: never again
    assert [(int(s.depth[j]), int(s.request[j])) for j in range(s.ends[1], s.ends[0])] == [(0, 1)]
    assert [(int(s.depth[j]), int(s.request[j])) for j in range(s.ends[3], s.ends[2])] == [(0, -1)]


def test_a_workload_that_is_not_distinct_is_refused():
    pb = PrefixBlocks.from_csr(np.array([0, 2, 4]), np.array([5, 6, 5, 7]))
    with pytest.raises(ValueError, match="distinct"):
        next_use_steps(pb)


def test_belady_replays_identically_without_the_per_access_array():
    cfg, pw, ctx = multi_turn(400, 40)
    res = run_single(cfg, pw, "belady", ctx=ctx, timing=False)
    assert "next_use" not in vars(ctx)  # steps only
    given_ctx = AccessContext(pw, next_use=AccessContext.from_workload(pw).next_use)  # the per-access path
    ref = run_single(cfg, pw, "belady", ctx=given_ctx, timing=False)
    assert np.array_equal(res.hit_blocks, ref.hit_blocks)
    assert [t.stats for t in res.cache.hbm] == [t.stats for t in ref.cache.hbm]
    assert res.cache.dram.stats == ref.cache.dram.stats and res.cache.dram.stats.evictions > 0
