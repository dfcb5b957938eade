"""Exact token-weighted offline optimum as a min-cost flow (interval packing).

Model (per-request capacity): before request ``i`` the cache holds a set
``S_i`` of at most ``C`` blocks, ``S_{i+1}`` is a subset of ``S_i`` plus the
blocks of request ``i`` (a block can only be stored when computed), blocks
may be dropped at any time. An access of block ``x`` at request ``q`` whose
previous access was at request ``p`` can hit only if ``x`` is kept in
``S_{p+1} .. S_q``: the *reuse interval* ``(p, q]`` with value
``weight[access]`` tokens. Keeping a block across one of its gaps is useful
only to serve the access that ends the gap, so a schedule is a set of chosen
intervals whose load at every state is at most ``C``.

Maximising the chosen weight is the classic max-weight C-colourable interval
subgraph problem; as a flow: nodes are states in time order, a path arc
``s -> s+1`` of capacity ``C`` and cost 0, and one arc ``p -> q`` of capacity
1 and cost ``-weight`` per interval; send ``C`` units from the first node to
the last. Its constraint matrix is a network matrix (totally unimodular), so
the LP optimum is integral. Intervals with the same ``(p, q, weight)`` are
merged into one arc of capacity = their count (prefix sharing makes this a
6x reduction on the Mooncake trace).

The flow is solved by the network simplex of netsimplex.py (integer tokens,
started from the "keep nothing" chain of path arcs); HiGHS
(``scipy.optimize.linprog``) is the fallback and the reference
(``solver="highs"``). Either answer is then *checked*, not trusted: the
rounded primal must be integral and feasible (loads recomputed here), and a
dual bound is recomputed from the returned node potentials / equality duals
``y`` by weak duality (for any ``y``:
``min c.x >= b.y + sum_j u_j min(0, (c - A^T y)_j)``). ``proven`` is True
when primal and dual bound are within 1 token (weights are integers).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.oracle.access import Accesses


@dataclass
class FlowResult:
    value: int  # tokens of the chosen intervals (primal, feasible)
    upper_bound: float  # dual bound (>= optimum)
    chosen: np.ndarray  # bool per access: its reuse interval is chosen
    proven: bool
    method: str
    stats: dict = field(default_factory=dict)


def interval_loads(acc: Accesses, chosen: np.ndarray) -> np.ndarray:
    """Number of chosen intervals kept in each state S_0..S_n (difference array)."""
    n = acc.n_requests
    diff = np.zeros(n + 2, dtype=np.int64)
    pos = np.flatnonzero(chosen)
    if len(pos):
        p = acc.request[acc.prev[pos]]
        q = acc.request[pos]
        np.add.at(diff, p + 1, 1)
        np.add.at(diff, q + 1, -1)
    return np.cumsum(diff)[: n + 1]


def _groups(acc: Accesses):
    """Reuse intervals grouped by (p, q, weight); returns arrays and per-access group index."""
    pos = np.flatnonzero((acc.prev >= 0) & (acc.weight > 0))
    p = acc.request[acc.prev[pos]]
    q = acc.request[pos]
    w = acc.weight[pos]
    n1 = acc.n_requests + 1
    key = (p * n1 + q) * (acc.block_tokens + 1) + w
    uk, inv, mult = np.unique(key, return_inverse=True, return_counts=True)
    gw = uk % (acc.block_tokens + 1)
    pq = uk // (acc.block_tokens + 1)
    return pos, inv, pq // n1, pq % n1, gw, mult


SOLVERS = ("network-simplex", "highs")


def _dual_bound(P: np.ndarray, Q: np.ndarray, cost: np.ndarray, mult: np.ndarray, capacity: int,
                y: np.ndarray) -> float:
    """Weak-duality lower bound on min cost.x of the flow LP, for any potentials `y`.

    Arcs: interval j from node P[j] to Q[j] (cost[j], capacity mult[j]) and
    path arcs s -> s+1 (cost 0, capacity C); C units from node 0 to node K-1.
    """
    red = cost - (y[Q] - y[P])
    red_path = -(y[1:] - y[:-1])
    return float(capacity * (y[-1] - y[0]) + np.sum(mult * np.minimum(red, 0))
                 + capacity * np.sum(np.minimum(red_path, 0)))


def _solve_netsimplex(P, Q, gw, mult, K, capacity):
    """((integral flows of the interval arcs, dual bound in tokens, True) or None, stats)."""
    from sim.oracle import netsimplex

    m = len(P)
    path = np.arange(K - 1, dtype=np.int64)
    supply = np.zeros(K, dtype=np.int64)
    supply[0], supply[-1] = capacity, -capacity
    cost = -gw.astype(np.int64)
    # Path arcs get capacity C + 1: a path arc's flow is C minus the load, so
    # never above C, and the slack makes the starting chain strongly feasible.
    status, x, pi, pivots = netsimplex.min_cost_flow(
        K, np.concatenate([P, path]), np.concatenate([Q, path + 1]),
        np.concatenate([mult, np.full(K - 1, capacity + 1, dtype=np.int64)]),
        np.concatenate([cost, np.zeros(K - 1, dtype=np.int64)]), supply, chain=m + path)
    stats = {"pivots": int(pivots), "ns_status": int(status)}
    if status != netsimplex.OPTIMAL:
        return None, stats
    return (x[:m], _dual_bound(P, Q, cost, mult, capacity, pi), True), stats


def _solve_highs(P, Q, gw, mult, K, capacity, scale):
    """((rounded flows, dual bound in tokens, integral?) or None if HiGHS failed, stats)."""
    import scipy.sparse as sp
    from scipy.optimize import linprog

    m = len(P)
    rows = np.concatenate([P, Q, np.arange(K - 1), np.arange(1, K)])
    cols = np.concatenate([np.arange(m), np.arange(m), m + np.arange(K - 1), m + np.arange(K - 1)])
    data = np.concatenate([-np.ones(m), np.ones(m), -np.ones(K - 1), np.ones(K - 1)])
    A = sp.csc_matrix((data, (rows, cols)), shape=(K, m + K - 1))
    b = np.zeros(K)
    b[0], b[-1] = -capacity, capacity
    # Costs in blocks (weight / block_tokens) keep HiGHS's tolerances meaningful.
    c = np.concatenate([-gw / scale, np.zeros(K - 1)])
    ub = np.concatenate([mult.astype(float), np.full(K - 1, float(capacity))])
    bounds = np.stack([np.zeros(m + K - 1), ub], axis=1)
    res = linprog(c, A_eq=A, b_eq=b, bounds=bounds, method="highs-ds",
                  options={"simplex_dual_edge_weight_strategy": "devex"})
    stats = {"lp_status": int(res.status), "lp_message": str(res.message)}
    if res.status != 0 or res.x is None:
        return None, stats
    x = res.x[:m]
    xr = np.rint(x).astype(np.int64)
    dual_lb = -np.inf
    y0 = getattr(getattr(res, "eqlin", None), "marginals", None)
    if y0 is not None:
        for y in (np.asarray(y0), -np.asarray(y0)):
            dual_lb = max(dual_lb, _dual_bound(P, Q, -gw / scale, mult, capacity, y))
    return (xr, dual_lb * scale, bool(np.all(np.abs(x - xr) <= 1e-6))), stats


def max_weight_schedule(acc: Accesses, capacity: int, solver: str = "network-simplex") -> FlowResult:
    """The exact max-token relaxed schedule at `capacity` blocks (see module doc).

    With the network simplex, a result whose certificate does not close (or
    a solver that gives up) is re-solved by HiGHS, so a defect of the fast
    path costs time, never a wrong "proven" figure.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}")
    fr = _schedule(acc, capacity, solver)
    if not fr.proven and solver == "network-simplex":
        ref = _schedule(acc, capacity, "highs")
        if ref.proven or ref.value > fr.value:
            return ref
    return fr


def _schedule(acc: Accesses, capacity: int, solver: str) -> FlowResult:
    t0 = time.perf_counter()
    n = acc.n
    chosen = np.zeros(n, dtype=bool)
    if capacity <= 0 or n == 0:
        return FlowResult(0, 0.0, chosen, True, "empty", {})
    pos, inv, gp, gq, gw, mult = _groups(acc)
    all_chosen = np.zeros(n, dtype=bool)
    all_chosen[pos] = True
    total = int(acc.weight[pos].sum())
    loads = interval_loads(acc, all_chosen)
    peak = int(loads.max()) if len(pos) else 0
    if peak <= capacity:
        # Every reuse fits at once: the content bound is reached.
        return FlowResult(total, float(total), all_chosen, True, "fits (peak load <= capacity)",
                          {"intervals": len(pos), "peak_load": peak})

    # Intervals that touch no over-full state (total load <= C all along)
    # can always be kept: fix them and leave them out of the LP. The LP's
    # constraints at the states they cover stay slack, so it stays exact.
    nb = np.concatenate([[0], np.cumsum(loads > capacity)])
    free = (nb[gq + 1] - nb[gp + 1]) == 0
    free_access = free[inv]
    chosen[pos[free_access]] = True
    free_value = int(acc.weight[pos[free_access]].sum())
    keep = ~free
    remap = np.cumsum(keep) - 1
    pos, inv = pos[~free_access], remap[inv[~free_access]]
    gp, gq, gw, mult = gp[keep], gq[keep], gw[keep], mult[keep]

    nodes = np.unique(np.concatenate([gp, gq]))
    P = np.searchsorted(nodes, gp)
    Q = np.searchsorted(nodes, gq)
    K, m = len(nodes), len(gp)
    stats: dict[str, Any] = {"intervals": int(len(pos)), "arcs": int(m), "nodes": int(K), "peak_load": peak,
             "fixed_intervals": int(free_access.sum())}
    if solver == "network-simplex":
        solved, solver_stats = _solve_netsimplex(P, Q, gw, mult, K, capacity)
    else:
        solved, solver_stats = _solve_highs(P, Q, gw, mult, K, capacity, float(acc.block_tokens))
    stats.update(solver_stats, solver=solver)
    if solved is None:
        return FlowResult(0, float(total), chosen, False, f"{solver} failed: {solver_stats}", stats)
    xr, dual_lb, integral = solved
    xr = np.clip(xr, 0, mult)
    # Chosen count per group -> the shallowest accesses of the group (parents
    # before children: a parent's interval nests inside its child's).
    order = np.lexsort((acc.depth[pos], inv))
    g_sorted = inv[order]
    first = np.searchsorted(g_sorted, np.arange(m))
    rank = np.arange(len(order)) - first[g_sorted]
    chosen[pos[order[rank < xr[g_sorted]]]] = True
    feasible = bool(interval_loads(acc, chosen).max() <= capacity)
    value = int(acc.weight[chosen].sum()) if feasible else 0  # includes the fixed intervals
    # Weak-duality bound from the returned potentials, recomputed here.
    upper = min(float(total), free_value - dual_lb) if np.isfinite(dual_lb) else float(total)
    proven = feasible and integral and upper - value < 1.0 - 1e-6
    stats.update(lp_s=time.perf_counter() - t0, integral=integral, feasible=feasible)
    name = "network simplex" if solver == "network-simplex" else "LP (HiGHS)"
    return FlowResult(value, upper, chosen, proven, f"min-cost flow {name} + dual certificate", stats)


def prefix_close(acc: Accesses, chosen: np.ndarray) -> np.ndarray:
    """Turn a chosen interval set into one whose hits are prefixes, never worse.

    On a prefix-consistent trace a block's parent is accessed in every request
    that accesses the block, one position earlier, so the parent's interval
    ending at request q lies inside the child's and weighs at least as much
    (only a request's last block can be partial). Swapping a chosen child
    interval whose parent interval is not chosen for that parent interval
    keeps every load <= C and the weight >= ; depth strictly drops, so the
    loop ends after at most max-depth rounds. Without prefix consistency a
    child whose parent access has no interval is simply dropped.
    """
    ch = chosen.copy()
    if not len(ch):
        return ch
    has_iv = (acc.prev >= 0) & (acc.weight > 0)
    for _ in range(int(acc.depth.max()) + 2):
        viol = np.flatnonzero(ch[1:] & (acc.depth[1:] > 0) & ~ch[:-1]) + 1
        if not len(viol):
            break
        ch[viol] = False
        par = viol - 1
        ch[par[has_iv[par]]] = True
    return ch
