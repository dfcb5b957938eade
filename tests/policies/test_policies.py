"""Eviction policies: interface properties (hypothesis), hand-computed hit
counts, Belady optimality, and the direction each policy departs from LRU."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.policies import NEVER, REGISTRY, AccessContext, make_policy
from sim.policies.replay import context_for_keys, prefix_replay, replay, replay_hits
from trace.workload import Workload

OURS = ["lru", "fifo", "lfu", "arc", "s3fifo", "belady", "selective_write", "session_prefetch"]
POLICIES = sorted(REGISTRY)
HUGE = 10**9  # selective_write depth threshold that admits everything (pure LRU eviction)


def hits(name, seq, cap, **params):
    return replay_hits(name, np.array(seq, dtype=np.int64), cap, **params)


# ---------------------------------------------------------------- registry


def test_registry_has_every_policy():
    assert set(OURS) <= set(REGISTRY)
    assert REGISTRY["session_prefetch"].prefetch is True
    assert REGISTRY["lru"].prefetch is False
    assert issubclass(REGISTRY["session_prefetch"], REGISTRY["lru"])


def test_make_policy_unknown_name_lists_known():
    with pytest.raises(KeyError, match="lru"):
        make_policy("nope", 4)


@pytest.mark.parametrize("name", POLICIES)
def test_unused_params_accepted_and_capacity_zero(name):
    ctx = context_for_keys([1, 2, 1])
    pol = make_policy(name, 0, ctx, some_unused_knob=3)
    assert len(pol) == 0 and 1 not in pol
    with pytest.raises((IndexError, ValueError)):
        pol.victim()
    assert replay_hits(name, np.array([1, 2, 1, 1]), 0) == 0


def test_belady_requires_context():
    with pytest.raises(ValueError):
        make_policy("belady", 4)


# ---------------------------------------------------------------- properties

ops_strategy = st.lists(
    st.tuples(st.sampled_from(["access", "access", "access", "remove", "victim"]), st.integers(0, 9)),
    min_size=1,
    max_size=80,
)


@pytest.mark.parametrize("name", POLICIES)
@settings(max_examples=60, deadline=None)
@given(ops=ops_strategy, cap=st.integers(1, 8), depth_mod=st.integers(1, 12))
def test_interface_matches_shadow_set(name, ops, cap, depth_mod):
    keys = np.array([k for _, k in ops], dtype=np.int64)
    depth = np.arange(len(keys), dtype=np.int64) % depth_mod  # some deep accesses for selective_write
    ctx = context_for_keys(keys, depth)
    pol = make_policy(name, cap, ctx, depth_threshold=3)
    shadow: set[int] = set()
    for pos, (op, key) in enumerate(ops):
        if op == "access":
            assert (key in pol) == (key in shadow)
            if key in shadow:
                pol.touch(key, pos)
            elif pol.admit(key, pos):
                while len(pol) >= cap:
                    v = pol.victim()
                    assert v in shadow, "victim must be a resident key"
                    shadow.remove(v)
                    assert v not in pol
                pol.insert(key, pos)
                shadow.add(key)
        elif op == "remove":
            if key in shadow:
                pol.remove(key)
                shadow.remove(key)
        else:  # victim
            if shadow:
                v = pol.victim()
                assert v in shadow
                shadow.remove(v)
            else:
                with pytest.raises((IndexError, ValueError)):
                    pol.victim()
        assert len(pol) == len(shadow) <= cap
        for k in range(10):
            assert (k in pol) == (k in shadow)


@settings(max_examples=150, deadline=None)
@given(seq=st.lists(st.integers(0, 7), min_size=1, max_size=60), cap=st.integers(1, 6))
def test_belady_dominates_every_policy(seq, cap):
    keys = np.array(seq, dtype=np.int64)
    ctx = context_for_keys(keys)
    opt = replay_hits("belady", keys, cap, ctx)
    for name in POLICIES:
        h = replay_hits(name, keys, cap, ctx, depth_threshold=HUGE)
        assert opt >= h, (name, opt, h)


@settings(max_examples=60, deadline=None)
@given(seq=st.lists(st.integers(0, 9), min_size=1, max_size=60), cap=st.integers(1, 6))
def test_lru_variants_match_lru(seq, cap):
    lru = hits("lru", seq, cap)
    assert hits("session_prefetch", seq, cap) == lru
    assert hits("selective_write", seq, cap, depth_threshold=HUGE) == lru


# ---------------------------------------------------------------- hand-computed


def test_belady_hand_example():
    # cap 2, 1 2 3 1 4 1 2:
    # 1 m {1}; 2 m {1,2}; 3 m: next(1)=3, next(2)=6 -> evict 2 {1,3}; 1 HIT;
    # 4 m: next(1)=5, next(3)=never -> evict 3 {1,4}; 1 HIT; 2 m  => 2 hits
    assert hits("belady", [1, 2, 3, 1, 4, 1, 2], 2) == 2
    # LRU: 3 evicts 1, 1 evicts 2, 4 evicts 3, 1 HIT, 2 m  => 1 hit
    assert hits("lru", [1, 2, 3, 1, 4, 1, 2], 2) == 1


def test_belady_next_use_context():
    ctx = context_for_keys([5, 6, 5, 7])
    assert ctx.next_use.tolist() == [2, NEVER, NEVER, NEVER]
    pol = make_policy("belady", 2, ctx)
    pol.insert(5, 0)
    pol.insert(6, 1)
    assert pol.victim() == 6  # 6 is never used again, 5 is used at pos 2


def test_lru_fifo_lfu_hand_counts():
    # cap 2, 1 2 1 3 2 3
    # LRU : 1m 2m 1H(order 2,1) 3m-evict 2 {1,3} 2m-evict 1 {3,2} 3H        -> 2
    # FIFO: 1m 2m 1H(queue 1,2) 3m-evict 1 {2,3} 2H 3H                     -> 3
    # LFU : 1m 2m 1H(f1=2) 3m-evict 2(f=1) 2m-evict 3(f=1) 3m-evict 2      -> 1
    seq = [1, 2, 1, 3, 2, 3]
    assert hits("lru", seq, 2) == 2
    assert hits("fifo", seq, 2) == 3
    assert hits("lfu", seq, 2) == 1
    # cap 2, 1 1 2 3 1: LFU keeps 1 (f=2) and evicts 2 -> 1 HIT at the end (2 hits);
    # LRU and FIFO evict 1 when 3 arrives (1 hit).
    seq = [1, 1, 2, 3, 1]
    assert (hits("lfu", seq, 2), hits("lru", seq, 2), hits("fifo", seq, 2)) == (2, 1, 1)


def test_lfu_ties_break_by_recency_and_remove_keeps_order():
    ctx = context_for_keys([0])
    pol = make_policy("lfu", 4, ctx)
    for k in (1, 2, 3, 4):
        pol.insert(k, 0)
    pol.touch(1, 0)  # 1 -> f2; 2,3,4 at f1 (2 oldest)
    pol.touch(2, 0)  # 2 -> f2 after 1
    pol.remove(3)
    assert pol.victim() == 4
    assert pol.victim() == 1  # f2 bucket, 1 older than 2
    assert pol.victim() == 2
    assert len(pol) == 0


def test_prefix_replay_strict_prefix():
    # request 0: blocks 1 2 3 (all miss); request 1: 1 9 3 -> hit stops at 9 (1 hit, 3 not
    # counted though resident); request 2: 1 9 3 -> 3 hits. cap large.
    w = Workload(
        name="t",
        arrival_ms=[0.0, 1.0, 2.0],
        input_tokens=[3, 3, 3],
        output_tokens=[1, 1, 1],
        session_id=[-1, -1, -1],
        block_offsets=[0, 3, 6, 9],
        block_ids=[1, 2, 3, 1, 9, 3, 1, 9, 3],
        block_tokens=1,
    )
    assert prefix_replay("lru", w, 100) == (4, 9)
    assert prefix_replay("lru", w, 0) == (0, 9)
    assert prefix_replay("belady", w, 100) == (4, 9)


# ---------------------------------------------------------------- differ from LRU, in the expected direction


def scan_sequence(hot=5, rounds=6, scan=60, scan_base=1000):
    hot_keys = list(range(hot))
    return hot_keys * rounds + list(range(scan_base, scan_base + scan)) + hot_keys * rounds


@pytest.mark.parametrize("name", ["arc", "s3fifo"])
def test_scan_resistance(name):
    seq = scan_sequence()
    cap = 10
    lru = hits("lru", seq, cap)
    other = hits(name, seq, cap)
    # LRU loses the hot set to the one-time scan; ARC (hot keys in T2, scan in T1)
    # and S3-FIFO (hot keys promoted to M, scan keys die in S) keep it.
    assert lru == 2 * 5 * 5  # every hot access hits but the first of each key per phase
    assert other == lru + 5


@pytest.mark.parametrize("name", ["arc", "s3fifo"])
def test_scan_resistance_interleaved(name):
    # hot set accessed between every scan key: LRU keeps up too, so add scan
    # bursts longer than the cache between hot rounds.
    rng = np.random.default_rng(0)
    seq = []
    nxt = 1000
    for _ in range(30):
        seq += list(range(4)) * 2
        burst = int(rng.integers(8, 20))
        seq += list(range(nxt, nxt + burst))
        nxt += burst
    cap = 8
    assert hits(name, seq, cap) > hits("lru", seq, cap)


def test_lfu_beats_lru_on_frequency_skew_and_loses_on_stale_frequency():
    # hot pair accessed often, then a burst of cold one-timers longer than the cache
    seq = [0, 1] * 5 + list(range(100, 110)) + [0, 1] * 3
    assert hits("lfu", seq, 3) > hits("lru", seq, 3)
    # key 1 earns a high count and then goes cold: LFU keeps it, LRU adapts
    seq = [1, 1, 1, 1] + [2, 3] * 6
    assert hits("lfu", seq, 2) < hits("lru", seq, 2)


def test_fifo_loses_to_lru_when_keys_are_retouched():
    # key 0 is re-touched between insertions of new keys: LRU keeps it, FIFO drops it
    seq = []
    for k in range(1, 30):
        seq += [0, k]
    assert hits("fifo", seq, 3) < hits("lru", seq, 3)


def test_belady_beats_lru_on_loop():
    seq = [1, 2, 3] * 10  # cyclic loop one bigger than the cache: LRU never hits
    assert hits("lru", seq, 2) == 0
    assert hits("belady", seq, 2) > 10


def _deep_prefix_workload(n_req=40, shared=4, tail=12):
    """Every request: a shared 4-block system prompt, then 12 unique blocks."""
    ids, offs = [], [0]
    nxt = 1000
    for _ in range(n_req):
        ids += list(range(shared)) + list(range(nxt, nxt + tail))
        nxt += tail
        offs.append(len(ids))
    n = n_req
    return Workload(
        name="deep",
        arrival_ms=np.arange(n, dtype=float),
        input_tokens=np.full(n, shared + tail),
        output_tokens=np.ones(n, dtype=np.int64),
        session_id=np.full(n, -1),
        block_offsets=offs,
        block_ids=ids,
        block_tokens=1,
    )


def test_selective_write_admits_fewer_and_keeps_shallow_prefix():
    w = _deep_prefix_workload()
    ctx = AccessContext.from_workload(w)
    cap = 10  # > the 9 blocks of depth <= 8, < the 16 blocks of a request
    lru = replay("lru", w.block_ids, cap, ctx)
    sel = replay("selective_write", w.block_ids, cap, ctx, depth_threshold=8)
    assert sel.inserts < lru.inserts
    assert sel.hits > lru.hits
    # prefix rule: LRU flushes the shared prompt with each request's tail
    lru_hit, total = prefix_replay("lru", w, cap)
    sel_hit, _ = prefix_replay("selective_write", w, cap, depth_threshold=8)
    assert lru_hit == 0
    assert sel_hit == 4 * (40 - 1)
    assert total == 40 * 16


def test_selective_write_admits_deep_block_on_second_sighting():
    ctx = context_for_keys([7, 7], depth=[20, 20])
    pol = make_policy("selective_write", 4, ctx, depth_threshold=8)
    assert not pol.admit(7, 0)
    assert pol.admit(7, 1)
    # config alias
    assert make_policy("selective_write", 4, ctx, selective_depth=30).admit(9, 0)


def test_arc_ghost_hit_goes_to_t2_and_adapts_p():
    ctx = context_for_keys([0])
    pol = make_policy("arc", 2, ctx)
    for k in (1, 2):
        pol.admit(k, 0)
        pol.insert(k, 0)
    pol.touch(1, 0)  # T1 = [2], T2 = [1]
    pol.admit(3, 0)
    assert pol.victim() == 2  # |T1| = 1 > p = 0: T1's LRU -> B1
    pol.insert(3, 0)  # T1 = [3], B1 = [2]
    assert 2 in pol.b1 and 3 in pol.t1
    pol.admit(2, 0)  # ghost hit in B1: p -> 1 before REPLACE
    assert pol.victim() == 1  # |T1| = 1 is not > p = 1: T2's LRU -> B2
    pol.insert(2, 0)
    assert pol.p == 1.0 and 2 in pol.t2 and 1 in pol.b2 and 2 not in pol.b1
    # case IV with |T1| == c: the paper drops T1's LRU without a ghost entry
    pol = make_policy("arc", 2, ctx)
    for k in (1, 2, 3):
        pol.admit(k, 0)
        while len(pol) >= 2:
            pol.victim()
        pol.insert(k, 0)
    assert len(pol.b1) == 0 and list(pol.t1) == [2, 3]


def test_s3fifo_ghost_hit_enters_main():
    ctx = context_for_keys([0])
    pol = make_policy("s3fifo", 10, ctx)
    for k in range(10):
        pol.insert(k, 0)
    assert pol.victim() == 0  # oldest in S, never hit -> ghost
    assert 0 in pol.ghost
    pol.insert(0, 0)
    assert 0 in pol.main and 0 not in pol.small
