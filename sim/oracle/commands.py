"""One library entry point per CLI subcommand (oracle, plan, estimate,
calibrate, audit): resolve flags against the config, load the workload, run,
write the outputs, return a result dict for sim.cli to print."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from sim.config import Config
from sim.errors import InputError, check_number
from sim.io_safe import check_output_dir, write_text_set
from sim.oracle.analysis import ALL, OracleSpec, pools, reads_parent_form, run_oracle
from sim.oracle.anolis_cmd import anolis_config, anolis_targets, trial_rows, with_model, write_estimate
from sim.oracle.bounds import BOUND_LABELS
from sim.oracle.buckets import apply_scope, parse_buckets
from sim.oracle.capacity import Deployment, parse_tiers
from sim.oracle.outputs import csv_text, json_text, write_oracle_outputs
from trace.workload import Workload

# Upper bounds of the pool flags (1 PiB of KV, a million cards): far above
# real pools, and refused before any work instead of overflowing it.
MAX_KV_BUDGET_GB = 1_048_576
MAX_CARDS = 1_000_000
MAX_CAPACITY_BLOCKS = 1e12
MAX_HEURISTIC_JSON_BYTES = 10 << 20


def _floats(text, where: str, hi: float = 1e12) -> list[float]:
    if text is None or text == "":
        return []
    vals = []
    for part in str(text).split(","):
        try:
            v = float(part)
        except ValueError:
            raise InputError(f"not a number: {part.strip()[:40]!r}", where=where) from None
        vals.append(check_number(v, where, lo=0, hi=hi))
    return vals


def _check_flags(a: Any) -> None:
    """The numeric flags every oracle command shares, refused before any work (one line each)."""
    for flag in ("tp", "pp", "gpus_per_node", "machines", "block_tokens"):
        v = getattr(a, flag, None)
        if v is not None:
            check_number(v, "--" + flag.replace("_", "-"), lo=1, hi=MAX_CARDS if flag != "block_tokens" else 1 << 20)
    if getattr(a, "reserve_gb", None) is not None:
        check_number(a.reserve_gb, "--reserve-gb", lo=0, hi=MAX_KV_BUDGET_GB)


def _check_parallelism(dep: Deployment) -> None:
    from sim.config.models import check_parallelism, model_spec

    check_parallelism(model_spec(dep.model), dep.tp, dep.pp, where_tp="--tp", where_pp="--pp")


def base_deployment(cfg: Config, a: Any) -> Deployment:
    """Deployment fields from flags, defaulting to the config's model/hardware sections."""
    return Deployment(
        model=getattr(a, "model", None) or cfg.model.name,
        gpu=getattr(a, "gpu", None) or cfg.hardware.gpu,
        tp=getattr(a, "tp", None) or cfg.model.tp,
        pp=getattr(a, "pp", None) or cfg.model.pp,
        kv_dtype=getattr(a, "kv_dtype", None) or cfg.model.kv_dtype,
        weight_dtype=getattr(a, "weight_dtype", None) or cfg.model.weight_dtype,
        reserve_gb=cfg.hardware.runtime_reserve_gib if getattr(a, "reserve_gb", None) is None else a.reserve_gb,
        gpus_per_node=getattr(a, "gpus_per_node", None) or cfg.hardware.gpus_per_node,
        machines=getattr(a, "machines", None) or 0,
    )


def deployments(cfg: Config, a: Any, bucket_labels: list[str]) -> tuple[Deployment, dict[str, Deployment]]:
    """The `all` pool's deployment and per-bucket ones.

    ``--kv-budget-gb`` / ``--cards`` take one value (every pool) or one per
    bucket (then the `all` pool gets their sum).
    """
    base = base_deployment(cfg, a)
    _check_parallelism(base)
    budgets = _floats(getattr(a, "kv_budget_gb", None), "--kv-budget-gb", MAX_KV_BUDGET_GB)
    cards = _floats(getattr(a, "cards", None), "--cards", MAX_CARDS)
    if budgets and cards:
        raise InputError("give either --kv-budget-gb or --cards, not both", where="--kv-budget-gb")
    vals, key = (budgets, "kv_budget_gb") if budgets else (cards, "cards")
    if not vals:
        raise InputError("give --kv-budget-gb GiB (KV pool size) or --gpu G --cards N", where="--kv-budget-gb")
    if key == "cards" and any(v != int(v) or v < 1 for v in vals):
        raise InputError(f"card counts must be whole numbers >= 1: {vals}", where="--cards")
    if key == "kv_budget_gb" and any(v <= 0 for v in vals):
        raise InputError(f"budgets must be > 0 GiB: {vals}", where="--kv-budget-gb")

    def with_value(v: float) -> Deployment:
        return replace(base, cards=int(v)) if key == "cards" else replace(base, kv_budget_gb=float(v))

    if len(vals) == 1:
        return with_value(vals[0]), {}
    if len(vals) != len(bucket_labels):
        raise InputError(f"{len(vals)} values for {len(bucket_labels)} buckets ({', '.join(bucket_labels)})",
                         where=f"--{key.replace('_', '-')}")
    per = {lab: with_value(v) for lab, v in zip(bucket_labels, vals, strict=True)}
    return with_value(sum(vals)), per


def load_workload(cfg: Config, a: Any, buckets: list | None = None,
                  sampled: tuple[int, int] | None = None) -> tuple[Workload, Any]:
    """The workload, refused up front when its bounds cannot fit in memory. With `buckets` (the length
    buckets, parse_buckets) the bounds read the parent form when ``--method`` allows it
    (analysis.reads_parent_form), else per-access arrays; `sampled` = (requests, buckets): they read
    per-access arrays of samples only (audit)."""
    from trace.source import workload_from_config

    w, ls = workload_from_config(cfg)
    bt = getattr(a, "block_tokens", None)
    if bt:
        try:
            w = w.reblock(int(bt))
        except ValueError as e:
            raise InputError(str(e), where="--block-tokens") from None
    if len(w) == 0:
        raise InputError("the workload has no requests", where=cfg.trace.path or "synthetic")
    from sim.modes.memory import check, oracle_estimate
    from sim.oracle.buckets import bucket_index
    from sim.oracle.compact import compact_ok

    parent_form = buckets is not None and reads_parent_form(w, a.method)
    change = "set --limit" if cfg.trace.path else "lower synthetic.requests"
    if buckets is not None and not parent_form and compact_ok(w):
        # this workload's bounds could read the parent form: say which flags allow it
        change = f"use --method belady (bounds from the parent form), or {change}"
    if sampled is not None:
        est = oracle_estimate(w, sampled=sampled[0], buckets=sampled[1])
    else:
        partial = sum(len(bucket_index(w, b)) not in (0, len(w)) for b in buckets or [])
        est = oracle_estimate(w, parent_form, buckets=partial, session_scope=parent_form and a.scope == "session")
    check(est, what=f"bounding {len(w):,} requests ({w.total_blocks:,} block accesses)",
          change=change, where=cfg.trace.path or "synthetic.requests")
    return w, ls


def _inputs(cfg: Config, a: Any, w: Workload) -> dict:
    keys = ("trace", "trace_format", "limit", "model", "gpu", "cards", "kv_budget_gb", "tp", "pp", "kv_dtype",
            "weight_dtype", "reserve_gb", "gpus_per_node", "machines", "tiers", "buckets", "scope", "method",
            "block_tokens", "target_tps", "baseline_per_card_tps", "alpha", "from_json")
    d = {k: getattr(a, k) for k in keys if getattr(a, k, None) is not None}
    d.update(trace_path=cfg.trace.path or "(synthetic)", block_tokens_used=w.block_tokens,
             config_hash=cfg.hash())
    return d


def _pool_meta(label: str, dep: Deployment, bucket: Any, pool: Any = None) -> dict:
    from sim.oracle.capacity import machines_of

    return {"machines": pool.machines if pool else machines_of(dep), "cards": dep.cards or None,
            "cards_per_machine": pool.cards_per_machine if pool else dep.gpus_per_node,
            "spec": pool.spec if pool else (dep.gpu if dep.cards else None),
            "lo": bucket.lo if bucket else 0, "hi": bucket.hi if bucket else None,
            "actual_hit_rate": pool.actual_hit_rate if pool else None}


def _plan_pool(pw: Workload, label: str, dep: Deployment, method: str, target: float, baseline: float,
               alpha: float) -> dict[str, dict]:
    """Minimum cards for `target` under the strict-prefix optimum and under LRU, on one pool."""
    from sim.oracle.analysis import bound_tokens_at, pool_source
    from sim.oracle.planning import plan_cards

    src = pool_source(pw, method)
    tokens_at = bound_tokens_at(src, method)
    tot = max(1, src.total_tokens())
    content = tokens_at(0, "content") / tot
    out = {}
    for bound in ("strict_prefix", "lru"):
        def hit_rate_at(k: int, b: str = bound) -> float:
            return tokens_at(k, b) / tot

        out[bound] = plan_cards(label, BOUND_LABELS[bound], dep, pw.block_tokens, hit_rate_at, target_tps=target,
                                baseline=baseline, alpha=alpha, max_hit_rate=content).to_dict()
    return out


def oracle_command(cfg: Config, a: Any, progress=None) -> dict:
    """`oracle`: bounds per pool and tier -> files in --output-dir; returns report + paths."""
    acfg = anolis_config(a, ("bucket_analysis",))
    return with_model(acfg, lambda: _oracle(cfg, a, acfg, progress))


def _oracle(cfg: Config, a: Any, acfg: Any, progress=None) -> dict:
    from sim.oracle.anolis import all_pool
    from sim.oracle.anolis_outputs import plan_extra, summary_rows

    _check_flags(a)
    check_number(a.tolerance, "--tolerance", lo=0, hi=1)
    check_output_dir(a.output_dir, "--output-dir")
    if acfg:
        buckets = [p.bucket for p in acfg.pools]
        dep, per, tiers = all_pool(acfg), {p.label: p.deployment for p in acfg.pools}, acfg.pools[0].tiers
        _check_parallelism(dep)
    else:
        buckets = parse_buckets(getattr(a, "buckets", None))
        dep, per = deployments(cfg, a, [b.label for b in buckets])
        tiers = parse_tiers(getattr(a, "tiers", None))
    spec = OracleSpec(deployment=dep, tiers=tiers, buckets=buckets,
                      scope=a.scope, method=a.method, tolerance=a.tolerance, bucket_deployments=per)
    w, ls = load_workload(cfg, a, buckets=buckets)
    rep = run_oracle(w, spec, config_hash=cfg.hash(), seed=cfg.seed, load_stats=ls.to_dict() if ls else None,
                     inputs=_inputs(cfg, a, w), progress=progress)
    by_label = {p.label: p for p in acfg.pools} if acfg else {}
    meta = {ALL: _pool_meta(ALL, dep, None)}
    meta.update({b.label: _pool_meta(b.label, spec.deployment_for(b.label), b, by_label.get(b.label))
                 for b in buckets})
    plans: dict[str, dict] = {}
    if acfg:
        ws = apply_scope(w, a.scope)
        hbm = {pool["bucket"]: pool["tiers"][0]["bounds"]["hit_rate"] for pool in rep["oracle"]["pools"]
               if pool["tiers"]}
        targets = anolis_targets(acfg, False)
        for label, pw in pools(ws, buckets):
            tgt = targets.get(label)
            if tgt is None or not len(pw) or label not in hbm:
                continue
            d, target, base = tgt
            pp = _plan_pool(pw, label, d, a.method, target, base, acfg.alpha)
            plans[label] = {"target_tps": target, "baseline": base, "alpha": acfg.alpha,
                            **{k: plan_extra(v, d.cards, hbm[label][k], base, acfg.alpha) for k, v in pp.items()}}
        rep["oracle"]["openanolis"] = acfg.metadata()
    rows, cols = summary_rows(rep, meta, plans)
    paths = write_oracle_outputs(rep, a.output_dir,
                                 extra={"summary": (csv_text(rows, cols), Path(a.output_dir) / "summary.csv")})
    return {"report": rep, "paths": {k: str(v) for k, v in paths.items()}}


def plan_command(cfg: Config, a: Any, progress=None) -> dict:
    """`plan`: minimum cards for --target-tps under the strict-prefix optimum and under LRU."""
    acfg = anolis_config(a, ("bucket_analysis",))
    return with_model(acfg, lambda: _plan(cfg, a, acfg, progress))


def _plan(cfg: Config, a: Any, acfg: Any, progress=None) -> dict:
    from sim.oracle.capacity import hbm_capacity
    from sim.oracle.planning import PLAN_COLUMNS, check_plan_inputs

    _check_flags(a)
    check_output_dir(a.output_dir, "--output-dir")
    if acfg:
        targets = anolis_targets(acfg, True)
        buckets = [p.bucket for p in acfg.pools]
        for _d, t, b in targets.values():
            check_plan_inputs(t, b, a.alpha)
    else:
        if a.target_tps is None or a.baseline_per_card_tps is None:
            raise InputError("plan needs --target-tps and --baseline-per-card-tps (or --from-json)",
                             where="--target-tps")
        check_plan_inputs(a.target_tps, a.baseline_per_card_tps, a.alpha)
        buckets = parse_buckets(getattr(a, "buckets", None))
        dep = base_deployment(cfg, a)
        _check_parallelism(dep)
        hbm_capacity(dep.with_cards(dep.tp * dep.pp), 16)  # the model must fit one replica
    w, ls = load_workload(cfg, a, buckets=buckets)
    ws = apply_scope(w, a.scope)
    rows: dict[str, list[dict]] = {"strict_prefix": [], "lru": []}
    plist = [(lab, pw) for lab, pw in pools(ws, buckets) if len(pw)]
    for i, (label, pw) in enumerate(plist):
        if acfg:
            if label not in targets:
                continue
            d, target, base = targets[label]
        else:
            d, target, base = dep, a.target_tps, a.baseline_per_card_tps
        for bound, row in _plan_pool(pw, label, d, a.method, target, base, a.alpha).items():
            rows[bound].append(row)
        if progress:
            progress("plan", i + 1, len(plist))
    out = Path(a.output_dir)
    meta = {"mode": "plan", "inputs": _inputs(cfg, a, w), "load": ls.to_dict() if ls else None, "rows": rows}
    if acfg:
        meta["openanolis"] = acfg.metadata()
    paths = write_text_set({
        "planning_strict_prefix": (csv_text(rows["strict_prefix"], PLAN_COLUMNS), out / "planning_strict_prefix.csv"),
        "planning_lru": (csv_text(rows["lru"], PLAN_COLUMNS), out / "planning_lru.csv"),
        "metadata": (json_text(meta), out / "planning.json"),
    }, "--output-dir")
    return {"rows": rows, "paths": {k: str(v) for k, v in paths.items()}}


def estimate_command(cfg: Config, a: Any) -> dict:
    """`estimate`: heuristic hit rates per tier (+ planning) from a workload description
    (flags, kvsim's calibrated JSON, or an openanolis multi-agent config: one result per deployment)."""
    acfg = anolis_config(a, ("multi_agent", "kvsim"))
    if acfg is None:
        return _estimate(cfg, a)
    return with_model(acfg, lambda: _estimate_anolis(a, acfg))


def _estimate_anolis(a: Any, acfg: Any) -> dict:
    from sim.oracle.estimator import HeuristicParams, estimate

    if a.output_dir:
        check_output_dir(a.output_dir, "--output-dir")
    hp = HeuristicParams.from_dict(dict(acfg.heuristic), where=acfg.path)
    results = []
    for p in acfg.pools:
        res = estimate(hp, p.deployment, p.tiers, block_tokens=acfg.block_tokens, target_tps=p.target_tps or 0.0,
                       baseline=p.baseline_per_card_tps or 0.0, alpha=acfg.alpha)
        res["scenario"] = {"label": p.label, "machines": p.machines, "cards": p.deployment.cards,
                           "cards_per_machine": p.cards_per_machine, "spec": p.spec}
        results.append(res)
    out = {**results[0], "scenarios": results, "openanolis": acfg.metadata()}
    if a.output_dir:
        out["paths"] = write_estimate(results, a.output_dir, acfg.alpha, acfg.notes, out)
    return out


def _estimate(cfg: Config, a: Any) -> dict:
    from sim.oracle.capacity import parse_tiers as _tiers
    from sim.oracle.estimator import POLICY_EFFICIENCY, HeuristicParams, estimate

    _check_flags(a)
    if a.output_dir:
        check_output_dir(a.output_dir, "--output-dir")
    for flag in ("target_tps", "baseline_per_card_tps"):
        if getattr(a, flag, None) is not None:
            check_number(getattr(a, flag), "--" + flag.replace("_", "-"), lo=0, hi=1e12)
    params: dict = {}
    if a.from_json:
        p = Path(a.from_json)
        try:
            if p.stat().st_size > MAX_HEURISTIC_JSON_BYTES:
                raise InputError(f"larger than {MAX_HEURISTIC_JSON_BYTES:,} bytes; not a heuristic JSON", where=str(p))
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # ValueError: JSON and UTF-8 decoding errors
            reason = e.strerror if isinstance(e, OSError) else "not valid UTF-8 JSON"
            raise InputError(f"cannot read heuristic JSON ({reason})", where=str(p)) from None
        section = doc.get("recommended", doc) if isinstance(doc, dict) else doc
        if not isinstance(section, dict):
            raise InputError("not a heuristic JSON (expected an object, as calibrate writes)", where=str(p))
        if a.bucket and a.bucket != ALL:
            bks = section.get("buckets", {})
            if not isinstance(bks, dict) or a.bucket not in bks:
                have = ", ".join(bks) if isinstance(bks, dict) else ""
                raise InputError(f"no bucket {a.bucket[:40]!r} (have: {have or 'none'})", where=str(p))
            params = bks[a.bucket]
        else:
            params = section.get("heuristic", section)
        if not isinstance(params, dict):
            raise InputError("heuristic parameters must be a JSON object", where=str(p))
        params = dict(params)
        HeuristicParams.from_dict(params, where=str(p))
    flag_map = {"sessions": "concurrent_sessions", "shared_prefix_tokens": "shared_prefix_tokens",
                "new_tokens_per_turn": "new_tokens_per_turn", "turns": "turns_per_session",
                "private_window_tokens": "private_window_tokens", "curve": "curve", "zipf_s": "zipf_s",
                "population": "population", "power_beta": "power_beta"}
    for flag, key in flag_map.items():
        v = getattr(a, flag, None)
        if v is not None:
            params[key] = v
    if a.policy_efficiency is not None:
        eff = a.policy_efficiency
        if isinstance(eff, str):
            if eff in POLICY_EFFICIENCY:
                eff = POLICY_EFFICIENCY[eff]
            else:
                try:
                    eff = float(eff)
                except ValueError:
                    raise InputError(f"{eff!r}: a number in [0, 1] or one of {', '.join(POLICY_EFFICIENCY)}",
                                     where="--policy-efficiency") from None
        params["policy_efficiency"] = float(eff)
    hp = HeuristicParams.from_dict(params, where="estimate flags")
    base = base_deployment(cfg, a)
    _check_parallelism(base)
    budgets = _floats(a.kv_budget_gb, "--kv-budget-gb", MAX_KV_BUDGET_GB)
    cards = _floats(a.cards, "--cards", MAX_CARDS)
    if len(budgets) > 1 or len(cards) > 1:
        raise InputError("estimate takes one deployment", where="--cards")
    if budgets:
        dep = replace(base, kv_budget_gb=budgets[0], cards=int(cards[0]) if cards else 0)
    elif cards:
        dep = replace(base, cards=int(cards[0]))
    else:
        raise InputError("give --kv-budget-gb GiB or --gpu G --cards N", where="--cards")
    res = estimate(hp, dep, _tiers(a.tiers), block_tokens=a.block_tokens or 16,
                   target_tps=a.target_tps or 0.0, baseline=a.baseline_per_card_tps or 0.0, alpha=a.alpha)
    if a.output_dir:
        from sim.oracle.capacity import machines_of

        scenario = {"label": ALL, "machines": machines_of(dep), "cards": dep.cards or None,
                    "cards_per_machine": dep.gpus_per_node, "spec": dep.gpu if dep.cards else None}
        res["paths"] = write_estimate([{**res, "scenario": scenario}], a.output_dir, a.alpha, [], res)
    return res


def calibrate_command(cfg: Config, a: Any, progress=None) -> dict:
    """`calibrate`: fit the heuristic to the oracle on a trace; writes the two JSON files."""
    from sim.oracle.anolis_outputs import TRIAL_COLUMNS
    from sim.oracle.calibrate import MAX_POINTS, MIN_POINTS, calibrate

    acfg = anolis_config(a, ("bucket_analysis",))
    _check_flags(a)
    check_number(a.points, "--points", lo=MIN_POINTS, hi=MAX_POINTS, integer=True)
    check_output_dir(a.output_dir, "--output-dir")
    if acfg:
        from sim.oracle.anolis import all_pool

        buckets, dep = [p.bucket for p in acfg.pools], all_pool(acfg)
        per = {p.label: p.deployment for p in acfg.pools}
    else:
        buckets = parse_buckets(getattr(a, "buckets", None))
        dep, per = deployments(cfg, a, [b.label for b in buckets])
    w, ls = load_workload(cfg, a, buckets=buckets)
    res = with_model(acfg, lambda: calibrate(w, dep, buckets, scope=a.scope, method=a.method, points=a.points,
                                              progress=progress, bucket_deployments=per))
    trials = res.pop("trials", {})
    if acfg:
        res["openanolis"] = acfg.metadata()
    res["inputs"] = _inputs(cfg, a, w)
    res["load"] = ls.to_dict() if ls else None
    out = Path(a.output_dir)
    rows = [{"bucket": k, **v["residual"], "curve": v["params"]["curve"],
             "concurrent_sessions": v["params"]["concurrent_sessions"],
             "policy_efficiency": v["params"]["policy_efficiency"]} for k, v in res["pools"].items()]
    files = {
        "calibrated_config": (json_text(res), out / "calibrated_config.json"),
        "recommended_heuristic_config": (json_text(res["recommended"]), out / "recommended_heuristic_config.json"),
        "residuals": (csv_text(rows, ["bucket", "optimum_rmse", "optimum_max_abs", "lru_rmse", "lru_max_abs",
                                      "curve", "concurrent_sessions", "policy_efficiency"]),
                      out / "calibration_residuals.csv"),
        "calibration_trials": (csv_text(trial_rows(trials), TRIAL_COLUMNS), out / "calibration_trials.csv"),
    }
    res["paths"] = {k: str(v) for k, v in write_text_set(files, "--output-dir").items()}
    res["residual_rows"] = rows
    return res


def audit_command(cfg: Config, a: Any, progress=None) -> dict:
    """`audit`: naive recomputation on samples; writes audit_report.json/.md."""
    from sim.oracle.audit import MAX_SAMPLE, audit_markdown, run_audit

    check_number(a.sample, "--sample", lo=1, hi=MAX_SAMPLE, integer=True)
    check_number(a.small, "--small", lo=0, hi=MAX_SAMPLE, integer=True)
    if getattr(a, "block_tokens", None) is not None:
        check_number(a.block_tokens, "--block-tokens", lo=1, hi=1 << 20, integer=True)
    check_output_dir(a.output_dir, "--output-dir")
    buckets = parse_buckets(getattr(a, "buckets", None))
    # global scope: the bounds run on samples of each pool (session scope re-keys the whole trace first)
    w, ls = load_workload(cfg, a, sampled=(a.sample, len(buckets)) if a.scope == "global" else None)
    caps = [int(v) for v in _floats(a.capacities, "--capacities", MAX_CAPACITY_BLOCKS)] or None
    rep = run_audit(w, buckets, scope=a.scope, sample=a.sample, capacities=caps, small=a.small,
                    seed=cfg.seed, progress=progress)
    rep["inputs"] = _inputs(cfg, a, w)
    out = Path(a.output_dir)
    files = {"json": (json_text(rep), out / "audit_report.json"),
             "markdown": (audit_markdown(rep), out / "audit_report.md")}
    rep["paths"] = {k: str(v) for k, v in write_text_set(files, "--output-dir").items()}
    return rep
