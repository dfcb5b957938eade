"""Primal network simplex for min-cost flow on integer data (numba).

The oracle's interval-packing LP (flow.py) is a min-cost flow; a general LP
solver spends most of its time on linear algebra that a spanning-tree basis
makes unnecessary. This is the textbook primal network simplex (Ahuja,
Magnanti & Orlin, ch. 11; the organisation follows LEMON's NetworkSimplex):

* the first basis is strongly feasible: either an artificial root joined to
  every node by an uncapacitated artificial arc (big-M cost on the arcs into
  demand nodes), or - when the caller names a chain of arcs ``u -> u+1``
  through all nodes, as the oracle's flow has - that chain carrying the
  running supply, hung from node ``n-1``. The chain start is a feasible
  "keep nothing" schedule for the oracle and needs about 3x fewer pivots;
* block-search pricing (blocks of sqrt(m) arcs, wrapping around);
* the leaving arc is the *last* blocking arc of the pivot cycle in the
  direction of flow from the apex, which keeps the tree strongly feasible
  and rules out cycling on degenerate pivots;
* the tree is stored as parent / predecessor arc / depth plus doubly linked
  child lists; a pivot reverses the stem between the entering and leaving
  arcs and re-hangs that subtree, whose potentials shift by one constant.

Everything is int64, so flows and potentials are exact. At termination
every arc's reduced cost ``cost + pi[source] - pi[target]`` is >= 0 at its
lower bound, <= 0 at its upper bound and 0 in the tree: ``pi`` is an optimal
dual, which flow.py re-checks by weak duality rather than trusting it.
"""
from __future__ import annotations

import numpy as np
from numba import njit

OPTIMAL, INFEASIBLE, UNBOUNDED, PIVOT_LIMIT = 0, 1, 2, 3
_INF = np.int64(1) << np.int64(60)


@njit(cache=True)
def _add_child(first, nxt, prv, p, u):
    f = first[p]
    nxt[u] = f
    prv[u] = -1
    if f != -1:
        prv[f] = u
    first[p] = u


@njit(cache=True)
def _remove_child(first, nxt, prv, p, u):
    a, b = prv[u], nxt[u]
    if a != -1:
        nxt[a] = b
    else:
        first[p] = b
    if b != -1:
        prv[b] = a


@njit(cache=True)
def _solve(n, src, dst, cap, cost, supply, max_pivots, chain):
    m = len(src)
    root = n
    na = m + n
    S = np.empty(na, np.int64)
    T = np.empty(na, np.int64)
    U = np.empty(na, np.int64)
    W = np.empty(na, np.int64)
    F = np.zeros(na, np.int64)
    state = np.ones(na, np.int64)  # 1 at lower bound, -1 at upper bound, 0 in the tree
    S[:m] = src
    T[:m] = dst
    U[:m] = cap
    W[:m] = cost
    maxc = np.int64(0)
    for e in range(m):
        c = abs(cost[e])
        if c > maxc:
            maxc = c
    art = (maxc + 1) * (n + 1)  # dearer than any simple path of real arcs

    parent = np.empty(n + 1, np.int64)
    pred = np.empty(n + 1, np.int64)
    up = np.empty(n + 1, np.int64)  # +1: pred arc points to the parent, -1: away from it
    depth = np.zeros(n + 1, np.int64)
    pi = np.zeros(n + 1, np.int64)
    first = np.full(n + 1, -1, np.int64)
    nxt = np.full(n + 1, -1, np.int64)
    prv = np.full(n + 1, -1, np.int64)
    stack = np.empty(n + 1, np.int64)
    parent[root] = -1
    pred[root] = -1
    up[root] = 0
    total = np.int64(0)
    for u in range(n):
        total += supply[u]
    if total != 0:
        return INFEASIBLE, F[:m], pi[:n], 0
    for u in range(n - 1, -1, -1):
        e = m + u
        parent[u] = root
        pred[u] = e
        depth[u] = 1
        state[e] = 0
        U[e] = _INF
        if supply[u] >= 0:
            S[e], T[e], F[e], W[e], up[u], pi[u] = u, root, supply[u], 0, 1, 0
        else:
            S[e], T[e], F[e], W[e], up[u], pi[u] = root, u, -supply[u], art, -1, art
        _add_child(first, nxt, prv, root, u)
    if len(chain):
        # Node u hangs below u+1 through chain[u] (flow = supply of 0..u,
        # pointing to the root, below capacity: strongly feasible), node n-1
        # below the root through its zero-cost artificial arc, which can
        # carry nothing (the root has no other arc). Other artificial arcs
        # are fixed at zero.
        first[:] = -1
        running = np.int64(0)
        for u in range(n - 1):
            running += supply[u]
            e = chain[u]
            state[m + u], F[m + u], U[m + u] = 1, 0, 0
            state[e], F[e] = 0, running
            parent[u], pred[u], up[u] = u + 1, e, 1
        e = m + n - 1
        S[e], T[e], F[e], W[e], up[n - 1], pi[n - 1], depth[n - 1] = n - 1, root, 0, 0, 1, 0, 1
        _add_child(first, nxt, prv, root, n - 1)
        for u in range(n - 2, -1, -1):
            _add_child(first, nxt, prv, u + 1, u)
            pi[u] = pi[u + 1] - W[chain[u]]
            depth[u] = depth[u + 1] + 1

    block = max(int(np.sqrt(m)), 10)
    next_arc = 0
    pivots = 0
    while True:
        # Block search pricing over the real arcs.
        best = np.int64(0)
        ein = -1
        cnt = block
        e = next_arc
        for _ in range(m):
            c = state[e] * (W[e] + pi[S[e]] - pi[T[e]])
            if c < best:
                best = c
                ein = e
            e += 1
            if e == m:
                e = 0
            cnt -= 1
            if cnt == 0:
                if best < 0:
                    break
                cnt = block
        if ein < 0:
            break
        next_arc = e
        pivots += 1
        if pivots > max_pivots:
            return PIVOT_LIMIT, F[:m], pi[:n], pivots

        # Apex of the cycle.
        a, b = S[ein], T[ein]
        while a != b:
            if depth[a] > depth[b]:
                a = parent[a]
            elif depth[b] > depth[a]:
                b = parent[b]
            else:
                a = parent[a]
                b = parent[b]
        join = a

        # Leaving arc: the last blocking arc in the flow direction from the apex.
        if state[ein] == 1:
            fst, snd = S[ein], T[ein]
        else:
            fst, snd = T[ein], S[ein]
        delta = U[ein]
        side = 0
        u_out = -1
        u = fst
        while u != join:
            f = pred[u]
            d = F[f] if up[u] == 1 else U[f] - F[f]
            if d < delta:
                delta, u_out, side = d, u, 1
            u = parent[u]
        u = snd
        while u != join:
            f = pred[u]
            d = U[f] - F[f] if up[u] == 1 else F[f]
            if d <= delta:
                delta, u_out, side = d, u, 2
            u = parent[u]
        if delta >= _INF // 2:
            return UNBOUNDED, F[:m], pi[:n], pivots

        if delta > 0:
            val = state[ein] * delta
            F[ein] += val
            u = S[ein]
            while u != join:
                F[pred[u]] -= up[u] * val
                u = parent[u]
            u = T[ein]
            while u != join:
                F[pred[u]] += up[u] * val
                u = parent[u]
        if side == 0:  # the entering arc itself blocks: it only changes bound
            state[ein] = -state[ein]
            continue
        state[ein] = 0
        lv = pred[u_out]
        state[lv] = 1 if F[lv] == 0 else -1
        if side == 1:
            u_in, v_in = fst, snd
        else:
            u_in, v_in = snd, fst

        # Re-hang the subtree of u_out under v_in, rooted at u_in: the stem
        # u_in .. u_out reverses, each stem node taking its child's old arc.
        _remove_child(first, nxt, prv, parent[u_out], u_out)
        new_par, new_arc, new_up = v_in, ein, (1 if S[ein] == u_in else -1)
        u = u_in
        while True:
            old_par, old_arc, old_up = parent[u], pred[u], up[u]
            if u != u_out:
                _remove_child(first, nxt, prv, old_par, u)
            parent[u], pred[u], up[u] = new_par, new_arc, new_up
            _add_child(first, nxt, prv, new_par, u)
            if u == u_out:
                break
            new_par, new_arc, new_up = u, old_arc, -old_up
            u = old_par

        # Tree arc into u_in has reduced cost 0: shift the subtree's potentials.
        sigma = pi[v_in] - pi[u_in] - up[u_in] * W[ein]
        stack[0] = u_in
        top = 1
        while top > 0:
            top -= 1
            u = stack[top]
            depth[u] = depth[parent[u]] + 1
            pi[u] += sigma
            c = first[u]
            while c != -1:
                stack[top] = c
                top += 1
                c = nxt[c]

    for e in range(m, na):
        if F[e] != 0:
            return INFEASIBLE, F[:m], pi[:n], pivots
    return OPTIMAL, F[:m].copy(), pi[:n].copy(), pivots


def min_cost_flow(n: int, src: np.ndarray, dst: np.ndarray, cap: np.ndarray, cost: np.ndarray,
                  supply: np.ndarray, chain: np.ndarray | None = None,
                  max_pivots: int | None = None) -> tuple[int, np.ndarray, np.ndarray, int]:
    """Min-cost flow with supplies (out - in = supply at every node), 0 <= flow <= cap.

    `chain` (optional): arc indices with ``src[chain[u]] == u`` and
    ``dst[chain[u]] == u + 1`` for u < n-1, used as the starting basis; the
    running supply along it must stay in ``[0, cap)``. Returns (status, flow
    per arc, potential per node, pivots); status is OPTIMAL, INFEASIBLE,
    UNBOUNDED or PIVOT_LIMIT. All inputs are integers.
    """
    src = np.ascontiguousarray(src, np.int64)
    dst = np.ascontiguousarray(dst, np.int64)
    ch = np.zeros(0, np.int64) if chain is None or n < 2 else np.ascontiguousarray(chain, np.int64)
    if len(ch) and (len(ch) != n - 1 or np.any(src[ch] != np.arange(n - 1)) or np.any(dst[ch] != np.arange(1, n))):
        raise ValueError("chain must list one arc u -> u+1 for every u < n-1")
    if len(ch):
        running = np.cumsum(np.asarray(supply, np.int64))[:-1]
        if np.any(running < 0) or np.any(running >= np.asarray(cap, np.int64)[ch]):
            raise ValueError("the running supply along the chain must stay in [0, cap)")
    if max_pivots is None:
        max_pivots = 50 * (len(src) + n) + 1000
    return _solve(int(n), src, dst, np.ascontiguousarray(cap, np.int64), np.ascontiguousarray(cost, np.int64),
                  np.ascontiguousarray(supply, np.int64), int(max_pivots), ch)
