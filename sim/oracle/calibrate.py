"""Fit the heuristic estimator to the oracle's results on a trace.

Per pool (``all`` and each bucket):

1. Oracle curve: the strict-prefix optimum and LRU token hit rates at
   ``points`` capacities, geometric from 1% to 100% of the pool's peak reuse
   load (the capacity at which the content bound is reached), plus the
   deployment's own HBM capacity.
2. Workload description from the trace: mean input ``L``, content hit rate
   ``c``, shared prefix ``P`` (mean leading tokens whose blocks are used by at
   least max(3, 1%) of the pool's requests), new tokens per turn
   ``n = L (1 - c)`` and turns ``T = 1 + 2 (cL - P) / n`` so that the
   estimator's content hit rate and mean input equal the trace's.
3. Grid search: curve mode and its parameter (``power_beta``, ``zipf_s`` x
   population multiple) x concurrent sessions (geometric grid) minimising the
   RMSE against the optimum curve; then ``policy_efficiency`` against LRU.

Residuals (RMSE and max absolute error, in hit-rate points) are reported per
pool. The fitted description of each pool is what ``estimate --from-json``
reads back.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from sim.oracle.access import Accesses, leading_run
from sim.oracle.analysis import bound_tokens_at, pool_source, pools
from sim.oracle.buckets import Bucket, apply_scope
from sim.oracle.capacity import Deployment, hbm_capacity
from sim.oracle.compact import CompactAccesses, content_tokens, peak_reuse_load, popular_run_tokens
from sim.oracle.estimator import HeuristicParams, hit_rates
from sim.oracle.flow import interval_loads
from trace.workload import Workload

BETAS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
ZIPF_S = (0.6, 0.8, 1.0, 1.2, 1.5)
POP_MULT = (1.0, 2.0, 4.0)
SHARED_SHARES = (0.0, 0.5, 1.0)
EFFICIENCIES = tuple(round(x, 2) for x in np.arange(0.0, 1.0001, 0.025))


def describe_trace(acc: Accesses) -> dict:
    """Mean input, content hit rate, shared prefix, derived turns/new tokens (module doc)."""
    n_req = acc.n_requests
    _, inv, cnt = np.unique(acc.ids, return_inverse=True, return_counts=True)
    popular = cnt[inv.reshape(-1)] >= popular_threshold(n_req)
    return describe(n_req, acc.total_tokens(), int(acc.weight[acc.prev >= 0].sum()),
                    int(acc.weight[leading_run(popular, acc)].sum()))


def popular_threshold(n_req: int) -> int:
    """Accesses that make a block part of the shared prefix: max(3, 1% of the pool's requests)."""
    return max(3, math.ceil(0.01 * n_req))


def describe(n_req: int, total_tokens: int, content_tokens: int, popular_run_tokens: int) -> dict:
    """The description (module doc) from the pool's token sums."""
    L = total_tokens / max(1, n_req)
    c = float(content_tokens / max(1, total_tokens))
    P = float(popular_run_tokens / max(1, n_req))
    P = min(P, c * L)
    n = max(1.0, L * (1 - c))
    T = max(1.0, 1 + 2 * (c * L - P) / n)
    return {"input_tokens_mean": L, "content_hit_rate": c, "shared_prefix_tokens": P,
            "new_tokens_per_turn": n, "turns_per_session": T}


def oracle_curve(tokens_at: Callable[[int, str], float], total_tokens: int, capacities: list[int]) -> list[dict]:
    """The strict-prefix optimum and LRU hit rates at each capacity; `tokens_at(capacity, bound)` as
    sim.oracle.analysis.bound_tokens_at gives it."""
    tot = max(1, total_tokens)
    return [{"capacity_blocks": int(k),
             "strict_prefix": tokens_at(k, "strict_prefix") / tot,
             "lru": tokens_at(k, "lru") / tot} for k in capacities]


# Capacities per pool: each is one oracle run, and fewer than 3 cannot tell the
# curve's shape from its scale.
MIN_POINTS, MAX_POINTS = 3, 200


def peak_load(acc: Accesses) -> int:
    """The most reuse intervals live at once (the capacity at which the content bound is reached)."""
    has = acc.prev >= 0
    return int(interval_loads(acc, has).max()) if acc.n and has.any() else 1


def curve_capacities(peak: int, extra: int | None, points: int) -> list[int]:
    caps = {max(1, int(round(x))) for x in np.geomspace(max(1, peak / 100), max(1, peak), points)}
    if extra:
        caps.add(int(extra))
    return sorted(caps)


def _candidates(base: HeuristicParams):
    sessions = np.unique(np.round(np.geomspace(1, 1e5, 41)))
    for S in sessions:
        b = replace(base, concurrent_sessions=float(S))
        yield replace(b, curve="linear")
        for beta in BETAS:
            yield replace(b, curve="power_law_fit", power_beta=beta)
        for s in ZIPF_S:
            for m in POP_MULT:
                yield replace(b, curve="zipf_harmonic", zipf_s=s, population=float(S * m))


def _base(desc: dict, shared_share: float) -> HeuristicParams:
    """Description with `shared_share` of the measured shared prefix; turns
    re-derived so the content hit rate and mean input stay the trace's."""
    L, c = desc["input_tokens_mean"], desc["content_hit_rate"]
    P = desc["shared_prefix_tokens"] * shared_share
    n = desc["new_tokens_per_turn"]
    T = max(1.0, 1 + 2 * (c * L - P) / n)
    return HeuristicParams(shared_prefix_tokens=P, new_tokens_per_turn=n, turns_per_session=T,
                           private_window_tokens=0.0)


def fit(desc: dict, curve: list[dict], block_tokens: int, trials: list[dict] | None = None) -> dict:
    """Grid search of the heuristic parameters against one pool's oracle curve.

    The measured shared prefix is ambiguous (a session's own history reused
    in many turns looks shared too), so its share (0, 1/2, 1) is a grid axis.
    """
    tokens = [pt["capacity_blocks"] * block_tokens for pt in curve]
    opt = np.array([pt["strict_prefix"] for pt in curve])
    lru = np.array([pt["lru"] for pt in curve])
    best, best_err = None, math.inf
    for share, cand in ((sh, c) for sh in SHARED_SHARES for c in _candidates(_base(desc, sh))):
        est = np.array([hit_rates(cand, k)[0] for k in tokens])
        err = float(np.sqrt(np.mean((est - opt) ** 2)))
        if trials is not None:  # every grid point, for calibration_trials.csv
            trials.append({"stage": "curve", "shared_prefix_share": share, "curve": cand.curve,
                           "concurrent_sessions": cand.concurrent_sessions, "power_beta": cand.power_beta,
                           "zipf_s": cand.zipf_s, "population": cand.population,
                           "policy_efficiency": cand.policy_efficiency, "rmse_strict": err})
        if err < best_err - 1e-12:
            best, best_err = cand, err
    assert best is not None
    best_eff, eff_err = 0.6, math.inf
    for eff in EFFICIENCIES:
        cand = replace(best, policy_efficiency=float(eff))
        est = np.array([hit_rates(cand, k)[1] for k in tokens])
        err = float(np.sqrt(np.mean((est - lru) ** 2)))
        if trials is not None:
            trials.append({"stage": "policy_efficiency", "curve": cand.curve,
                           "concurrent_sessions": cand.concurrent_sessions, "power_beta": cand.power_beta,
                           "zipf_s": cand.zipf_s, "population": cand.population,
                           "policy_efficiency": float(eff), "rmse_lru_like": err})
        if err < eff_err - 1e-12:
            best_eff, eff_err = float(eff), err
    best = replace(best, policy_efficiency=best_eff)
    est_opt = np.array([hit_rates(best, k)[0] for k in tokens])
    est_pol = np.array([hit_rates(best, k)[1] for k in tokens])
    return {
        "params": best.to_dict(),
        "residual": {"optimum_rmse": float(np.sqrt(np.mean((est_opt - opt) ** 2))),
                     "optimum_max_abs": float(np.max(np.abs(est_opt - opt))),
                     "lru_rmse": float(np.sqrt(np.mean((est_pol - lru) ** 2))),
                     "lru_max_abs": float(np.max(np.abs(est_pol - lru)))},
        "points": [{**pt, "estimate_optimum": float(a), "estimate_policy": float(b)}
                   for pt, a, b in zip(curve, est_opt, est_pol, strict=True)],
    }


def _peak_and_description(src: Accesses | CompactAccesses) -> tuple[int, dict]:
    """The pool's peak reuse load and description, from what its bounds read (analysis.pool_source)."""
    if isinstance(src, CompactAccesses):
        n = src.n_requests
        desc = describe(n, src.total_tokens(), content_tokens(src), popular_run_tokens(src, popular_threshold(n)))
        return max(1, peak_reuse_load(src)), desc
    return peak_load(src), describe_trace(src)


def calibrate(w: Workload, dep: Deployment, buckets: list[Bucket], *, scope: str = "global",
              method: str = "exact", points: int = 6, progress=None,
              bucket_deployments: dict[str, Deployment] | None = None) -> dict:
    """Fit per pool; returns {"pools": {label: {...}}, "recommended": {...}}."""
    ws = apply_scope(w, scope)
    out: dict = {"scope": scope, "method": method, "block_tokens": w.block_tokens, "pools": {}}
    plist = [(label, pw) for label, pw in pools(ws, buckets) if len(pw)]
    for i, (label, pw) in enumerate(plist):
        cap = hbm_capacity((bucket_deployments or {}).get(label, dep), pw.block_tokens).blocks
        src = pool_source(pw, method)  # built once: the description, the peak and the curve read it
        peak, desc = _peak_and_description(src)
        curve = oracle_curve(bound_tokens_at(src, method), src.total_tokens(), curve_capacities(peak, cap, points))
        trials: list[dict] = []
        res = fit(desc, curve, pw.block_tokens, trials)
        out["pools"][label] = {"requests": len(pw), "description": desc, "deployment_capacity_blocks": cap, **res}
        out.setdefault("trials", {})[label] = trials
        if progress:
            progress("calibrate", i + 1, len(plist))
    out["recommended"] = {
        "heuristic": out["pools"]["all"]["params"] if "all" in out["pools"] else {},
        "buckets": {k: v["params"] for k, v in out["pools"].items() if k != "all"},
        "block_tokens": w.block_tokens,
        "note": "fitted by `python main.py calibrate`; read back with `python main.py estimate --from-json`",
    }
    return out
