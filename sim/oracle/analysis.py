"""The oracle over a whole trace: pools (all + buckets) x tiers -> report dict.

Each pool (the ``all`` row = the whole trace, then every length bucket) is
analysed on its own requests alone against its own deployment's capacity,
as separate serving pools would be. The report follows the common schema of
``sim.report.schema`` (mode ``"oracle"``) with the per-pool detail under
``"oracle"``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sim.oracle.access import Accesses, accesses
from sim.oracle.bounds import BOUND_LABELS, BOUND_NAMES, Bounds, compute_bounds, single_bound_tokens
from sim.oracle.buckets import Bucket, apply_scope, bucket_index
from sim.oracle.capacity import Deployment, Tier, tier_capacities
from sim.oracle.compact import CompactAccesses, compact_accesses, compact_bound_tokens, compact_bounds, compact_ok
from trace.workload import Workload

ALL = "all"


@dataclass
class OracleSpec:
    deployment: Deployment
    tiers: list[Tier]
    buckets: list[Bucket]
    scope: str = "global"
    method: str = "exact"
    tolerance: float = 0.005  # hit-rate gap below which two bounds "meet"
    bucket_deployments: dict[str, Deployment] = field(default_factory=dict)  # per-bucket override

    def deployment_for(self, label: str) -> Deployment:
        return self.bucket_deployments.get(label, self.deployment)


def bottleneck(b: Bounds, tol: float) -> tuple[str, float, float]:
    """('capacity'|'policy'|'none', capacity gap, policy gap) from token hit rates.

    capacity gap = content - strict-prefix optimum (what more cache could win);
    policy gap = strict-prefix optimum - LRU (what a better policy could win).
    """
    cap_gap = b.hit_rate("content") - b.hit_rate("strict_prefix")
    pol_gap = b.hit_rate("strict_prefix") - b.hit_rate("lru")
    if cap_gap <= tol and pol_gap <= tol:
        return "none", cap_gap, pol_gap
    return ("capacity" if cap_gap >= pol_gap else "policy"), cap_gap, pol_gap


def pools(w: Workload, buckets: list[Bucket]) -> list[tuple[str, Workload]]:
    """[(label, workload)]: the whole trace, then each non-empty bucket."""
    out = [(ALL, w)]
    for b in buckets:
        idx = bucket_index(w, b)
        out.append((b.label, w if len(idx) == len(w) else w.select(idx)))  # a bucket of all: no copy
    return out


def reads_parent_form(w: Workload, method: str) -> bool:
    """Are all of `w`'s pools bounded from the parent form (pool_source)? The Belady method on a distinct
    parent form: a bucket's pool (``Workload.select``, trace.reparent.subset) and the session scope
    (``apply_scope``, trace.reparent.scoped) keep it."""
    return method == "belady" and compact_ok(w)


def pool_source(pw: Workload, method: str) -> Accesses | CompactAccesses:
    """What one pool's bounds read: the per-access arrays, or for the Belady method on a distinct
    parent-form workload the parent form (sim.oracle.compact). Built once per pool."""
    return compact_accesses(pw) if method == "belady" and compact_ok(pw) else accesses(pw)


def bounds_at(src: Accesses | CompactAccesses, method: str) -> Callable[[int], Bounds]:
    """All bounds of a pool at a capacity."""
    if isinstance(src, CompactAccesses):
        return lambda cap: compact_bounds(src, cap)
    return lambda cap: compute_bounds(src, cap, method)


def bound_tokens_at(src: Accesses | CompactAccesses, method: str) -> Callable[[int, str], float]:
    """Hit tokens of one bound at a capacity (planning and calibration evaluate many capacities)."""
    if isinstance(src, CompactAccesses):
        return lambda cap, bound: compact_bound_tokens(src, cap, bound)
    return lambda cap, bound: single_bound_tokens(src, cap, bound, method)


def analyze_pool(bounds_of: Callable[[int], Bounds], block_tokens: int, dep: Deployment, tiers: list[Tier],
                 tol: float, progress=None, label: str = "") -> list[dict]:
    rows = []
    for cap in tier_capacities(dep, block_tokens, tiers):
        b = bounds_of(cap.blocks)
        neck, cg, pg = bottleneck(b, tol)
        rows.append({"tier": cap.tier, "capacity": cap.to_dict(), "bounds": b.to_dict(),
                     "bottleneck": neck, "capacity_gap_share": cg, "policy_gap_share": pg})
        if progress:
            progress(f"oracle {label}", len(rows), len(tiers))
    return rows


def run_oracle(w: Workload, spec: OracleSpec, *, config_hash: str = "", seed: int = 0,
               load_stats: dict | None = None, inputs: dict | None = None, progress=None) -> dict:
    """Every bound for every pool and tier; returns the report dict."""
    from sim.report.schema import REPORT_VERSION, workload_summary

    t0 = time.perf_counter()
    ws = apply_scope(w, spec.scope)
    out_pools = []
    for label, pw in pools(ws, spec.buckets):
        entry: dict[str, Any] = {"bucket": label, "requests": len(pw), "input_tokens": int(pw.input_tokens.sum()),
                 "blocks": pw.total_blocks, "deployment": asdict(spec.deployment_for(label))}
        if len(pw):
            src = pool_source(pw, spec.method)
            entry["prefix_consistent"] = src.prefix_consistent
            entry["tiers"] = analyze_pool(bounds_at(src, spec.method), pw.block_tokens, spec.deployment_for(label),
                                          spec.tiers, spec.tolerance, progress, label)
        else:
            entry["tiers"] = []
        out_pools.append(entry)
    wall = time.perf_counter() - t0
    head = out_pools[0]["tiers"][0] if out_pools and out_pools[0]["tiers"] else None
    metrics: dict = {"hit_rate": None, "block_hit_rate": None, "tiers": {}}
    policies = []
    if head:
        hb = head["bounds"]
        metrics["hit_rate"] = hb["hit_rate"]["strict_prefix"]
        metrics["block_hit_rate"] = hb["block_hit_rate"]["strict_prefix"]
        for t in out_pools[0]["tiers"]:
            key = "hbm" if t["tier"] == "HBM" else t["tier"]
            metrics["tiers"][key] = {"hit_rate": t["bounds"]["hit_rate"]["strict_prefix"], "used_bytes": None,
                                     "capacity_bytes": t["capacity"]["bytes"],
                                     "capacity_blocks": t["capacity"]["blocks"]}
        metrics["proven_optimal"] = hb["proven_optimal"]
        policies = [{"name": BOUND_LABELS[k], "metrics": {"hit_rate": hb["hit_rate"][k],
                                                          "block_hit_rate": hb["block_hit_rate"][k]}}
                    for k in BOUND_NAMES]
    return {
        "mode": "oracle",
        "report_version": REPORT_VERSION,
        "config_hash": config_hash,
        "seed": seed,
        "workload": workload_summary(w),
        "wall_s": wall,
        "sim_time_s": 0.0,
        "metrics": metrics,
        "policies": policies,
        "load_stats": load_stats,
        "oracle": {
            "inputs": inputs or {},
            "scope": spec.scope,
            "method": spec.method,
            "tolerance": spec.tolerance,
            "buckets": [asdict(b) for b in spec.buckets],
            "tiers": [asdict(t) for t in spec.tiers],
            "pools": out_pools,
        },
    }
