"""openanolis kvcache-calculator JSON configs -> kvsim's oracle options (the one mapping).

Two shapes are read (``--from-json`` of ``oracle``, ``plan``, ``estimate``,
``calibrate``), told apart by their keys:

* bucket-analysis config (``analyze-buckets --config``): ``model_profile``,
  ``bucket_deployments[]`` (each a length bucket with its own deployment,
  ``extra_capacity_tiers`` and planning anchors), ``scope``, ``block_size``,
  ``prefill_savings_alpha``, ``include_output_kvcache``;
* multi-agent heuristic config (``estimate-multi-agent --config``):
  ``model_profile``, ``heuristic_multi_agent``, ``deployments[]``,
  ``prefill_savings_alpha``.

Units: openanolis's "GB" are 10^9 bytes; kvsim's ``_gb``/``_gib`` figures
are GiB (2^30 bytes). Every GB value is converted exactly (``gb_to_gib``:
``x * 1e9 / 2**30``, so 40 GB -> 37.25290298461914 GiB) and the metadata of
every output says so. Every key is either mapped (table in README,
"openanolis interoperability") or refused with one line naming the file and
key; none is ignored.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.config.gpus import GPUS
from sim.config.models import ModelSpec
from sim.errors import InputError
from sim.oracle.buckets import Bucket
from sim.oracle.capacity import Deployment, Tier

GB = 1_000_000_000  # openanolis "GB"
GIB = 1 << 30
MAX_JSON_BYTES = 10 << 20
MODEL_NAME = "openanolis:model_profile"
UNITS_NOTE = "openanolis GB = 10^9 bytes, converted exactly to kvsim GiB (2^30 bytes): GiB = GB x 10^9 / 2^30"

MODEL_KEYS = {"n_layers", "n_kv_heads", "head_dim", "dtype_bytes", "kv_cache_layer_count", "tp_size", "pp_size",
              "block_size", "parameter_count", "weight_dtype_bytes"}
DEPLOYMENT_KEYS = {"label", "accelerator_count", "cards_per_machine", "machine_spec", "hbm_kv_gb_per_card",
                   "gpu_memory_gb_per_card", "hbm_kv_utilization", "runtime_reserve_gb_per_card",
                   "extra_capacity_tiers", "total_tps", "total_tps_unit", "baseline_per_card_tps",
                   "planning_target_total_tps"}
BUCKET_KEYS = DEPLOYMENT_KEYS | {"lower_tokens", "upper_tokens", "actual_hit_rate", "actual_hit_rate_note"}
TIER_KEYS = {"label", "kv_gb_per_machine"}
BUCKET_TOP = {"model_profile", "scope", "block_size", "prefill_savings_alpha", "include_output_kvcache",
              "bucket_deployments"}
AGENT_TOP = {"model_profile", "prefill_savings_alpha", "heuristic_multi_agent", "deployments"}
HEURISTIC_KEYS = {"concurrent_agents", "shared_prefix_tokens", "avg_new_tokens_per_turn", "avg_turns_per_session",
                  "private_window_tokens", "curve_mode", "zipf_s", "zipf_population_blocks", "power_law_beta",
                  "policy_efficiency"}
# Heuristic key -> kvsim HeuristicParams field (zipf_population_blocks is converted, see _heuristic).
HEURISTIC_MAP = {"concurrent_agents": "concurrent_sessions", "shared_prefix_tokens": "shared_prefix_tokens",
                 "avg_new_tokens_per_turn": "new_tokens_per_turn", "avg_turns_per_session": "turns_per_session",
                 "private_window_tokens": "private_window_tokens", "curve_mode": "curve", "zipf_s": "zipf_s",
                 "power_law_beta": "power_beta"}
KV_DTYPES = {4: "fp32", 2: "fp16", 1: "fp8"}
TPS_UNITS = ("cluster_total", "per_machine", "per_card")


def gb_to_gib(gb: float) -> float:
    """openanolis GB (10^9 bytes) -> GiB (2^30 bytes), exactly."""
    return float(gb) * GB / GIB


@dataclass
class Pool:
    """One openanolis deployment (a length bucket, or a heuristic scenario) in kvsim's terms."""
    label: str
    deployment: Deployment
    tiers: list[Tier]
    bucket: Bucket | None = None
    machines: int = 1
    cards_per_machine: int = 1
    spec: str = ""
    hbm_kv_gb_total: float = 0.0  # openanolis GB, for its columns
    target_tps: float | None = None
    baseline_per_card_tps: float | None = None
    actual_hit_rate: float | None = None


@dataclass
class AnolisConfig:
    kind: str  # "bucket_analysis" | "multi_agent"
    path: str
    model: ModelSpec
    alpha: float = 0.8
    scope: str = "global"
    block_tokens: int = 16
    pools: list[Pool] = field(default_factory=list)
    heuristic: dict[str, Any] | None = None  # kvsim HeuristicParams fields
    notes: list[str] = field(default_factory=list)

    def metadata(self) -> dict:
        return {"source": "openanolis/kvcache-calculator config", "kind": self.kind, "path": self.path,
                "units": UNITS_NOTE, "model_name": MODEL_NAME, "scope": self.scope,
                "block_tokens": self.block_tokens, "prefill_savings_alpha": self.alpha,
                "pools": [{"label": p.label, "cards": p.deployment.cards, "machines": p.machines,
                           "kv_gib_per_card": p.deployment.kv_gib_per_card,
                           "tiers": [{"label": t.label, "extra_gib_per_machine": t.extra_bytes_per_machine / GIB}
                                     for t in p.tiers[1:]]} for p in self.pools],
                "heuristic": self.heuristic, "notes": self.notes}


class _Reader:
    """Key checks that name the file and the key in one line."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, msg: str) -> InputError:
        return InputError(f"{key}: {msg}", where=self.path)

    def obj(self, v: Any, key: str) -> dict:
        if not isinstance(v, dict):
            raise self.fail(key, "must be a JSON object")
        return v

    def keys(self, d: dict, known: set[str], prefix: str) -> None:
        for k in d:
            if k not in known:
                raise self.fail(f"{prefix}{k}", f"unknown key (known: {', '.join(sorted(known))})")

    def num(self, d: dict, k: str, prefix: str, *, lo: float = 0, lo_open: bool = False, integer: bool = False,
            default: Any = ..., hi: float = 1e15) -> Any:
        if k not in d or d[k] is None:
            if default is ...:
                raise self.fail(f"{prefix}{k}", "missing key")
            return default
        v = d[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(f"{prefix}{k}", f"must be a number (got {str(v)[:40]!r})")
        if integer and v != int(v):
            raise self.fail(f"{prefix}{k}", f"must be a whole number (got {v})")
        if v < lo or (lo_open and v == lo) or v > hi:
            raise self.fail(f"{prefix}{k}", f"must be {'>' if lo_open else '>='} {lo:g} and <= {hi:g} (got {v})")
        return int(v) if integer else float(v)


def detect(doc: Any) -> str | None:
    """'bucket_analysis', 'multi_agent' or None (not an openanolis config: kvsim's own JSON)."""
    if isinstance(doc, dict) and "model_profile" in doc:
        if "bucket_deployments" in doc:
            return "bucket_analysis"
        if "heuristic_multi_agent" in doc or "deployments" in doc:
            return "multi_agent"
        return "unknown"
    return None


def read_json(path: str | Path, what: str = "JSON config") -> Any:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_JSON_BYTES:
            raise InputError(f"larger than {MAX_JSON_BYTES:,} bytes; not a {what}", where=str(p))
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: JSON and UTF-8 decoding errors
        reason = e.strerror if isinstance(e, OSError) else "not valid UTF-8 JSON"
        raise InputError(f"cannot read {what} ({reason})", where=str(p)) from None


def _model(r: _Reader, d: Any) -> tuple[ModelSpec, dict]:
    d = r.obj(d, "model_profile")
    pre = "model_profile."
    r.keys(d, MODEL_KEYS, pre)
    n_layers = r.num(d, "n_layers", pre, lo=1, integer=True)
    heads = r.num(d, "n_kv_heads", pre, lo=1, integer=True)
    head_dim = r.num(d, "head_dim", pre, lo=1, integer=True)
    dtype = r.num(d, "dtype_bytes", pre, lo=1, integer=True)
    if dtype not in KV_DTYPES:
        raise r.fail(pre + "dtype_bytes", f"must be one of {sorted(KV_DTYPES)} (kvsim KV dtypes fp32/fp16/fp8)")
    wdtype = r.num(d, "weight_dtype_bytes", pre, lo=1, integer=True, default=dtype)
    if wdtype not in KV_DTYPES:
        raise r.fail(pre + "weight_dtype_bytes", f"must be one of {sorted(KV_DTYPES)}")
    kv_layers = r.num(d, "kv_cache_layer_count", pre, lo=1, integer=True, default=n_layers)
    if kv_layers > n_layers:
        raise r.fail(pre + "kv_cache_layer_count", f"must be <= n_layers ({n_layers})")
    params = r.num(d, "parameter_count", pre, lo=1, integer=True, default=None)
    tp = r.num(d, "tp_size", pre, lo=1, integer=True, default=1, hi=1024)
    pp = r.num(d, "pp_size", pre, lo=1, integer=True, default=1, hi=n_layers)
    # Only the KV-size and weight figures matter to the oracle; the rest of a ModelSpec
    # (query heads, FFN, vocabulary) feeds timing models the oracle does not use. Query
    # heads: a multiple of tp so kvsim's parallelism check accepts openanolis's tp_size.
    spec = ModelSpec(name=MODEL_NAME, n_layers=n_layers, hidden_size=heads * tp * head_dim, n_heads=heads * tp,
                     n_kv_heads=heads, head_dim=head_dim, intermediate_size=1, vocab_size=1,
                     params=params or 1, kv_cache_layer_count=kv_layers)
    extra = {"kv_dtype": KV_DTYPES[dtype], "weight_dtype": KV_DTYPES[wdtype], "params": params,
             "weight_bytes": None if params is None else params * wdtype, "tp": tp, "pp": pp,
             "block_size": r.num(d, "block_size", pre, lo=1, integer=True, default=16, hi=1 << 20)}
    return spec, extra


def _tiers(r: _Reader, items: Any, prefix: str) -> list[Tier]:
    if items is None:
        items = []
    if not isinstance(items, list):
        raise r.fail(prefix + "extra_capacity_tiers", "must be a list")
    out = [Tier("HBM")]
    for i, t in enumerate(items):
        pre = f"{prefix}extra_capacity_tiers[{i}]."
        t = r.obj(t, pre[:-1])
        r.keys(t, TIER_KEYS, pre)
        label = t.get("label")
        if not isinstance(label, str) or not label.strip():
            raise r.fail(pre + "label", "missing key or empty label")
        if label in (x.label for x in out):
            raise r.fail(pre + "label", f"duplicate tier label {label!r}")
        gb = r.num(t, "kv_gb_per_machine", pre, lo=0)
        out.append(Tier(label, int(round(gb * GB))))
    return out


def _pool(r: _Reader, d: Any, prefix: str, m: dict, cfg: AnolisConfig, known: set[str]) -> Pool:
    d = r.obj(d, prefix[:-1])
    r.keys(d, known, prefix)
    label = d.get("label")
    if not isinstance(label, str) or not label.strip():
        raise r.fail(prefix + "label", "missing key or empty label")
    cards = r.num(d, "accelerator_count", prefix, lo=1, integer=True)
    per_machine = r.num(d, "cards_per_machine", prefix, lo=1, integer=True)
    if cards % per_machine:
        raise r.fail(prefix + "accelerator_count", f"{cards} is not a multiple of cards_per_machine {per_machine}")
    spec = d.get("machine_spec")
    if not isinstance(spec, str) or not spec.strip() or "*" in spec:
        raise r.fail(prefix + "machine_spec", "missing key, or not a plain spec label such as \"h20\"")
    hbm = r.num(d, "hbm_kv_gb_per_card", prefix, lo=0, default=None)
    mem = r.num(d, "gpu_memory_gb_per_card", prefix, lo=0, lo_open=True, default=None)
    util = r.num(d, "hbm_kv_utilization", prefix, lo=0, hi=1, default=None)
    reserve = r.num(d, "runtime_reserve_gb_per_card", prefix, lo=0, default=0.0)
    if (hbm is None) == (mem is None):
        raise r.fail(prefix + "hbm_kv_gb_per_card", "give exactly one of hbm_kv_gb_per_card, gpu_memory_gb_per_card")
    if util is not None and mem is None:
        raise r.fail(prefix + "hbm_kv_utilization", "needs gpu_memory_gb_per_card")
    if hbm is not None:
        per_card_gb = hbm
        if reserve:
            cfg.notes.append(f"{label}: runtime_reserve_gb_per_card has no effect with hbm_kv_gb_per_card "
                             "(as in openanolis)")
    elif util is not None:
        per_card_gb = mem * util
    else:
        if m["weight_bytes"] is None:
            raise r.fail(prefix + "gpu_memory_gb_per_card",
                         "needs model_profile.parameter_count (or hbm_kv_utilization) to subtract the weights")
        shard = m["tp"] * m["pp"]
        per_card_gb = mem - -(-m["weight_bytes"] // shard) / GB - reserve
        if per_card_gb <= 0:
            raise r.fail(prefix + "gpu_memory_gb_per_card", "no KV room left after weights and runtime reserve")
    target = r.num(d, "planning_target_total_tps", prefix, lo=0, default=None)
    baseline = r.num(d, "baseline_per_card_tps", prefix, lo=0, lo_open=True, default=None)
    total = r.num(d, "total_tps", prefix, lo=0, default=None)
    unit = d.get("total_tps_unit", "cluster_total")
    if unit not in TPS_UNITS:
        raise r.fail(prefix + "total_tps_unit", f"must be one of {', '.join(TPS_UNITS)}")
    if target is not None and baseline is None:
        raise r.fail(prefix + "planning_target_total_tps", "needs baseline_per_card_tps")
    if total is not None:
        if baseline is None:
            raise r.fail(prefix + "total_tps", "kvsim uses total_tps only as the planning target, which needs "
                                               "baseline_per_card_tps")
        if target is None:  # openanolis: the planning target falls back to the cluster-total TPS
            target = total * {"cluster_total": 1, "per_machine": cards // per_machine, "per_card": cards}[unit]
    gpu = spec.strip().lower()
    dep = Deployment(model=MODEL_NAME, gpu=gpu if gpu in GPUS else "h100-sxm", cards=cards, tp=m["tp"], pp=m["pp"],
                     kv_dtype=m["kv_dtype"], weight_dtype=m["weight_dtype"], reserve_gb=0.0,
                     gpus_per_node=per_machine, machines=cards // per_machine,
                     kv_gib_per_card=gb_to_gib(per_card_gb))
    actual = r.num(d, "actual_hit_rate", prefix, lo=0, hi=100, default=None)
    if actual is not None and actual > 1:
        actual /= 100  # openanolis accepts percentages
    return Pool(label=label, deployment=dep, tiers=_tiers(r, d.get("extra_capacity_tiers"), prefix),
                machines=cards // per_machine, cards_per_machine=per_machine, spec=spec.strip(),
                hbm_kv_gb_total=per_card_gb * cards, target_tps=target, baseline_per_card_tps=baseline,
                actual_hit_rate=actual)


def _alpha(r: _Reader, doc: dict) -> float:
    a = r.num(doc, "prefill_savings_alpha", "", lo=0, hi=1, default=0.8)
    if a >= 1:
        raise r.fail("prefill_savings_alpha", "must be below 1 (kvsim planning divides by 1 - alpha x hit rate)")
    return a


def _bucket_config(r: _Reader, doc: dict, cfg: AnolisConfig, m: dict) -> None:
    r.keys(doc, BUCKET_TOP, "")
    scope = doc.get("scope", "global")
    if scope not in ("global", "session"):
        raise r.fail("scope", "must be global or session")
    cfg.scope = scope
    cfg.block_tokens = r.num(doc, "block_size", "", lo=1, integer=True, default=m["block_size"], hi=1 << 20)
    inc = doc.get("include_output_kvcache")
    if inc is True:
        raise r.fail("include_output_kvcache", "kvsim's oracle does not count output-token KV; set it to false")
    if inc is None:
        cfg.notes.append("include_output_kvcache absent (openanolis default true): kvsim counts prompt KV only, "
                         "as include_output_kvcache false")
    items = doc.get("bucket_deployments")
    if not isinstance(items, list) or not items:
        raise r.fail("bucket_deployments", "missing key or empty list")
    prev_hi: int | None = 0
    for i, item in enumerate(items):
        pre = f"bucket_deployments[{i}]."
        pool = _pool(r, item, pre, m, cfg, BUCKET_KEYS)
        lo = r.num(item, "lower_tokens", pre, lo=0, integer=True)
        hi = r.num(item, "upper_tokens", pre, lo=0, integer=True, default=None)
        if hi is not None and hi <= lo:
            raise r.fail(pre + "upper_tokens", "must be greater than lower_tokens")
        if prev_hi is None or lo < prev_hi:
            raise r.fail(pre + "lower_tokens", "buckets must be sorted without overlap (open-ended one last)")
        if pool.label in (p.label for p in cfg.pools) or pool.label == "all":
            raise r.fail(pre + "label", f"duplicate or reserved bucket label {pool.label!r}")
        pool.bucket = Bucket(pool.label, lo, hi)
        prev_hi = hi
        cfg.pools.append(pool)
    first = [t for t in cfg.pools[0].tiers]
    for p in cfg.pools[1:]:
        if p.tiers != first:
            raise r.fail(f"bucket_deployments[{cfg.pools.index(p)}].extra_capacity_tiers",
                         "kvsim applies one tier list to every bucket; make the buckets' tiers equal")


def _heuristic(r: _Reader, d: Any, m: dict) -> dict:
    d = r.obj(d, "heuristic_multi_agent")
    pre = "heuristic_multi_agent."
    r.keys(d, HEURISTIC_KEYS, pre)
    out: dict[str, Any] = {}
    for k in ("concurrent_agents", "shared_prefix_tokens", "avg_new_tokens_per_turn", "avg_turns_per_session",
              "private_window_tokens"):
        out[HEURISTIC_MAP[k]] = r.num(d, k, pre, lo=0)
    curve = d.get("curve_mode", "zipf_harmonic")
    if curve not in ("linear", "power_law_fit", "zipf_harmonic"):
        raise r.fail(pre + "curve_mode", "must be linear, power_law_fit or zipf_harmonic")
    out["curve"] = curve
    out["zipf_s"] = r.num(d, "zipf_s", pre, lo=0, default=1.3)
    beta = r.num(d, "power_law_beta", pre, lo=0, lo_open=True, default=None)
    if beta is not None:
        out["power_beta"] = beta
    pop_blocks = r.num(d, "zipf_population_blocks", pre, lo=1, default=None)
    if pop_blocks is not None:
        # openanolis ranks blocks, kvsim ranks sessions: the population in sessions is the
        # population's tokens over one session's context (the mean history plus a turn).
        from sim.oracle.estimator import HeuristicParams, describe

        ctx = describe(HeuristicParams(**out))["context_tokens_per_session"]
        out["population"] = max(1.0, pop_blocks * m["block_size"] / max(1.0, ctx))
    pe = d.get("policy_efficiency", {})
    pe = r.obj(pe, pre + "policy_efficiency")
    r.keys(pe, {"strict_prefix_upper_bound", "lru_like"}, pre + "policy_efficiency.")
    sp = r.num(pe, "strict_prefix_upper_bound", pre + "policy_efficiency.", lo=0, hi=1, default=1.0)
    if sp != 1.0:
        raise r.fail(pre + "policy_efficiency.strict_prefix_upper_bound",
                     "kvsim's estimator has no optimum efficiency below 1; use 1.0")
    out["policy_efficiency"] = r.num(pe, "lru_like", pre + "policy_efficiency.", lo=0, hi=1, default=0.55)
    return out


def _agent_config(r: _Reader, doc: dict, cfg: AnolisConfig, m: dict) -> None:
    r.keys(doc, AGENT_TOP, "")
    cfg.block_tokens = m["block_size"]
    cfg.heuristic = _heuristic(r, doc.get("heuristic_multi_agent"), m)
    items = doc.get("deployments")
    if not isinstance(items, list) or not items:
        raise r.fail("deployments", "missing key or empty list")
    for i, item in enumerate(items):
        pool = _pool(r, item, f"deployments[{i}].", m, cfg, DEPLOYMENT_KEYS)
        if pool.label in (p.label for p in cfg.pools):
            raise r.fail(f"deployments[{i}].label", f"duplicate deployment label {pool.label!r}")
        cfg.pools.append(pool)


def load_anolis(path: str | Path, doc: Any = None) -> AnolisConfig:
    """Read and map an openanolis config; InputError (file + key) on anything it cannot honour."""
    if doc is None:
        doc = read_json(path, "openanolis config")
    r = _Reader(str(path))
    kind = detect(doc)
    if kind is None or kind == "unknown":
        raise r.fail("bucket_deployments", "missing key (an openanolis config has bucket_deployments, or "
                                           "heuristic_multi_agent and deployments)")
    spec, m = _model(r, doc["model_profile"])
    cfg = AnolisConfig(kind=kind, path=str(path), model=spec, alpha=_alpha(r, doc))
    if kind == "bucket_analysis":
        _bucket_config(r, doc, cfg, m)
    else:
        _agent_config(r, doc, cfg, m)
    return cfg


def all_pool(cfg: AnolisConfig) -> Deployment:
    """The `all` pool (the whole trace): every bucket's cards and KV together."""
    deps = [p.deployment for p in cfg.pools]
    per_card = {d.kv_gib_per_card for d in deps}
    base = deps[0]
    cards = sum(d.cards for d in deps)
    machines = sum(p.machines for p in cfg.pools)
    if len(per_card) == 1:
        return Deployment(**{**base.__dict__, "cards": cards, "machines": machines})
    total = sum(d.cards * d.kv_gib_per_card for d in deps)
    return Deployment(**{**base.__dict__, "cards": cards, "machines": machines, "kv_gib_per_card": 0.0,
                         "kv_budget_gb": total})
