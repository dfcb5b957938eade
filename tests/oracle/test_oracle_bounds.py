"""Oracle bounds: hand-computed cases, exactness against exhaustive search
(hypothesis on random prefix-tree workloads), the invariant
content >= relaxed >= strict-prefix >= LRU, and the real trace."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.oracle.access import accesses, leading_run
from sim.oracle.audit import exhaustive_relaxed, exhaustive_strict, milp_optimum, naive_content, naive_lru
from sim.oracle.bounds import BOUND_NAMES, compute_bounds, single_bound_tokens
from sim.oracle.buckets import bucket_index, parse_buckets
from sim.oracle.flow import interval_loads, max_weight_schedule, prefix_close
from sim.oracle.replays import belady_hits
from sim.policies.replay import prefix_replay
from tests.conftest import MOONCAKE as TRACE
from trace.workload import Workload


def wl(paths, inputs=None, bt=4) -> Workload:
    return Workload.from_requests([list(p) for p in paths], input_tokens=inputs, block_tokens=bt)


@st.composite
def prefix_workloads(draw, max_requests=7, max_depth=4, bt=4):
    """Random requests that are root paths of a forest (ids name their prefix)."""
    paths: list[list[int]] = []
    inputs: list[int] = []
    next_id = 0
    for _ in range(draw(st.integers(1, max_requests))):
        base = draw(st.integers(-1, len(paths) - 1))
        path = []
        if base >= 0:
            path = paths[base][: draw(st.integers(0, len(paths[base])))]
        extra = draw(st.integers(0 if path else 1, max_depth - len(path))) if len(path) < max_depth else 0
        for _ in range(extra):
            path.append(next_id)
            next_id += 1
        if not path:
            path = [next_id]
            next_id += 1
        paths.append(path)
        inputs.append((len(path) - 1) * bt + draw(st.integers(1, bt)))  # partial last block
    return wl(paths, inputs, bt)


# ------------------------------------------------------------ hand-computed


def test_hand_computed_small_case():
    # Requests: [1,2] [1,3] [1,2] with 4-token blocks, capacity 2 blocks.
    w = wl([[1, 2], [1, 3], [1, 2]])
    acc = accesses(w)
    b = compute_bounds(acc, 2)
    # content: block 1 hits in requests 2 and 3, block 2 in request 3 -> 3 blocks = 12 of 24 tokens.
    assert b.tokens["content"] == 12 and b.block_hits["content"] == 3
    # optimum: keep {1, 2} after request 1 -> 1 hits at r2 (1 block), at r3 keep {1,2}: 2 blocks -> 3 blocks.
    assert b.tokens["strict_prefix"] == 12 and b.tokens["relaxed"] == 12
    # LRU (capacity 2): after r1 {1,2}; r2 hits 1, inserts 3 evicting 2 -> {1,3}; r3 hits 1 only.
    assert b.tokens["lru"] == 8 and b.block_hits["lru"] == 2
    assert b.proven_optimal


def test_partial_last_block_makes_belady_token_suboptimal():
    # C = 1. A=[a] (4 tokens), B=[b] (1 token): sequence A, B, B, A. Belady keeps
    # the nearest next use (b) and wins 1 token; the token optimum keeps a (4).
    w = wl([[10], [20], [20], [10]], inputs=[4, 1, 1, 4])
    acc = accesses(w)
    bel = belady_hits(acc, 1)
    assert int(acc.weight[bel].sum()) == 1 and int(bel.sum()) == 1
    b = compute_bounds(acc, 1, "exact")
    assert b.tokens["strict_prefix"] == 4 and b.tokens["relaxed"] == 4 and b.proven_optimal
    fast = compute_bounds(acc, 1, "belady")
    assert fast.tokens["strict_prefix"] == 1 and fast.tokens["relaxed"] == 4 and not fast.proven_optimal
    assert exhaustive_strict(w, 1) == 4


def test_leading_run_stops_at_first_miss():
    w = wl([[1, 2, 3], [4, 5]])
    acc = accesses(w)
    run = leading_run(np.array([True, False, True, True, True]), acc)
    assert run.tolist() == [True, False, False, True, True]


def test_capacity_zero_and_everything_fits():
    w = wl([[1, 2], [1, 2], [1, 3]])
    acc = accesses(w)
    z = compute_bounds(acc, 0)
    assert z.tokens["relaxed"] == z.tokens["strict_prefix"] == z.tokens["lru"] == 0
    big = compute_bounds(acc, 100)
    assert big.tokens["strict_prefix"] == big.tokens["content"] == 4 * 3
    assert big.method.startswith("fits")


def test_not_prefix_consistent_is_flagged():
    # Block 2 follows 1 in one request and 9 in another.
    w = wl([[1, 2], [9, 2], [1, 2]])
    acc = accesses(w)
    assert not acc.prefix_consistent
    b = compute_bounds(acc, 1)
    assert any("prefix-consistent" in n for n in b.notes)
    assert b.tokens["relaxed"] >= b.tokens["strict_prefix"] >= b.tokens["lru"]


def test_prefix_close_keeps_weight_and_feasibility():
    w = wl([[1, 2, 3], [1, 2, 3], [1, 2, 4]], inputs=[12, 11, 12])
    acc = accesses(w)
    fr = max_weight_schedule(acc, 2)
    closed = prefix_close(acc, fr.chosen)
    assert interval_loads(acc, closed).max() <= 2
    assert acc.weight[closed].sum() >= acc.weight[fr.chosen].sum()
    assert np.array_equal(leading_run(closed, acc), closed)


# ------------------------------------------------------------ properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix_workloads(max_requests=8), st.integers(1, 4))
def test_exact_optimum_matches_exhaustive_search(w, C):
    acc = accesses(w)
    assert acc.prefix_consistent
    b = compute_bounds(acc, C, "exact")
    es = exhaustive_strict(w, C)
    er = exhaustive_relaxed(w, C)
    # The theorem: relaxed optimum = strict-prefix optimum, both found exactly.
    assert es == er
    assert b.tokens["strict_prefix"] == es
    assert b.tokens["relaxed"] == er
    assert b.proven_optimal
    # Block-weighted: Belady's count is the unit-weight optimum and forms prefixes.
    assert b.block_hits["strict_prefix"] == b.block_hits["relaxed"] == exhaustive_strict(w, C, unit=True)
    assert b.block_hits["relaxed"] == exhaustive_relaxed(w, C, unit=True)


@settings(max_examples=150, deadline=None)
@given(prefix_workloads(max_requests=12, max_depth=6), st.integers(0, 8))
def test_invariant_and_references(w, C):
    acc = accesses(w)
    for method in ("exact", "belady"):
        b = compute_bounds(acc, C, method)
        t = [b.tokens[k] for k in BOUND_NAMES]
        assert all(x >= y for x, y in zip(t, t[1:], strict=False)), (method, t)
        bl = [b.block_hits[k] for k in BOUND_NAMES]
        assert all(x >= y for x, y in zip(bl, bl[1:], strict=False)), (method, bl)
    b = compute_bounds(acc, C, "exact")
    assert (b.tokens["content"], b.block_hits["content"]) == naive_content(w)
    assert (b.tokens["lru"], b.block_hits["lru"]) == naive_lru(w, C)
    assert b.block_hits["lru"] == prefix_replay("lru", w, C)[0]
    assert b.tokens["strict_prefix"] == milp_optimum(w, C, strict=True)
    assert single_bound_tokens(acc, C, "strict_prefix") == b.tokens["strict_prefix"]


# ------------------------------------------------------------ the real trace


@pytest.fixture(scope="module")
def mooncake():
    if not TRACE.exists():
        pytest.skip(f"real trace not found at {TRACE} (../shared absent)")
    from trace.formats import load_trace

    return load_trace(TRACE, "mooncake")[0]


@pytest.mark.parametrize("capacity", [300, 1024])
def test_real_trace_invariant_every_bucket(mooncake, capacity):
    pools = [("all", mooncake)] + [(b.label, mooncake.select(bucket_index(mooncake, b))) for b in parse_buckets(None)]
    for label, w in pools:
        if not len(w):
            continue
        acc = accesses(w)
        assert acc.prefix_consistent
        b = compute_bounds(acc, capacity)
        r = [b.hit_rate(k) for k in BOUND_NAMES]
        assert all(x >= y - 1e-12 for x, y in zip(r, r[1:], strict=False)), (label, r)
        assert b.proven_optimal, (label, b.notes)
        assert b.tokens["relaxed"] == b.tokens["strict_prefix"]
        if label == "all":
            # Published: about 40% prefix reuse at unlimited capacity (FAST'25 Table 2).
            assert 0.35 < b.hit_rate("content") < 0.42
            assert b.block_hits["lru"] == prefix_replay("lru", w, capacity)[0]
