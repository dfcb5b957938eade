"""The compiled selective_write reads a block's depth from its request's start, not a per-access array."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.policies  # noqa: F401  (registers the policies)
from sim.engine.layout import DP_STARTS, depth_at
from sim.engine.node_cache import CompiledNodeCache
from sim.modes.single import run_single
from sim.policies.base import AccessContext
from sim.policies.replay import context_for_keys
from tests.conftest import multi_turn
from trace.workload import Workload


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 6), min_size=1, max_size=25))
def test_depth_at_equals_the_per_access_depth(lengths):
    # requests without blocks repeat a start: the search must still land on the right value
    reqs = [list(range(100 * i, 100 * i + n)) for i, n in enumerate(lengths)]
    w = Workload.from_requests(reqs)
    ctx = AccessContext.from_workload(w)
    cc = CompiledNodeCache("selective_write", 2, 1, 2, 2, 10, ctx, {"depth_threshold": 1})
    assert cc.M[DP_STARTS] == len(w)
    got = [depth_at(cc.M, pos) for pos in range(w.total_blocks)]
    assert got == ctx.depth.tolist()


def test_hand_given_depths_are_read_as_given():
    ctx = context_for_keys([7, 8, 9], depth=[20, 0, 5])
    cc = CompiledNodeCache("selective_write", 2, 1, 2, 2, 10, ctx, {"depth_threshold": 1})
    assert cc.M[DP_STARTS] == 0
    assert [depth_at(cc.M, p) for p in range(3)] == [20, 0, 5]


def test_a_replay_builds_no_per_access_depth():
    cfg, pw, ctx = multi_turn(300, 30)
    res = run_single(cfg, pw, "selective_write", ctx=ctx, timing=False)
    assert "depth" not in vars(ctx)  # the cached_property was never read
    # the same decisions as the Python engine, which reads the per-access depths
    cfg.cache = cfg.cache.model_copy(update={"engine": "python"})
    ref = run_single(cfg, pw, "selective_write", ctx=AccessContext.from_workload(pw), timing=False)
    assert np.array_equal(res.hit_blocks, ref.hit_blocks)
    assert res.cache.dram.stats == ref.cache.dram.stats
    assert res.cache.dram.stats.rejected > 0  # the depth filter decided something here
