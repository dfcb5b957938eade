"""Belady's next uses as steps (trace.next_use) equal the per-access array, read back by the engine too."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import sim.policies  # noqa: F401  (registers the policies)
from sim.engine.layout import NU_REQS, next_use_at
from sim.engine.node_cache import CompiledNodeCache
from sim.modes.single import run_single
from sim.policies.base import AccessContext
from tests.conftest import distinct_parent_forms, multi_turn, prefix_workload
from trace.next_use import next_use_steps
from trace.prefix import PrefixBlocks


@settings(max_examples=120, deadline=None)
@given(pb=distinct_parent_forms())
def test_steps_decode_to_the_per_access_next_use(pb):
    w = prefix_workload(pb)
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
