"""The oracle's compiled paths equal the ones they replaced.

* ``netsimplex.min_cost_flow`` against HiGHS (scipy linprog) on random
  networks, with both starting bases: same optimal cost, a feasible integral
  flow, and potentials satisfying the optimality conditions.
* ``flow.max_weight_schedule``: network simplex against the HiGHS LP on
  random workloads and on the real trace (value, dual bound, proof), and the
  fallback to HiGHS when the network simplex gives up.
* ``replays.belady_hits`` / ``lru_prefix_hits`` (numba) against the plain
  Python loops they replaced, kept here as the reference.
"""
from __future__ import annotations

from collections import OrderedDict
from heapq import heappop, heappush

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from sim.oracle import flow, netsimplex
from sim.oracle.access import NEVER, accesses
from sim.oracle.bounds import compute_bounds
from sim.oracle.buckets import bucket_index, parse_buckets
from sim.oracle.netsimplex import INFEASIBLE, OPTIMAL, min_cost_flow
from sim.oracle.replays import belady_hits, lru_prefix_hits
from tests.conftest import MOONCAKE as TRACE
from trace.workload import Workload


def wl(paths, inputs, bt=4) -> Workload:
    return Workload.from_requests(paths, input_tokens=np.array(inputs), block_tokens=bt)


@st.composite
def workloads(draw, max_requests=14, max_depth=5, bt=4):
    """Requests as root paths of a small forest (prefix-consistent) or, with
    `mixed`, arbitrary id lists (repeats and shared suffixes allowed)."""
    mixed = draw(st.booleans())
    paths, inputs = [], []
    for _ in range(draw(st.integers(1, max_requests))):
        if mixed:
            path = draw(st.lists(st.integers(0, 6), min_size=1, max_size=max_depth))
        else:
            base = draw(st.integers(-1, len(paths) - 1))
            path = list(paths[base][: draw(st.integers(0, len(paths[base])))]) if base >= 0 else []
            extra = draw(st.integers(0 if path else 1, max(0, max_depth - len(path))))
            path += [100 + 10 * len(paths) + j for j in range(extra)]
            if not path:
                path = [100 + 10 * len(paths)]
        paths.append(path)
        inputs.append((len(path) - 1) * bt + draw(st.integers(1, bt)))
    return wl(paths, inputs, bt)


# ------------------------------------------------------------ network simplex


def _highs(n, src, dst, cap, cost, supply):
    m = len(src)
    A = sp.csc_matrix((np.r_[np.ones(m), -np.ones(m)], (np.r_[src, dst], np.r_[np.arange(m), np.arange(m)])),
                      shape=(n, m))
    return linprog(cost, A_eq=A, b_eq=supply, bounds=np.stack([np.zeros(m), cap], 1), method="highs")


def _check_optimal(n, src, dst, cap, cost, supply, flow_, pi, ref):
    assert ref.status == 0
    assert flow_ @ cost == pytest.approx(ref.fun, abs=1e-6)
    out = np.bincount(src, weights=flow_, minlength=n) - np.bincount(dst, weights=flow_, minlength=n)
    assert np.array_equal(out, supply)
    assert np.all(flow_ >= 0) and np.all(flow_ <= cap)
    red = cost + pi[src] - pi[dst]
    assert np.all((red >= 0) | (flow_ == cap)) and np.all((red <= 0) | (flow_ == 0))


@pytest.mark.parametrize("seed", range(4))
def test_network_simplex_matches_highs_on_random_networks(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        n = int(rng.integers(2, 14))
        m = int(rng.integers(1, 40))
        src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
        keep = src != dst
        src, dst = src[keep], dst[keep]
        if not len(src):
            continue
        cap, cost = rng.integers(0, 7, len(src)), rng.integers(-6, 7, len(src))
        supply = np.zeros(n, dtype=np.int64)
        k = int(rng.integers(0, 6))
        supply[0], supply[-1] = k, -k
        status, f, pi, _ = min_cost_flow(n, src, dst, cap, cost, supply)
        ref = _highs(n, src, dst, cap, cost, supply)
        if ref.status == 2:
            assert status == INFEASIBLE
        else:
            assert status == OPTIMAL
            _check_optimal(n, src, dst, cap, cost, supply, f, pi, ref)


@pytest.mark.parametrize("seed", range(4))
def test_network_simplex_chain_start_matches_highs(seed):
    # The oracle's shape: a path 0 -> 1 -> .. -> n-1 plus forward chords.
    rng = np.random.default_rng(100 + seed)
    for _ in range(60):
        n = int(rng.integers(2, 25))
        m = int(rng.integers(0, 50))
        p = rng.integers(0, n - 1, m)
        q = p + 1 + (rng.random(m) * (n - 1 - p)).astype(np.int64)
        C = int(rng.integers(1, 6))
        path = np.arange(n - 1)
        src, dst = np.r_[p, path], np.r_[q, path + 1]
        cap = np.r_[rng.integers(1, 4, m), np.full(n - 1, C + 1)]
        cost = np.r_[-rng.integers(1, 9, m), np.zeros(n - 1, dtype=np.int64)]
        supply = np.zeros(n, dtype=np.int64)
        supply[0], supply[-1] = C, -C
        status, f, pi, _ = min_cost_flow(n, src, dst, cap, cost, supply, chain=m + path)
        assert status == OPTIMAL
        _check_optimal(n, src, dst, cap, cost, supply, f, pi, _highs(n, src, dst, cap, cost, supply))


def test_network_simplex_rejects_a_bad_chain():
    src, dst = np.array([0, 1]), np.array([1, 2])
    with pytest.raises(ValueError):
        min_cost_flow(3, src, dst, np.array([5, 5]), np.zeros(2), np.array([1, 0, -1]), chain=np.array([1, 0]))
    with pytest.raises(ValueError):  # running supply at capacity: not strongly feasible
        min_cost_flow(3, src, dst, np.array([1, 5]), np.zeros(2), np.array([1, 0, -1]), chain=np.array([0, 1]))


# ------------------------------------------------------------ the oracle's flow


def _same_schedule(acc, C):
    a = flow.max_weight_schedule(acc, C, solver="network-simplex")
    b = flow.max_weight_schedule(acc, C, solver="highs")
    assert a.value == b.value and a.proven == b.proven
    if a.proven:
        assert a.upper_bound == pytest.approx(b.upper_bound, abs=1e-6)
    assert flow.interval_loads(acc, a.chosen).max() <= C
    return a


@settings(max_examples=150, deadline=None)
@given(workloads(), st.integers(1, 6))
def test_schedule_network_simplex_equals_highs(w, C):
    acc = accesses(w)
    a = _same_schedule(acc, C)
    assert a.proven


def _gives_up(n, src, *a, **k):
    return netsimplex.PIVOT_LIMIT, np.zeros(len(src), np.int64), np.zeros(n, np.int64), 0


def _wrong_answer(n, src, *a, **k):
    # Claims optimality with an empty schedule and zero potentials.
    return netsimplex.OPTIMAL, np.zeros(len(src), np.int64), np.zeros(n, np.int64), 0


@pytest.mark.parametrize("fake", [_gives_up, _wrong_answer])
def test_schedule_falls_back_to_highs(monkeypatch, fake):
    w = wl([[1, 2, 3], [1, 2, 3], [1, 2, 4], [5], [1, 2, 4], [5]], [12, 11, 12, 3, 9, 4])
    acc = accesses(w)
    ref = flow.max_weight_schedule(acc, 2)
    ref_tokens = compute_bounds(acc, 2).tokens
    assert "network simplex" in ref.method and ref.proven
    monkeypatch.setattr(netsimplex, "min_cost_flow", fake)
    fb = flow.max_weight_schedule(acc, 2)
    assert "HiGHS" in fb.method and fb.proven and fb.value == ref.value
    assert compute_bounds(acc, 2).tokens == ref_tokens


@pytest.fixture(scope="module")
def mooncake():
    if not TRACE.exists():
        pytest.skip(f"real trace not found at {TRACE} (../shared absent)")
    from trace.formats import load_trace

    return load_trace(TRACE, "mooncake")[0]


def test_real_trace_network_simplex_equals_highs(mooncake):
    b = next(b for b in parse_buckets(None) if b.lo == 32 * 1024)
    small = accesses(mooncake.select(bucket_index(mooncake, b)))
    for C in (16, 300, 1500):
        assert _same_schedule(small, C).proven
    assert _same_schedule(accesses(mooncake), 100).proven


# ------------------------------------------------------------ replays


def belady_reference(acc, capacity):
    """The dict + lazy heap loop the compiled Belady replaced."""
    hit = np.zeros(acc.n, dtype=bool)
    if capacity <= 0:
        return hit
    res, heap = {}, []
    for pos in range(acc.n):
        k, nu = int(acc.ids[pos]), int(acc.next[pos])
        if k in res:
            hit[pos] = True
            if nu == NEVER:
                del res[k]
            else:
                res[k] = nu
                heappush(heap, (-nu, k))
            continue
        if nu == NEVER:
            continue
        if len(res) < capacity:
            res[k] = nu
            heappush(heap, (-nu, k))
            continue
        while res.get(heap[0][1]) != -heap[0][0]:
            heappop(heap)
        neg, kk = heap[0]
        if -neg > nu:
            heappop(heap)
            del res[kk]
            res[k] = nu
            heappush(heap, (-nu, k))
    return hit


def lru_reference(acc, capacity):
    """The OrderedDict loop the compiled strict-prefix LRU replaced."""
    hit = np.zeros(acc.n, dtype=bool)
    if capacity <= 0:
        return hit
    od: OrderedDict[int, None] = OrderedDict()
    ids = acc.ids.tolist()
    for i in range(acc.n_requests):
        lo, hi = int(acc.offsets[i]), int(acc.offsets[i + 1])
        h = lo
        while h < hi and ids[h] in od:
            hit[h] = True
            h += 1
        for pos in range(lo, hi):
            if ids[pos] in od:
                od.move_to_end(ids[pos])
            else:
                od[ids[pos]] = None
                if len(od) > capacity:
                    od.popitem(last=False)
    return hit


@settings(max_examples=300, deadline=None)
@given(workloads(max_requests=20, max_depth=6), st.integers(0, 8))
def test_compiled_replays_equal_python_loops(w, C):
    acc = accesses(w)
    assert np.array_equal(belady_hits(acc, C), belady_reference(acc, C))
    assert np.array_equal(lru_prefix_hits(acc, C), lru_reference(acc, C))


def test_compiled_replays_equal_python_loops_on_real_trace(mooncake):
    acc = accesses(mooncake)
    for C in (1, 100, 3000):
        assert np.array_equal(belady_hits(acc, C), belady_reference(acc, C))
        assert np.array_equal(lru_prefix_hits(acc, C), lru_reference(acc, C))
