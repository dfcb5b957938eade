"""The compiled engine (sim.engine) makes exactly the decisions of the Python reference.

Random prefix-sharing request streams go through ``NodeCache`` (Python
tiers and policies) and ``CompiledNodeCache`` side by side; after every
call the prefix found, the traffic, every tier's counters and occupancy
must agree. Whole replays (timed and hit-rate-only, every router) must give
identical per-request arrays, and so must the real Mooncake trace.
"""
import os
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.policies  # noqa: F401  (registers the policies)
from sim.cache.node import NodeCache
from sim.cache.tier import Tier
from sim.config import load_config
from sim.engine.dispatch import KERNELS
from sim.engine.node_cache import CompiledNodeCache
from sim.engine.routing import ROUTER_KERNELS
from sim.errors import InputError
from sim.modes.common import prepare_workload
from sim.modes.single import run_single
from sim.policies import make_policy
from sim.policies.base import AccessContext
from tests.conftest import MOONCAKE
from trace.workload import Workload

POLICIES = sorted(KERNELS)


def _workload(reqs, sessions=None):
    return Workload.from_requests(reqs, session_id=sessions)


def _pair(policy, ctx, hbm, dram, ssd, workers, write_through, depth=2):
    seen = OrderedDict()  # selective_write: one reuse history per node, as policy_params gives

    def tier(name, cap):
        return Tier(name, cap, 10, make_policy(policy, cap, ctx, depth_threshold=depth, seen=seen))

    py = NodeCache([tier("hbm", hbm) for _ in range(workers)], tier("dram", dram), tier("ssd", ssd),
                   write_through=write_through)
    cc = CompiledNodeCache(policy, hbm, workers, dram, ssd, 10, ctx, {"depth_threshold": depth},
                           write_through=write_through)
    return py, cc


def _state(cache):
    tiers = cache.hbm + [cache.dram, cache.ssd]
    return [(len(t), t.stats) for t in tiers], cache.traffic, cache.prefetched_blocks


# Requests are prefix chains over a small tree of block ids (shared prefixes, reuse, ghosts).
prefix_requests = st.lists(
    st.lists(st.integers(0, 2), min_size=1, max_size=7).map(
        lambda path: [hash(tuple(path[: k + 1])) & 0xFFFF for k in range(len(path))]
    ),
    min_size=1, max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(reqs=prefix_requests, policy=st.sampled_from(POLICIES),
       caps=st.tuples(st.integers(0, 5), st.integers(0, 6), st.integers(0, 8)),
       workers=st.integers(1, 3), write_through=st.booleans(), seed=st.integers(0, 9))
def test_same_decisions_as_the_python_reference(reqs, policy, caps, workers, write_through, seed):
    w = _workload(reqs)
    ctx = AccessContext.from_workload(w)
    py, cc = _pair(policy, ctx, *caps, workers, write_through)
    rng = np.random.default_rng(seed)
    for i in range(len(w)):
        lo, hi = int(w.block_offsets[i]), int(w.block_offsets[i + 1])
        blocks = w.block_ids[lo:hi]
        wk = int(rng.integers(workers))
        if rng.random() < 0.2:  # a prefetch of some request's context
            assert py.prefetch(wk, blocks, lo) == cc.prefetch(wk, blocks, lo)
        found = py.lookup(wk, blocks)
        assert cc.lookup(wk, blocks) == found
        assert cc.hbm_prefix(wk, blocks) == py.hbm_prefix(wk, blocks)
        n = sum(found)
        assert cc.fetch(wk, blocks, lo, n) == py.fetch(wk, blocks, lo, n)
        assert cc.store(wk, blocks, lo, n) == py.store(wk, blocks, lo, n)
        assert _state(cc) == _state(py)
        for b in blocks[:3]:
            assert (b in cc.dram) == (b in py.dram) and (b in cc.hbm[wk]) == (b in py.hbm[wk])


@pytest.mark.parametrize("write_through", [False, True])
def test_long_skewed_stream_same_as_reference_and_invariants(write_through):
    """2,000 requests with Zipf-like reuse: deep frequencies, ghost hits, full tiers everywhere."""
    rng = np.random.default_rng(3)
    reqs = [list(np.minimum(rng.zipf(1.3, size=rng.integers(1, 12)), 500)) for _ in range(2000)]
    w = _workload(reqs)
    ctx = AccessContext.from_workload(w)
    for policy in POLICIES:
        py, cc = _pair(policy, ctx, 7, 19, 31, 2, write_through)
        for i in range(len(w)):
            lo, hi = int(w.block_offsets[i]), int(w.block_offsets[i + 1])
            blocks = w.block_ids[lo:hi]
            found = cc.lookup(i % 2, blocks)
            assert found == py.lookup(i % 2, blocks), (policy, i)
            n = sum(found)
            cc.fetch(i % 2, blocks, lo, n), py.fetch(i % 2, blocks, lo, n)
            cc.store(i % 2, blocks, lo, n), py.store(i % 2, blocks, lo, n)
        assert _state(cc) == _state(py), policy
        for t in cc.hbm + [cc.dram, cc.ssd]:
            s = t.stats
            assert len(t) <= t.capacity
            if not write_through:
                assert s.inserts == s.evictions + s.taken + len(t), policy


def _arrays(res):
    return [res.worker, res.hit_blocks, res.hit_tokens, res.ttft_s, res.tpot_s, res.e2e_s, res.load_s]


def _same_run(a, b):
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.cache.traffic == b.cache.traffic
    assert a.cache.occupancy == b.cache.occupancy
    assert a.cache.prefetched_blocks == b.cache.prefetched_blocks
    assert [t.stats for g in a.cache.tiers().values() for t in g] == \
        [t.stats for g in b.cache.tiers().values() for t in g]


@pytest.mark.parametrize("router", sorted(ROUTER_KERNELS))
def test_whole_replays_match_for_every_router(router):
    from trace.synthetic import generate

    base = ["hardware.hbm.capacity_gib=0.02", "hardware.dram.capacity_gib=0.05", "hardware.ssd.capacity_gib=0.2",
            "synthetic.requests=300", f"cluster.router={router}", "seed=5"]
    cfg = load_config(preset="smoke", overrides=base)
    ref = load_config(preset="smoke", overrides=base + ["cache.engine=python"])
    w, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    for policy in ("lru", "arc", "session_prefetch", "belady") if router != "prefix_aware" else POLICIES:
        for timing in (False, True):
            a = run_single(ref, w, policy, ctx=ctx, timing=timing)
            b = run_single(cfg, w, policy, ctx=ctx, timing=timing)
            assert not isinstance(a.cache, CompiledNodeCache) and isinstance(b.cache, CompiledNodeCache)
            _same_run(a, b)


@pytest.mark.skipif(not os.path.exists(MOONCAKE), reason="../shared/traces not present")
def test_mooncake_hit_rate_only_matches():
    from trace.formats import load_trace

    cfg = load_config(overrides=["hardware.hbm.capacity_gib=8"])
    ref = load_config(overrides=["hardware.hbm.capacity_gib=8", "cache.engine=python"])
    w, _ = load_trace(MOONCAKE, limit=4000)
    w, ctx = prepare_workload(cfg, w)
    for policy in POLICIES:
        _same_run(run_single(ref, w, policy, ctx=ctx, timing=False), run_single(cfg, w, policy, ctx=ctx, timing=False))


def test_engine_choice():
    cfg = load_config(overrides=["cache.engine=compiled"])
    from sim.modes.single import use_engine

    assert use_engine(cfg, "lru")
    with pytest.raises(InputError, match="cache.engine"):
        use_engine(cfg, "learned")
    assert not use_engine(load_config(), "learned")  # auto: the Python path
    assert not use_engine(load_config(overrides=["cache.engine=python"]), "lru")


def test_a_router_without_kernel_drives_the_compiled_cache_from_python():
    """A user's router (no compiled twin) still runs, on the compiled cache, with the same results."""
    from sim.routing.base import Router
    from sim.routing.registry import ROUTERS, register
    from trace.synthetic import generate

    @register
    class EvenOdd(Router):
        name = "test_even_odd"

        def choose(self, req, blocks, session):
            return (req % 2) * (self.s.n_workers - 1)

    try:
        base = ["hardware.hbm.capacity_gib=0.02", "synthetic.requests=200", "cluster.router=test_even_odd"]
        cfg = load_config(preset="smoke", overrides=base)
        ref = load_config(preset="smoke", overrides=base + ["cache.engine=python"])
        w, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
        for timing in (False, True):
            a, b = run_single(ref, w, "lru", ctx=ctx, timing=timing), run_single(cfg, w, "lru", ctx=ctx, timing=timing)
            assert isinstance(b.cache, CompiledNodeCache)
            _same_run(a, b)
            assert set(np.unique(b.worker)) == {0, b.setup.n_workers - 1}
    finally:
        ROUTERS.pop("test_even_odd", None)
