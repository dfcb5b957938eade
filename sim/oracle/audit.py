"""Naive reference implementations of every bound, and the audit that compares.

The references are deliberately simple and slow, written from the
definitions and sharing no code with bounds.py / flow.py / replays.py:

* ``naive_content``: a Python set.
* ``naive_lru``: a Python list as the recency stack (O(C) per access),
  strict-prefix rule.
* ``milp_optimum``: an integer program solved by branch and bound (HiGHS
  MILP): one 0/1 variable per access that has a previous access ("kept since
  then"), one row per request boundary (at most C kept), and with
  ``strict=True`` a row ``x[child] <= x[parent]`` per access (the hit stops at
  the first missing block). No interval merging, no theorem used: the strict
  figure comes from the strict formulation itself.
* ``exhaustive_strict`` / ``exhaustive_relaxed``: full search over cache
  states (request by request with the prefix rule; access by access without
  it) for tiny instances, the ground truth the exactness claims are tested
  against.

``run_audit`` recomputes all four bounds on samples of a trace and on small
random sub-instances, and lists every disagreement.
"""
from __future__ import annotations

import itertools
import time

import numpy as np

from sim.oracle.access import accesses
from sim.oracle.analysis import pools
from sim.oracle.bounds import BOUND_NAMES, compute_bounds
from sim.oracle.buckets import Bucket, apply_scope
from trace.workload import Workload


def _requests(w: Workload):
    bt = w.block_tokens
    for i in range(len(w)):
        ids = w.blocks(i).tolist()
        inp = int(w.input_tokens[i])
        weights = [max(0, min(bt, inp - d * bt)) for d in range(len(ids))]
        yield ids, weights


def naive_content(w: Workload) -> tuple[int, int]:
    """(hit tokens, hit blocks) with unlimited capacity."""
    seen: set[int] = set()
    tok = blk = 0
    for ids, weights in _requests(w):
        for k, wt in zip(ids, weights, strict=True):
            if k in seen:
                tok += wt
                blk += 1
            seen.add(k)
    return tok, blk


def naive_lru(w: Workload, capacity: int) -> tuple[int, int]:
    """(hit tokens, hit blocks) of strict-prefix LRU with a list as the stack."""
    stack: list[int] = []  # least recent first
    tok = blk = 0
    for ids, weights in _requests(w):
        h = 0
        while h < len(ids) and ids[h] in stack:
            h += 1
        tok += sum(weights[:h])
        blk += h
        if capacity <= 0:
            continue
        for k in ids:
            if k in stack:
                stack.remove(k)
            stack.append(k)
            if len(stack) > capacity:
                stack.pop(0)
    return tok, blk


def milp_optimum(w: Workload, capacity: int, *, strict: bool, unit: bool = False) -> float:
    """Optimal hit tokens (blocks with unit=True) by integer programming (module doc)."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    val: list[float] = []
    parent_var: list[int] = []
    start: list[int] = []
    end: list[int] = []
    last: dict[int, int] = {}
    for i, (ids, weights) in enumerate(_requests(w)):
        prev_var = -1
        for d, (k, wt) in enumerate(zip(ids, weights, strict=True)):
            v = -1
            if k in last and (wt > 0 or unit):
                v = len(val)
                val.append(1.0 if unit else float(wt))
                start.append(last[k])
                end.append(i)
                parent_var.append(prev_var if d > 0 else -2)  # -2: root, -1: parent cannot hit
            last[k] = i
            prev_var = v
    m = len(val)
    if m == 0 or capacity <= 0:
        return 0.0
    rows, cols = [], []
    for j in range(m):
        for s in range(start[j] + 1, end[j] + 1):  # kept in the states before requests p+1..q
            rows.append(s)
            cols.append(j)
    n_states = len(w) + 1
    A = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_states, m)).tocsr()
    cons = [LinearConstraint(A, -np.inf, capacity)]
    ub = np.ones(m)
    if strict:
        pr: list[int] = []
        pc: list[int] = []
        pv: list[float] = []
        for j in range(m):
            if parent_var[j] == -1:
                ub[j] = 0.0
            elif parent_var[j] >= 0:
                r = len(pr) // 2
                pr += [r, r]
                pc += [j, parent_var[j]]
                pv += [1.0, -1.0]
        if pr:
            B = coo_matrix((pv, (pr, pc)), shape=(len(pr) // 2, m)).tocsr()
            cons.append(LinearConstraint(B, -np.inf, 0.0))
    res = milp(-np.asarray(val), constraints=cons, integrality=np.ones(m), bounds=Bounds(0, ub))
    if res.status != 0:
        raise RuntimeError(f"MILP failed: {res.message}")
    # every coefficient is an integer (tokens, or 1 per block): HiGHS returns the optimum with float
    # noise (52.00000000000001), which must not read as a mismatch against the exact bounds
    return float(round(-res.fun))


def _future(w: Workload) -> list[set[int]]:
    """fut[i] = ids accessed by requests i.. (for pruning useless cache states)."""
    fut: list[set[int]] = [set() for _ in range(len(w) + 1)]
    for i in range(len(w) - 1, -1, -1):
        fut[i] = fut[i + 1] | set(w.blocks(i).tolist())
    return fut


def _subsets(universe: list[int], cap: int):
    for r in range(min(cap, len(universe)) + 1):
        yield from itertools.combinations(universe, r)


def _keep_any(nxt: dict, universe: list, capacity: int, value: float) -> None:
    """Every next state that keeps a subset of `universe` (at most `capacity` keys) is worth at least `value`."""
    for T in _subsets(universe, capacity):
        key = frozenset(T)
        if nxt.get(key, -1.0) < value:
            nxt[key] = value


def exhaustive_strict(w: Workload, capacity: int, unit: bool = False) -> float:
    """Best strict-prefix hits over every schedule S_0..S_n (S_{i+1} within S_i + r_i, |S| <= C)."""
    fut = _future(w)
    states: dict[frozenset[int], float] = {frozenset(): 0.0}
    for i, (ids, weights) in enumerate(_requests(w)):
        nxt: dict[frozenset, float] = {}
        for S, v in states.items():
            h = 0
            while h < len(ids) and ids[h] in S:
                h += 1
            v2 = v + (h if unit else sum(weights[:h]))
            _keep_any(nxt, sorted((S | set(ids)) & fut[i + 1]), capacity, v2)
        states = nxt
    return max(states.values()) if states else 0.0


def exhaustive_relaxed(w: Workload, capacity: int, unit: bool = False) -> float:
    """Best hits on the flattened access sequence, prefix order ignored, any
    voluntary eviction / bypass (state after each access within state + key)."""
    seq = [(k, (1 if unit else wt)) for ids, weights in _requests(w) for k, wt in zip(ids, weights, strict=True)]
    later: list[set[int]] = [set() for _ in range(len(seq) + 1)]
    for t in range(len(seq) - 1, -1, -1):
        later[t] = later[t + 1] | {seq[t][0]}
    states: dict[frozenset[int], float] = {frozenset(): 0.0}
    for t, (k, wt) in enumerate(seq):
        nxt: dict[frozenset, float] = {}
        for S, v in states.items():
            v2 = v + (wt if k in S else 0)
            _keep_any(nxt, sorted((S | {k}) & later[t + 1]), capacity, v2)
        states = nxt
    return max(states.values()) if states else 0.0


# ------------------------------------------------------------------ the audit


# Requests sampled per pool: the naive references are quadratic or worse in it.
MAX_SAMPLE = 10_000


def _sample(w: Workload, n: int, rng: np.random.Generator) -> Workload:
    if len(w) <= n:
        return w
    return w.select(np.sort(rng.choice(len(w), size=n, replace=False)))


def _small_instances(w: Workload, k: int, rng: np.random.Generator) -> list[Workload]:
    """Windows of 4-7 consecutive requests cut to their first <= 3 blocks; the
    input length keeps a partial last block when the source had one."""
    out: list[Workload] = []
    if len(w) == 0:
        return out
    bt = w.block_tokens
    for _ in range(k):
        m = int(rng.integers(4, 8))
        lo = int(rng.integers(0, max(1, len(w) - m + 1)))
        sub = w.select(np.arange(lo, min(len(w), lo + m)))
        nb = np.minimum(sub.n_blocks(), 3)
        offs = np.zeros(len(sub) + 1, dtype=np.int64)
        np.cumsum(nb, out=offs[1:])
        ids = np.concatenate([sub.blocks(i)[: nb[i]] for i in range(len(sub))]) if len(sub) else np.zeros(0)
        inp = np.minimum(sub.input_tokens, nb * bt)
        out.append(Workload(name="audit-small", arrival_ms=sub.arrival_ms, input_tokens=inp,
                            output_tokens=sub.output_tokens, session_id=sub.session_id, block_offsets=offs,
                            block_ids=ids.astype(np.int64), block_tokens=bt))
    return out


def _check(issues: list, checks: list, where: str, name: str, fast: float, ref: float, tol: float = 0.5) -> None:
    ok = abs(float(fast) - float(ref)) <= tol
    checks.append({"where": where, "check": name, "fast": float(fast), "reference": float(ref), "ok": ok})
    if not ok:
        issues.append(f"{where}: {name}: fast {fast} != reference {ref}")


def audit_pool(w: Workload, capacities: list[int], where: str, issues: list, checks: list) -> None:
    acc = accesses(w)
    ct, cb = naive_content(w)
    for C in capacities:
        b = compute_bounds(acc, C, "exact")
        tag = f"{where} C={C}"
        _check(issues, checks, tag, "content tokens", b.tokens["content"], ct)
        _check(issues, checks, tag, "content blocks", b.block_hits["content"], cb)
        lt, lb = naive_lru(w, C)
        _check(issues, checks, tag, "LRU tokens", b.tokens["lru"], lt)
        _check(issues, checks, tag, "LRU blocks", b.block_hits["lru"], lb)
        _check(issues, checks, tag, "relaxed tokens", b.tokens["relaxed"], milp_optimum(w, C, strict=False))
        _check(issues, checks, tag, "strict-prefix tokens", b.tokens["strict_prefix"], milp_optimum(w, C, strict=True))
        _check(issues, checks, tag, "strict-prefix blocks", b.block_hits["strict_prefix"],
               milp_optimum(w, C, strict=True, unit=True))
        order = [b.tokens[k] for k in BOUND_NAMES]
        inv = all(x >= y - 1e-9 for x, y in zip(order, order[1:], strict=False))
        checks.append({"where": tag, "check": "content >= relaxed >= strict >= LRU", "ok": inv,
                       "fast": order, "reference": None})
        if not inv:
            issues.append(f"{tag}: invariant broken {order}")
        if not b.proven_optimal:
            issues.append(f"{tag}: optimum not proven ({b.method})")


def run_audit(w: Workload, buckets: list[Bucket], *, scope: str = "global", sample: int = 150,
              capacities: list[int] | None = None, small: int = 20, seed: int = 0, progress=None) -> dict:
    """Recheck every bound on samples of each pool; returns the audit report."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    ws = apply_scope(w, scope)
    issues: list[str] = []
    checks: list[dict] = []
    plist = [(label, pw) for label, pw in pools(ws, buckets) if len(pw)]
    for i, (label, pw) in enumerate(plist):
        sw = _sample(pw, sample, rng)
        acc = accesses(sw)
        if capacities:
            caps = list(capacities)
        else:
            from sim.oracle.calibrate import curve_capacities, peak_load

            caps = curve_capacities(peak_load(acc), None, 3)
        audit_pool(sw, caps, f"{label} (sample of {len(sw)})", issues, checks)
        for j, tiny in enumerate(_small_instances(pw, small, rng)):
            tacc = accesses(tiny)
            for C in (1, 2, 3):
                b = compute_bounds(tacc, C, "exact")
                tag = f"{label} small#{j} C={C}"
                es = exhaustive_strict(tiny, C)
                _check(issues, checks, tag, "strict-prefix tokens vs exhaustive", b.tokens["strict_prefix"], es)
                _check(issues, checks, tag, "relaxed tokens vs exhaustive", b.tokens["relaxed"],
                       exhaustive_relaxed(tiny, C))
                _check(issues, checks, tag, "strict-prefix blocks vs exhaustive", b.block_hits["strict_prefix"],
                       exhaustive_strict(tiny, C, unit=True))
                _check(issues, checks, tag, "LRU tokens vs naive", b.tokens["lru"], naive_lru(tiny, C)[0])
        if progress:
            progress("audit", i + 1, len(plist))
    return {"mode": "audit", "ok": not issues, "disagreements": issues, "checks": len(checks),
            "failed_checks": sum(1 for c in checks if not c["ok"]), "details": checks,
            "sample": sample, "small_instances": small, "seed": seed, "scope": scope,
            "wall_s": time.perf_counter() - t0}


def audit_markdown(rep: dict) -> str:
    lines = ["# Oracle audit", "",
             f"- checks: {rep['checks']}, failed: {rep['failed_checks']}, result: "
             f"{'OK' if rep['ok'] else 'DISAGREEMENT'}",
             f"- sample per pool: {rep['sample']} requests; small exhaustive instances per pool: "
             f"{rep['small_instances']}; seed {rep['seed']}", ""]
    if rep["disagreements"]:
        lines += ["## Disagreements", ""] + [f"- {d}" for d in rep["disagreements"]] + [""]
    lines += ["## Checks", "", "| where | check | fast | reference | ok |", "|---|---|---|---|---|"]
    for c in rep["details"]:
        lines.append(f"| {c['where']} | {c['check']} | {c['fast']} | {c['reference']} | {'yes' if c['ok'] else 'NO'} |")
    return "\n".join(lines) + "\n"
