"""Multi-tier cache invariants (hypothesis) and hand-checked moves."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.policies  # noqa: F401  (registers the policies)
from sim.cache.node import NodeCache
from sim.cache.tier import Tier
from sim.policies import make_policy
from sim.policies.base import REGISTRY, AccessContext
from trace.workload import Workload

POLICIES = sorted(n for n in REGISTRY if n != "learned")


def _workload(reqs):
    return Workload.from_requests(reqs)


def _cache(policy, ctx, hbm, dram, ssd, workers=1, write_through=False):
    def tier(name, cap):
        return Tier(name, cap, 10, make_policy(policy, cap, ctx, depth_threshold=2))
    return NodeCache([tier("hbm", hbm) for _ in range(workers)], tier("dram", dram), tier("ssd", ssd),
                     write_through=write_through)


# Requests are prefix chains over a small tree of block ids: block id = (parent id, branch).
prefix_requests = st.lists(
    st.lists(st.integers(0, 2), min_size=1, max_size=6).map(
        lambda path: [hash(tuple(path[: k + 1])) & 0xFFFF for k in range(len(path))]
    ),
    min_size=1, max_size=40,
)


def _replay(cache, w, workers, choose):
    for i in range(len(w)):
        lo, hi = int(w.block_offsets[i]), int(w.block_offsets[i + 1])
        blocks = w.block_ids[lo:hi]
        wk = choose(i) % workers
        nh, nd, ns = cache.lookup(wk, blocks)
        assert nh + nd + ns <= len(blocks)
        cache.fetch(wk, blocks, lo, nh + nd + ns)
        cache.store(wk, blocks, lo, nh + nd + ns)
        yield


@settings(max_examples=60, deadline=None)
@given(reqs=prefix_requests, policy=st.sampled_from(POLICIES), caps=st.tuples(
    st.integers(1, 4), st.integers(0, 5), st.integers(0, 6)), workers=st.integers(1, 3),
    write_through=st.booleans(), seed=st.integers(0, 5))
def test_hierarchy_invariants(reqs, policy, caps, workers, write_through, seed):
    w = _workload(reqs)
    ctx = AccessContext.from_workload(w)
    cache = _cache(policy, ctx, *caps, workers=workers, write_through=write_through)
    rng = np.random.default_rng(seed)
    for _ in _replay(cache, w, workers, lambda i: int(rng.integers(workers))):
        tiers = cache.hbm + [cache.dram, cache.ssd]
        for t in tiers:
            assert len(t) <= t.capacity  # capacity never exceeded
            assert len(t.policy) == len(t)  # policy and tier agree on residents
            s = t.stats
            assert s.inserts == s.evictions + s.taken + len(t)  # blocks conserved per tier
        if workers == 1 and not write_through:
            h, d, s_ = set(cache.hbm[0].pos), set(cache.dram.pos), set(cache.ssd.pos)
            assert not (h & d) and not (h & s_) and not (d & s_)  # exclusive tiers
    # bytes moved between tiers are the bytes that arrived there
    tr = cache.traffic
    assert cache.dram.stats.inserts == tr.hbm_to_dram
    if not write_through:
        assert cache.dram.stats.demotions_in == tr.hbm_to_dram
    assert cache.ssd.stats.inserts == tr.dram_to_ssd == cache.ssd.stats.demotions_in
    # every block read out of DRAM/SSD arrived in HBM
    hbm_in = sum(h.stats.inserts for h in cache.hbm)
    assert tr.dram_to_hbm + tr.ssd_to_hbm <= hbm_in


def test_hand_checked_demotion_and_promotion():
    # HBM holds 2 blocks, DRAM 2, SSD 2; LRU everywhere.
    w = _workload([[1, 2], [3, 4], [1, 2]])
    ctx = AccessContext.from_workload(w)
    c = _cache("lru", ctx, 2, 2, 2)
    c.store(0, w.blocks(0), 0, 0)  # HBM {1,2}
    c.store(0, w.blocks(1), 2, 0)  # HBM {3,4}; 1,2 demoted to DRAM
    assert set(c.hbm[0].pos) == {3, 4} and set(c.dram.pos) == {1, 2}
    assert c.lookup(0, w.blocks(2)) == (0, 2, 0)
    t = c.fetch(0, w.blocks(2), 4, 2)  # promote 1,2; 3,4 demoted to DRAM
    assert t.dram_to_hbm == 2 and t.hbm_to_dram == 2
    assert set(c.hbm[0].pos) == {1, 2} and set(c.dram.pos) == {3, 4}
    assert c.dram.stats.hits == 2 and c.dram.bytes_read == 20


def test_prefix_stops_at_first_missing_block():
    w = _workload([[1, 2, 3], [1, 9, 3]])
    c = _cache("lru", AccessContext.from_workload(w), 8, 0, 0)
    c.store(0, w.blocks(0), 0, 0)
    assert c.lookup(0, w.blocks(1)) == (1, 0, 0)  # block 3 is cached but follows a miss


def test_write_through_keeps_a_dram_copy_and_counts_hit_once():
    w = _workload([[1, 2], [3, 4], [1, 2]])
    c = _cache("lru", AccessContext.from_workload(w), 2, 4, 0, write_through=True)
    c.store(0, w.blocks(0), 0, 0)
    assert set(c.hbm[0].pos) == {1, 2} and set(c.dram.pos) == {1, 2}
    c.store(0, w.blocks(1), 2, 0)  # HBM victims 1,2 already have a copy: no extra traffic
    assert c.traffic.hbm_to_dram == 4
    assert c.lookup(0, w.blocks(2)) == (0, 2, 0)
    c.fetch(0, w.blocks(2), 4, 2)
    assert set(c.dram.pos) == {1, 2, 3, 4}  # copies stay
    assert c.dram.stats.hits == 2 and c.hbm[0].stats.hits == 0
