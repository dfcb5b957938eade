"""Command glue of openanolis configs (sim/oracle/anolis.py): `--from-json` detection,
flags the config decides, and the per-bucket planning anchors and file sets it adds."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.errors import InputError
from sim.io_safe import write_text_set
from sim.oracle.analysis import ALL
from sim.oracle.capacity import Deployment
from sim.oracle.outputs import csv_text, json_text

# Flags an openanolis config decides (refused next to --from-json rather than silently overridden).
ANOLIS_FLAGS = ("model", "gpu", "cards", "kv_budget_gb", "tp", "pp", "kv_dtype", "weight_dtype", "reserve_gb",
                "gpus_per_node", "machines", "tiers", "buckets", "scope", "block_tokens", "target_tps",
                "baseline_per_card_tps", "alpha", "bucket", "sessions", "shared_prefix_tokens",
                "new_tokens_per_turn", "turns", "private_window_tokens", "curve", "power_beta", "zipf_s", "population",
                "policy_efficiency")
DEFAULTS = {"tiers": "1T,10T", "scope": "global", "alpha": 0.8}


def _fill_defaults(a: Any) -> None:
    """Flags whose parser default is None so that --from-json can tell them given from defaulted."""
    for k, v in DEFAULTS.items():
        if hasattr(a, k) and getattr(a, k) is None:
            setattr(a, k, v)


def anolis_config(a: Any, kinds: tuple[str, ...]) -> Any:
    """The mapped openanolis config of --from-json (None without one, or for kvsim's own JSON);
    refuses a config of another kind and flags the config decides."""
    from sim.oracle.anolis import detect, load_anolis, read_json

    path = getattr(a, "from_json", None)
    if not path:
        _fill_defaults(a)
        return None
    doc = read_json(path)
    kind = detect(doc)
    if kind is None and "kvsim" in kinds:
        _fill_defaults(a)
        return None
    if kind not in kinds:
        want = " or ".join(k.replace("_", "-") for k in kinds if k != "kvsim")
        raise InputError(f"not an openanolis {want} config (found: {kind or 'no model_profile'})", where=str(path))
    for flag in ANOLIS_FLAGS:
        if getattr(a, flag, None) is not None:
            raise InputError(f"set by the openanolis config {Path(path).name}; drop the flag",
                             where="--" + flag.replace("_", "-"))
    acfg = load_anolis(path, doc)
    a.scope = acfg.scope
    a.alpha = acfg.alpha
    a.block_tokens = acfg.block_tokens
    return acfg


def with_model(acfg: Any, fn: Any) -> Any:
    """Run fn() with the config's model_profile resolvable by name (no file is read for it)."""
    if acfg is None:
        return fn()
    from sim.config.models import presets_only
    from sim.oracle.anolis import MODEL_NAME

    with presets_only({MODEL_NAME: acfg.model}):
        return fn()


def anolis_targets(acfg: Any, need: bool) -> dict[str, tuple[Deployment, float, float]]:
    """label -> (deployment, target TPS, baseline TPS per card) of the pools the config plans;
    `all` too when every bucket plans with one baseline and one per-card budget."""
    from sim.oracle.anolis import all_pool

    out = {}
    for i, p in enumerate(acfg.pools):
        if p.target_tps is None or p.baseline_per_card_tps is None:
            if need:
                raise InputError(f"bucket_deployments[{i}]: plan needs baseline_per_card_tps and "
                                 "planning_target_total_tps (or total_tps)", where=acfg.path)
            continue
        out[p.label] = (p.deployment, p.target_tps, p.baseline_per_card_tps)
    if len(out) == len(acfg.pools) and len({p.baseline_per_card_tps for p in acfg.pools}) == 1 \
            and len({p.deployment.kv_gib_per_card for p in acfg.pools}) == 1:
        out = {ALL: (all_pool(acfg), sum(t for _, t, _ in out.values()), acfg.pools[0].baseline_per_card_tps),
               **out}
    elif out:
        acfg.notes.append("no `all` planning row: the buckets differ in baseline TPS or KV per card")
    return out


def write_estimate(results: list[dict], out_dir: str, alpha: float, notes: list[str], doc: dict) -> dict:
    """estimate.json (+ planning_estimate.csv) and the openanolis heuristic files, as one set."""
    from sim.oracle.anolis_outputs import H_COLUMNS, HT_COLUMNS, heuristic_report, heuristic_rows
    from sim.oracle.planning import PLAN_COLUMNS

    out = Path(out_dir)
    summ, tiers = heuristic_rows(results, alpha)
    files = {"estimate": (json_text(doc), out / "estimate.json"),
             "heuristic_summary": (csv_text(summ, H_COLUMNS), out / "heuristic_summary.csv"),
             "heuristic_tier_summary": (csv_text(tiers, HT_COLUMNS), out / "heuristic_tier_summary.csv"),
             "heuristic_report_en": (heuristic_report(results, "en", alpha, notes), out / "heuristic_report.en.md"),
             "heuristic_report_zh": (heuristic_report(results, "zh", alpha, notes), out / "heuristic_report.zh.md")}
    planning = [r for res in results for r in res["planning"]]
    if planning:
        files["planning"] = (csv_text(planning, PLAN_COLUMNS), out / "planning_estimate.csv")
    return {k: str(v) for k, v in write_text_set(files, "--output-dir").items()}


def trial_rows(trials: dict[str, list[dict]]) -> list[dict]:
    """Every grid point of every pool; `best` marks the first minimum of each stage (what fit() keeps)."""
    rows = []
    for label, ts in trials.items():
        for stage, err in (("curve", "rmse_strict"), ("policy_efficiency", "rmse_lru_like")):
            st = [t for t in ts if t["stage"] == stage]
            lo = min((t[err] for t in st), default=None)
            first = True
            for t in st:
                best = first and lo is not None and t[err] <= lo + 1e-12
                first = first and not best
                rows.append({"bucket": label, **t, "best": best})
    return rows
