"""How one sweep point is evaluated: a registry of modes.

Every mode registered in ``sim.modes.runner.MODES`` (single, and cluster / pd once
they register) runs through ``sim.modes.runner.run_mode`` with the point's
``policies.eviction``. On top of those the sweep engine knows ``oracle``: the
offline bounds of ``sim.oracle.bounds`` at the point's HBM capacity, reported
in the common report schema so they land on the same plots as the policies.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from sim.config import Config
from sim.errors import InputError
from trace.workload import Workload

if TYPE_CHECKING:
    from sim.modes.memory import Need

# (config, workload, timing, options) -> report dict (sim.report.schema schema)
Evaluator = Callable[[Config, Workload, bool, BaseModel | None], dict]


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OracleOptions(BaseModel):
    """`options: {oracle: {...}}` of a spec."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["exact", "belady"] = "exact"  # exact: min-cost-flow optimum; belady: fast lower bound
    scope: Literal["global", "session"] = "global"  # prefix namespace (see sim.oracle.buckets)


def _bound_metrics(b, name: str, cap_bytes: int) -> dict[str, Any]:
    from sim.report.schema import dist_ms

    empty = dist_ms(np.array([]))
    hr, bhr = b.hit_rate(name), b.block_hit_rate(name)
    return {
        "hit_rate": hr,
        "block_hit_rate": bhr,
        "tiers": {"hbm": {"hit_rate": hr, "block_hit_rate": bhr, "capacity_bytes": int(cap_bytes)}},
        "ttft_ms": dict(empty), "tpot_ms": dict(empty), "e2e_ms": dict(empty),
        "throughput_tokens_s": None, "slo_attainment": None,
    }


def oracle_point(cfg: Config, workload: Workload, timing: bool, options: BaseModel | None) -> dict:
    """The four bounds (content, relaxed, strict-prefix optimum, LRU) at the node's HBM capacity.

    Capacity = HBM blocks per worker x workers of ``NodeSetup`` (the same
    arithmetic as single mode), as one pool: with ``hardware.gpus_per_node =
    model.tp x model.pp`` (one worker) and no DRAM/SSD the single-mode LRU
    replay and the oracle's LRU bound see the same cache. The headline
    ``hit_rate`` is the strict-prefix optimum: the best any eviction policy can
    reach under the prefix rule.
    """
    from sim.modes.common import NodeSetup, simulated_workload
    from sim.oracle.access import accesses
    from sim.oracle.bounds import BOUND_LABELS, BOUND_NAMES, compute_bounds
    from sim.oracle.buckets import apply_scope
    from sim.report.schema import build_report

    opt = options if isinstance(options, OracleOptions) else OracleOptions()
    t0 = time.perf_counter()
    w = simulated_workload(cfg, workload)
    _oracle_need(w).check()
    bt = w.block_tokens
    setup = NodeSetup.from_config(cfg, bt)
    cap = setup.hbm_blocks * setup.n_workers
    b = compute_bounds(accesses(apply_scope(w, opt.scope)), cap, opt.method)
    cap_bytes = cap * setup.block_bytes
    head = _bound_metrics(b, "strict_prefix", cap_bytes)
    head.update({f"{BOUND_LABELS[k]}_hit_rate": b.hit_rate(k) for k in BOUND_NAMES})
    head.update({f"{BOUND_LABELS[k]}_block_hit_rate": b.block_hit_rate(k) for k in BOUND_NAMES})
    head["proven_optimal"] = b.proven_optimal
    head["capacity_blocks"] = {"hbm_per_worker": setup.hbm_blocks, "pool": cap}
    head["workers"] = setup.n_workers
    head["block_bytes"] = int(setup.block_bytes)
    runs = [(BOUND_LABELS["strict_prefix"], head)] + [(BOUND_LABELS[k], _bound_metrics(b, k, cap_bytes))
                                                      for k in ("relaxed", "content", "lru")]
    return build_report(
        "oracle", cfg, w, runs, wall_s=time.perf_counter() - t0, sim_time_s=0.0,
        extra={"oracle": {"method": b.method, "scope": opt.scope, "notes": b.notes, "timings_s": b.timings_s,
                          "certificate": b.certificate}},
    )


def _oracle_need(w: Workload) -> Need:
    """What oracle_point holds: its bounds read per-access arrays of the whole (re-blocked) workload."""
    from sim.modes.memory import Need, oracle_estimate
    from sim.modes.runner import workload_change

    return Need(oracle_estimate(w), f"bounding {len(w):,} requests ({w.total_blocks:,} block accesses)",
                workload_change(w), "mode oracle")


def point_need(cfg: Config, mode: str, workload: Workload, timing: bool) -> Need | None:
    """The up-front memory estimate (sim.modes.memory.Need) the point's evaluator checks, computed without
    evaluating it; None for a mode without one."""
    if mode == "oracle":
        from sim.modes.common import simulated_workload

        return _oracle_need(simulated_workload(cfg, workload))
    from sim.modes.runner import run_need

    return run_need(cfg, mode, workload, [cfg.policies.eviction], timing)


# mode name -> (evaluator, options model); sim.modes.runner.MODES are added at lookup time
EVALUATORS: dict[str, tuple[Evaluator, type[BaseModel]]] = {"oracle": (oracle_point, OracleOptions)}


def _runner_evaluator(mode: str) -> Evaluator:
    def run(cfg: Config, workload: Workload, timing: bool, options: BaseModel | None) -> dict:
        from sim.modes.runner import run_mode

        return run_mode(cfg, mode, workload=workload, policies=[cfg.policies.eviction], timing=timing)

    return run


def available_modes() -> list[str]:
    from sim.modes.runner import MODES

    return sorted(set(MODES) | set(EVALUATORS))


def lookup(mode: str, where: str = "mode") -> tuple[Evaluator, type[BaseModel]]:
    """The evaluator of `mode`; an InputError naming the mode when it is not available."""
    if mode in EVALUATORS:
        return EVALUATORS[mode]
    from sim.modes.runner import MODES

    if mode in MODES:
        return _runner_evaluator(mode), NoOptions
    raise InputError(f"mode {mode!r} is not available in this version (available: {', '.join(available_modes())})",
                     where=where)


def parse_options(mode: str, raw: dict | None, where: str) -> BaseModel:
    _, model = lookup(mode, where)
    try:
        return model.model_validate(raw or {})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise InputError(f"options.{mode}.{loc}: {msg}", where=where) from None


def evaluate(cfg: Config, mode: str, workload: Workload, timing: bool, options: BaseModel | None) -> dict:
    fn, _ = lookup(mode)
    return fn(cfg, workload, timing, options)
