"""Config schema and loading: file -> preset -> profile -> --set overrides.

Every section is a pydantic model with ``extra="forbid"`` so an unknown key is
an error, never silently ignored. Errors are raised as InputError naming the
key path and the source (file, profile or ``--set``) that supplied the value.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sim.config.suggest import closest_key
from sim.errors import InputError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"

Dtype = Literal["fp32", "fp16", "bf16", "fp8", "int4"]
# Keys that were replaced: using one is an error naming its successor, never a silent alias.
RENAMED: dict[str, str] = {
    "compute.mfu": "compute.gemm_efficiency",
    "compute.decode_overhead_ms": "compute.iteration_overhead_ms",
    "compute.max_batch_size": "compute.max_num_seqs",
    "compute.gemm_half_tokens": "compute.ridge_softness",
    "pd.preemption": "compute.preemption",
}
# Keys renamed to the naming scheme (docs/REPORT_SCHEMA.md): still accepted, with one stderr notice per
# key per run. Only the last part of a key changes, so a nested YAML mapping is renamed in place.
DEPRECATED: dict[str, str] = {
    **{f"hardware.{t}.capacity_gb": f"hardware.{t}.capacity_gib" for t in ("hbm", "dram", "ssd", "eic")},
    "hardware.runtime_reserve_gb": "hardware.runtime_reserve_gib",
    "cluster.remote_ssd_capacity_gb": "cluster.remote_ssd_capacity_gib",
    "pd.kv_capacity_gb": "pd.kv_capacity_gib",
}
_warned: set[str] = set()  # deprecated keys already reported in this process
PROFILE_SECTIONS = ("hardware", "cache", "cluster", "pd", "model", "compute", "network")

# Bounds that keep a run inside memory and every figure finite (README "Limits"). Every float must be
# finite and at most MAX_FLOAT (capacities are GiB: 1e9 GiB = 1 EiB, still exact as int64 bytes).
MAX_FLOAT = 1e9
MAX_RACKS = 4096
MAX_GPUS_PER_RACK = 4096
MAX_GPUS = 131_072           # racks x gpus_per_rack of cluster and PD topologies (~2 KB per GPU measured)
MAX_REQUESTS = 1_000_000_000  # synthetic.requests (the memory estimate, sim.modes.memory, bounds real runs)
MAX_COUNT = 1_000_000        # sessions, documents, agents, system prompts
MAX_TOKENS = 1 << 24         # token counts and budgets (16M)
MAX_PARALLEL = 1024          # model.tp, model.pp
MAX_CONFIG_BYTES = 16 << 20  # config and profile files
MAX_STR = 4096               # any string value (model.name: 255)


def _known_trace_format(v: str) -> str:
    if v == "auto":  # the default needs no registry (keeps `import sim.config` free of numpy)
        return v
    from trace.formats import choices  # imported here: the trace package pulls in numpy

    allowed = choices()
    if v not in allowed:
        expected = ", ".join(repr(c) for c in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return v


# "auto" or a name registered in trace.formats (checked at validation time, so a format registered later counts).
TraceFormatName = Annotated[str, AfterValidator(_known_trace_format)]


class _Section(BaseModel):
    # allow_inf_nan=False: NaN and +-inf are refused for every float key.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _bounded(cls, v: Any) -> Any:
        if isinstance(v, float) and abs(v) > MAX_FLOAT:
            raise PydanticCustomError("too_large", f"Input should be a finite number of at most {MAX_FLOAT:g}")
        if isinstance(v, str) and ("\0" in v or len(v) > MAX_STR):
            raise PydanticCustomError("bad_string", f"Input should be a string of at most {MAX_STR} characters "
                                      "without NUL bytes")
        return v


class ModelCfg(_Section):
    name: str = Field("llama-3-8b", min_length=1, max_length=255)
    kv_dtype: Dtype = "fp16"
    weight_dtype: Dtype = "fp16"
    tp: int = Field(1, ge=1, le=MAX_PARALLEL)
    pp: int = Field(1, ge=1, le=MAX_PARALLEL)


class TierCfg(_Section):
    capacity_gib: float = Field(0.0, ge=0)
    bandwidth_gb_s: float = Field(1.0, gt=0)  # read: tier -> GPU
    write_bandwidth_gb_s: float = Field(0.0, ge=0)  # GPU/upper tier -> tier; 0 = bandwidth_gb_s
    latency_us: float = Field(0.0, ge=0)

    @property
    def write_gb_s(self) -> float:
        return self.write_bandwidth_gb_s or self.bandwidth_gb_s


class HbmCfg(_Section):
    capacity_gib: float = Field(0.0, ge=0)
    bandwidth_gb_s: float = Field(0.0, ge=0)  # 0 = the GPU preset's datasheet figure
    latency_us: float = Field(0.0, ge=0)


class HardwareCfg(_Section):
    gpu: str = "h100-sxm"
    gpus_per_node: int = Field(8, ge=1, le=1024)
    runtime_reserve_gib: float = Field(4.0, ge=0)
    host_bridge_gb_s: float = Field(0.0, ge=0)  # per node, shared by its GPUs' PCIe links; 0 = no limit
    hbm: HbmCfg = HbmCfg(capacity_gib=0.5)
    dram: TierCfg = TierCfg(capacity_gib=8, bandwidth_gb_s=25, latency_us=10)
    ssd: TierCfg = TierCfg(capacity_gib=64, bandwidth_gb_s=6, latency_us=100)
    eic: TierCfg = TierCfg(capacity_gib=512, bandwidth_gb_s=50, latency_us=3)


class CalibratedForCfg(_Section):
    """What a calibrated compute section was fitted on; the loader rejects a config that runs it elsewhere."""

    gpu: str = ""      # "" = not a calibration (no check)
    model: str = ""    # "" = any model
    tp: int = Field(0, ge=0)  # 0 = any tensor-parallel degree


class ComputeCfg(_Section):
    """The step-cost model's figures (sim.timing.step_cost; sources in config.yaml)."""

    dtype: Literal["fp16", "fp8"] = "fp16"
    gemm_efficiency: float = Field(0.74, gt=0, le=1)
    gemm_efficiency_fp8: float = Field(0.60, gt=0, le=1)
    ridge_softness: float = Field(0.84, ge=0, le=1)
    attn_efficiency: float = Field(0.45, gt=0, le=1)
    hbm_efficiency: float = Field(0.82, gt=0, le=1)
    comm_efficiency: float = Field(0.78, gt=0, le=1)
    comm_latency_us: float = Field(29.0, ge=0)
    layer_overhead_us: float = Field(112.0, ge=0)
    iteration_overhead_ms: float = Field(0.0, ge=0)
    max_num_seqs: int = Field(256, ge=1, le=MAX_COUNT)
    max_num_batched_tokens: int = Field(8192, ge=1, le=MAX_TOKENS)
    preemption: Literal["recompute", "swap"] = "recompute"
    calibration: str = ""
    calibrated_for: CalibratedForCfg = CalibratedForCfg()


class CacheCfg(_Section):
    block_tokens: int = Field(0, ge=0, le=MAX_TOKENS)
    write_policy: Literal["write_back", "write_through"] = "write_back"
    async_backup: bool = False
    prefetch_lookahead: int = Field(1, ge=1, le=MAX_COUNT)
    selective_depth_tokens: int = Field(4096, ge=0, le=MAX_TOKENS)
    engine: Literal["auto", "compiled", "python"] = "auto"
    writeback_share: float = Field(0.1, gt=0, lt=1)
    load_overlap: Literal["layerwise", "none"] = "layerwise"
    load_policy: Literal["always", "faster"] = "faster"


class PoliciesCfg(_Section):
    eviction: str = "lru"
    compare: list[str] = Field(min_length=1, default=["lru", "lfu", "fifo", "arc", "s3fifo", "selective_write",
                                                       "session_prefetch", "belady"])
    learned_model: str = ""
    learned_retrain_every: int = Field(2000, ge=1, le=MAX_REQUESTS)


class ClusterCfg(_Section):
    racks: int = Field(160, ge=1, le=MAX_RACKS)
    gpus_per_rack: int = Field(64, ge=1, le=MAX_GPUS_PER_RACK)
    eic_nodes_per_rack: int = Field(4, ge=0, le=1024)
    cross_rack_lookup: bool = False
    remote_ssd_capacity_gib: float = Field(1048576, ge=0)
    router: str = "prefix_aware"
    evict_to_eic: bool = True
    # 0: one cluster. K: the racks form K pods, each request pinned to one by `partition_by`
    # (sim.modes.partition); the results are those of that partitioned deployment.
    pods: int = Field(0, ge=0, le=MAX_RACKS)
    partition_by: str = "session"


class NetworkCfg(_Section):
    nvlink_bandwidth_gb_s: float = Field(0, ge=0)  # per direction; 0 = the GPU's NVLink total / 2
    nvlink_latency_us: float = Field(1, ge=0)
    nic_bandwidth_gb_s: float = Field(50, gt=0)
    rack_latency_us: float = Field(3, ge=0)
    cross_rack_latency_us: float = Field(15, ge=0)
    spine_bandwidth_gb_s: float = Field(400, gt=0)
    remote_ssd_latency_us: float = Field(200, ge=0)
    remote_ssd_bandwidth_gb_s: float = Field(100, gt=0)
    jitter_cv: float = Field(0.0, ge=0)
    tail_prob: float = Field(0.0, ge=0, le=1)
    tail_multiplier: float = Field(10.0, ge=1)
    contention: bool = True


class PdCfg(_Section):
    prefill_ratio: int = Field(1, ge=1, le=MAX_GPUS)
    decode_ratio: int = Field(3, ge=1, le=MAX_GPUS)
    chunk_size_tokens: int = Field(8192, ge=1, le=MAX_TOKENS)
    prefill_token_budget: int = Field(16384, ge=1, le=MAX_TOKENS)
    transfer: Literal["push", "pull", "pull_on_demand"] = "push"
    layerwise: bool = True
    racks: int = Field(2, ge=0, le=MAX_RACKS)  # 0 = cluster.racks
    gpus_per_rack: int = Field(0, ge=0, le=MAX_GPUS_PER_RACK)  # 0 = cluster.gpus_per_rack
    kv_capacity_gib: float = Field(0.0, ge=0)  # 0 = derive from GPU memory
    router: str = "cache_aware"
    load_penalty: float = Field(1.0, ge=0)
    decode_router: str = "rack_local"
    layer_groups: int = Field(4, ge=1, le=1024)
    coalesce_decode: bool = True


class SloCfg(_Section):
    ttft_ms: float = Field(30000, gt=0)  # Mooncake's real-workload SLOs (config.yaml cites them)
    tpot_ms: float = Field(100, gt=0)


class TraceCfg(_Section):
    path: str = ""
    format: TraceFormatName = "auto"
    limit: int = Field(0, ge=0, le=1 << 40)
    strict: bool = False


class SyntheticCfg(_Section):
    kind: Literal["multi_turn", "system_prompt", "rag", "multi_agent", "mixed"] = "multi_turn"
    requests: int = Field(3000, ge=1, le=MAX_REQUESTS)
    arrival: Literal["poisson", "gamma"] = "poisson"
    rate_per_s: float = Field(10.0, gt=0)
    burstiness_cv: float = Field(2.0, gt=0)
    sessions: int = Field(300, ge=1, le=MAX_COUNT)
    turns_mean: float = Field(5.0, ge=1, le=MAX_COUNT)
    turn_interval_s: float = Field(30.0, ge=0)
    system_prompt_tokens: int = Field(1024, ge=0, le=MAX_TOKENS)
    system_prompts: int = Field(4, ge=1, le=MAX_COUNT)
    new_tokens_mean: int = Field(400, ge=1, le=MAX_TOKENS)
    output_tokens_mean: int = Field(200, ge=1, le=MAX_TOKENS)
    documents: int = Field(200, ge=1, le=MAX_COUNT)
    document_tokens: int = Field(4096, ge=1, le=MAX_TOKENS)
    zipf_s: float = Field(1.1, gt=0)
    agents: int = Field(8, ge=1, le=MAX_COUNT)
    shared_prefix_tokens: int = Field(8192, ge=0, le=MAX_TOKENS)
    block_tokens: int = Field(16, ge=1, le=MAX_TOKENS)


class ExperimentsCfg(_Section):
    out_dir: str = "results"
    workers: int = Field(0, ge=0, le=1024)


class ReportCfg(_Section):
    # Up to this many requests per run the report's percentiles are numpy's on every value; above it the
    # per-request values go through fixed-memory quantile sketches (1% relative error; sim.report.sink).
    exact_quantiles_max_requests: int = Field(2_000_000, ge=0, le=1 << 40)


class Config(_Section):
    # Where this config came from (preset and profile names), for reports; not a key, not in the hash.
    _origin: dict[str, str | None] = PrivateAttr(default_factory=dict)
    seed: int = Field(42, ge=0, le=2**63 - 1)
    model: ModelCfg = ModelCfg()
    hardware: HardwareCfg = HardwareCfg()
    compute: ComputeCfg = ComputeCfg()
    cache: CacheCfg = CacheCfg()
    policies: PoliciesCfg = PoliciesCfg()
    cluster: ClusterCfg = ClusterCfg()
    network: NetworkCfg = NetworkCfg()
    pd: PdCfg = PdCfg()
    slo: SloCfg = SloCfg()
    trace: TraceCfg = TraceCfg()
    synthetic: SyntheticCfg = SyntheticCfg()
    experiments: ExperimentsCfg = ExperimentsCfg()
    report: ReportCfg = ReportCfg()

    @model_validator(mode="after")
    def _cluster_divides(self) -> Config:
        per_node = self.hardware.gpus_per_node
        if self.cluster.gpus_per_rack % per_node:
            raise ValueError(
                f"cluster.gpus_per_rack={self.cluster.gpus_per_rack} does not divide into nodes of "
                f"hardware.gpus_per_node={per_node}"
            )
        if self.model.tp * self.model.pp > per_node * self.cluster.gpus_per_rack:
            raise ValueError("model.tp x model.pp exceeds the GPUs of a rack")
        for sec, racks, per_rack in (("cluster", self.cluster.racks, self.cluster.gpus_per_rack),
                                     ("pd", self.pd.racks or self.cluster.racks,
                                      self.pd.gpus_per_rack or self.cluster.gpus_per_rack)):
            if racks * per_rack > MAX_GPUS:
                raise ValueError(
                    f"{sec}.racks x {sec}.gpus_per_rack = {racks:,} x {per_rack:,} = {racks * per_rack:,} GPUs "
                    f"exceeds the limit of {MAX_GPUS:,} (its topology alone would take "
                    f"~{racks * per_rack * 2e3 / 1e9:,.1f} GB of memory)")
        return self

    def hash(self) -> str:
        return config_hash(self)


def config_hash(cfg: Config) -> str:
    """Stable 12-hex-digit hash of the resolved config (key order independent)."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ---------------------------------------------------------------- loading

def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    from sim.io_safe import read_text_file

    text = read_text_file(path, what, MAX_CONFIG_BYTES)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise InputError(f"not valid YAML ({getattr(e, 'problem', e)})", where=f"{path}{line}") from None
    if not isinstance(data, dict):
        raise InputError("top level must be a mapping of sections", where=str(path))
    return data


def current_key(key: str) -> str:
    """The key's current name: a deprecated name is mapped to its successor, with one notice per run."""
    new = DEPRECATED.get(key)
    if new is None:
        return key
    if key not in _warned:
        import sys

        _warned.add(key)
        print(f"warning: {key} is deprecated; use {new} (same value, GiB)", file=sys.stderr)
    return new


def _merge(base: dict[str, Any], over: dict[str, Any], sources: dict[str, str], source: str, prefix: str = "") -> None:
    """Deep-merge `over` into `base`, remembering which source set each key."""
    for k, v in over.items():
        path = current_key(f"{prefix}{k}")
        k = path.rsplit(".", 1)[-1]
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v, sources, source, path + ".")
        else:
            base[k] = copy.deepcopy(v)
            sources[path] = source


def _source_for(loc: str, sources: dict[str, str], default: str) -> str:
    # The most specific recorded key that is a prefix of the error location.
    best, best_len = default, -1
    for key, src in sources.items():
        if (loc == key or loc.startswith(key + ".")) and len(key) > best_len:
            best, best_len = src, len(key)
    return best


def did_you_mean(key: str) -> str:
    """' (did you mean a.b?)' for the schema key closest to a mistyped one, else ''."""
    return closest_key(key, Config)


def _check_renamed(key: str, where: str) -> None:
    if key in RENAMED:
        raise InputError(f"{key} was replaced by {RENAMED[key]} (see README 'Step-cost model')", where=where)


def _check_calibrated_for(cfg: Config, sources: dict[str, str], default_source: str) -> None:
    """Efficiencies fitted on one GPU/model/TP are not valid for another: one line naming both sources."""
    cal = cfg.compute.calibrated_for
    if not cal.gpu:
        return
    from sim.config.gpus import gpu_spec

    m = cfg.model
    wrong = [(key, want, have) for key, want, have in (
        ("hardware.gpu", gpu_spec(cal.gpu).name, gpu_spec(cfg.hardware.gpu).name),
        ("model.name", cal.model.lower(), m.name.lower()),
        ("model.tp", cal.tp, m.tp),
    ) if want and want != have]
    if wrong:
        key, want, have = wrong[0]
        where = _source_for("compute.calibrated_for.gpu", sources, default_source)
        raise InputError(f"compute.calibrated_for: the step-cost efficiencies were fitted for {key}={want} but "
                         f"{key} is {have} (from {_source_for(key, sources, default_source)}); "
                         "recalibrate (calibrate timing) or use a profile fitted for it", where=where)


def _check_parallelism(cfg: Config, sources: dict[str, str], default_source: str) -> None:
    """model.tp / model.pp the model can be split into (the one rule: sim.config.models.check_parallelism)."""
    from sim.config.models import check_parallelism, model_spec

    try:
        spec = model_spec(cfg.model.name)
    except InputError as e:  # reported by the loader, before any work (and before a sweep starts its points)
        src = _source_for("model.name", sources, default_source)
        raise InputError(str(e), where=src if src != str(e.where) else None) from None
    check_parallelism(spec, cfg.model.tp, cfg.model.pp, where_tp=_source_for("model.tp", sources, default_source),
                      where_pp=_source_for("model.pp", sources, default_source))


def _validate(data: dict[str, Any], sources: dict[str, str], default_source: str) -> Config:
    try:
        cfg = Config.model_validate(data)
        _check_calibrated_for(cfg, sources, default_source)
        _check_parallelism(cfg, sources, default_source)
        return cfg
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            _check_renamed(loc, _source_for(loc, sources, default_source))
            msg = "unknown key" + did_you_mean(loc)
        elif "input" in err and not isinstance(err["input"], (dict, list)):
            got = repr(err["input"])
            msg = f"{msg} (got {got if len(got) <= 80 else got[:60] + '...'})"
        where = _source_for(loc, sources, default_source)
        if not loc:  # model-level validator: blame the latest source of a key it names
            msg = msg.removeprefix("Value error, ")
            named = [k for k in sources if k in msg]
            if named:
                where = sources[named[-1]]
            raise InputError(msg, where=where) from None
        raise InputError(f"{loc}: {msg}", where=where) from None


def _clip(text: str, n: int = 80) -> str:
    """A user string shortened for an error line (a 100 MB --set value must not be echoed whole)."""
    return text if len(text) <= n else text[: n - 3] + "..."


def parse_override(text: str, cfg_dict: dict[str, Any]) -> tuple[list[str], Any]:
    """Parse ``a.b=c``; the value is YAML (so 3, 0.5, true, [lru, arc] work)."""
    if "=" not in text:
        raise InputError(f"expected KEY=VALUE, got {_clip(text)!r}", where="--set")
    key, _, raw = text.partition("=")
    key = current_key(key.strip())
    parts = key.split(".")
    node: Any = cfg_dict
    for i, p in enumerate(parts):
        if not isinstance(node, dict) or p not in node:
            _check_renamed(key, f"--set {_clip(text)}")
            bad = ".".join(parts[: i + 1])
            raise InputError("unknown key" + did_you_mean(bad), where=f"--set {_clip(bad)}")
        node = node[p]
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(node, str) and not isinstance(value, str):
        value = raw.strip()  # e.g. model.name=7 stays a string
    return parts, value


def load_config(
    path: str | Path | None = None,
    preset: str | None = None,
    profile: str | Path | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Resolve a Config from file, preset, profile and ``--set`` overrides."""
    path = Path(path) if path else DEFAULT_CONFIG
    raw = _read_yaml(path, "config file")
    presets = raw.pop("presets", {}) or {}
    sources: dict[str, str] = {}
    data = Config().model_dump(mode="python")
    _merge(data, raw, sources, str(path))
    # Validate the file on its own first so errors name the file, not a later layer.
    _validate(data, sources, str(path))
    if preset:
        if preset not in presets:
            known = ", ".join(sorted(presets)) or "none"
            raise InputError(f"unknown preset {preset!r} (known: {known})", where=f"{path}: presets")
        _merge(data, presets[preset], sources, f"{path}: presets.{preset}")
    if profile:
        ppath = Path(profile)
        prof = _read_yaml(ppath, "profile")
        for section in prof:
            if section not in PROFILE_SECTIONS:
                raise InputError(
                    f"unknown section {section!r} (allowed: {', '.join(PROFILE_SECTIONS)})", where=str(ppath)
                )
        _merge(data, prof, sources, str(ppath))
    for text in overrides or []:
        parts, value = parse_override(text, data)
        node = data
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
        sources[".".join(parts)] = f"--set {_clip(text)}"
    cfg = _validate(data, sources, str(path))
    cfg._origin = {"preset": preset or None, "profile": str(profile) if profile else None}
    return cfg


def config_with(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A copy of `cfg` with dotted-key overrides applied and re-validated."""
    data = cfg.model_dump(mode="python")
    sources: dict[str, str] = {}
    for key, value in overrides.items():
        key = current_key(key)
        parts = key.split(".")
        node = data
        for p in parts[:-1]:
            if p not in node or not isinstance(node[p], dict):
                raise InputError(f"unknown key {key!r}", where="override")
            node = node[p]
        if parts[-1] not in node:
            _check_renamed(key, "override")
            raise InputError(f"unknown key {key!r}", where="override")
        node[parts[-1]] = value
        sources[key] = f"override {key}"
    out = _validate(data, sources, "override")
    out._origin = dict(cfg._origin)
    return out
