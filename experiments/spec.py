"""Sweep spec: the YAML schema (pydantic, unknown keys rejected) and its loading.

```yaml
name: policies                    # results/<name>/ (default: the file's stem)
description: what the study shows
base:                             # the config every point starts from
  config: config.yaml             # default: the repository's config.yaml
  preset: null                    # a preset of that config
  profile: null                   # a calibration overlay (profiles/...)
  set: {hardware.gpus_per_node: 8}   # dotted config keys, applied after the profile
workloads:                        # named workloads (or `workload:` for one)
  mooncake: {trace: ../shared/traces/mooncake_conversation.jsonl, format: mooncake, limit: 0}
  chat: {synthetic: {kind: multi_turn, requests: 3000}}   # synthetic-section overrides
mode: single                      # single | oracle | any mode registered in sim.modes.runner.MODES
timing: true                      # false: hit-rate-only replay (no TTFT)
options: {oracle: {method: exact}}   # per-mode options
metrics: [hit_rate, ttft_p99_ms]  # what plots and the summary show (experiments.metrics registry)
axes:                             # see experiments.axes
  policies.eviction: [lru, arc]
  hardware.hbm.capacity_gib: {start: 1, stop: 16, num: 5, log: true}
  workload: [mooncake, chat]
combine: product                  # product | zip
repeats: 1                        # seeds base seed, base seed + 1, ... (or `seeds: [..]`)
presets:                          # `--preset NAME` overlays; null deletes a key
  smoke: {workloads: {mooncake: {limit: 300}}, axes: {hardware.hbm.capacity_gib: [2, 8]}}
plots:                            # optional; default: one PNG per metric
  - {y: [hit_rate], x: hardware.hbm.capacity_gib, series: policies.eviction, facet: workload}
```

Relative paths (config, profile, trace) are read from the current directory,
the repository root, like every other command's paths.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from experiments import results as R
from experiments.axes import Axis, check_config_key, parse_axis
from experiments.metrics import METRICS
from sim.config import Config, SyntheticCfg, config_with, current_key, load_config
from sim.config.schema import TraceFormatName
from sim.errors import InputError

MAX_POINTS = 10_000  # points of one sweep (axis values x seeds); each is a simulation and a file
MAX_SPEC_BYTES = 1024 * 1024
# a sweep's name, a preset's and a plot's become file names under the output folder: one plain component
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SAFE_NAME_RULE = "letters, digits, '.', '_' and '-' (at most 100, starting with a letter or digit), no '/'"


def check_safe_name(v: str) -> str:
    if not isinstance(v, str) or not SAFE_NAME.fullmatch(v) or v.strip(".") == "":
        raise ValueError(f"must be a plain file name: {SAFE_NAME_RULE}")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BaseSpec(_Strict):
    config: str | None = None
    preset: str | None = None
    profile: str | None = None
    set: dict[str, Any] = {}


class WorkloadSpec(_Strict):
    trace: str | None = None
    format: TraceFormatName = "auto"
    limit: int = Field(default=0, ge=0)
    strict: bool = False
    synthetic: dict[str, Any] = {}

    @model_validator(mode="after")
    def _one_source(self) -> WorkloadSpec:
        if self.trace and self.synthetic:
            raise ValueError("a workload is either `trace` or `synthetic`, not both")
        return self

    def overrides(self) -> dict[str, Any]:
        """Config keys this workload sets."""
        if self.trace:
            return {"trace.path": self.trace, "trace.format": self.format, "trace.limit": self.limit,
                    "trace.strict": self.strict}
        out = {"trace.path": "", "trace.limit": self.limit}
        out.update({f"synthetic.{k}": v for k, v in self.synthetic.items()})
        return out


class PlotSpec(_Strict):
    name: str | None = None  # PNG file stem (default: from the metrics)
    y: list[str]
    x: str | None = None  # an axis name (default: the first numeric axis)
    series: str | None = None  # an axis name: one line / bar colour per value
    facet: str | None = None  # an axis name: one panel per value
    title: str | None = None
    logy: bool = False

    @field_validator("name")
    @classmethod
    def _safe(cls, v):
        return None if v is None else check_safe_name(v)

    @field_validator("y", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v


class SpecModel(_Strict):
    name: str | None = None
    description: str = ""
    base: BaseSpec = BaseSpec()
    workload: WorkloadSpec | None = None
    workloads: dict[str, WorkloadSpec] | None = None
    mode: str = "single"
    timing: bool = True
    options: dict[str, dict[str, Any]] = {}
    metrics: list[str] = ["hit_rate"]
    axes: dict[str, Any] = {}
    combine: Literal["product", "zip"] = "product"
    repeats: int = Field(default=1, ge=1, le=MAX_POINTS)
    seeds: list[int] | None = Field(default=None, max_length=MAX_POINTS)
    presets: dict[str, dict[str, Any]] = {}
    plots: list[PlotSpec] = Field(default=[], max_length=100)

    @field_validator("name")
    @classmethod
    def _safe(cls, v):
        return None if v is None else check_safe_name(v)

    @field_validator("presets")
    @classmethod
    def _safe_presets(cls, v):
        for k in v:
            try:
                check_safe_name(k)
            except ValueError as e:
                raise ValueError(f"preset name {k!r} {e}") from None
        return v

    @model_validator(mode="after")
    def _checks(self) -> SpecModel:
        if self.workload is not None and self.workloads is not None:
            raise ValueError("give `workload` (one) or `workloads` (named), not both")
        if self.workloads is not None and not self.workloads:
            raise ValueError("`workloads` is empty")
        if self.seeds is not None:
            if not self.seeds:
                raise ValueError("`seeds` is empty")
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError("`seeds` repeats a seed")
            if "repeats" in self.model_fields_set and self.repeats != len(self.seeds):
                raise ValueError(f"repeats={self.repeats} but {len(self.seeds)} seeds are listed")
        if not self.metrics:
            raise ValueError("`metrics` is empty")
        return self


# ---------------------------------------------------------------- YAML helpers

@functools.lru_cache(maxsize=16)
def _compose(text: str):
    try:
        return yaml.compose(text)
    except yaml.YAMLError:
        return None


def _line_of(text: str, loc: tuple) -> int | None:
    """1-based line of the deepest key of `loc` present in the YAML text."""
    node = _compose(text)
    if node is None:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if str(k.value) == str(part):
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _where(path: Path, text: str, loc: tuple) -> str:
    line = _line_of(text, loc)
    return f"{path}:{line}" if line else str(path)


def _merge(base: dict, over: dict) -> dict:
    """Deep merge of a preset overlay; None deletes the key."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _validate(data: dict, path: Path, text: str, prefix: tuple = ()) -> SpecModel:
    try:
        return SpecModel.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {str(loc[-1])!r}" + (f" in {'.'.join(map(str, loc[:-1]))}" if len(loc) > 1 else "")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and not isinstance(err["input"], (dict, list)):
                msg += f" (got {err['input']!r})"
            msg = f"{dotted}: {msg}" if dotted else msg
        if prefix:
            msg = f"{'.'.join(prefix)}: {msg}"
        raise InputError(msg, where=_where(path, text, prefix + loc)) from None


# ---------------------------------------------------------------- the loaded sweep

@dataclass
class Sweep:
    """A validated spec, ready to expand into points."""

    path: Path
    text: str
    spec: SpecModel
    name: str
    preset: str | None  # the --preset given
    axes: list[Axis]
    workloads: dict[str, WorkloadSpec]
    seeds: list[int]
    modes: list[str]
    options: dict[str, BaseModel]
    base_set: dict[str, Any]
    _configs: dict[str | None, Config] = field(default_factory=dict, repr=False)

    def where(self, *loc) -> str:
        return _where(self.path, self.text, tuple(loc))

    def base_config(self, profile: str | None = None) -> Config:
        """The base config (file -> preset -> profile -> base.set); per profile for a `profile` axis."""
        key = profile if profile is not None else self.spec.base.profile
        if key in ("none", ""):
            key = None
        if key not in self._configs:
            b = self.spec.base
            try:
                cfg = load_config(b.config, b.preset, key)
            except InputError as e:
                raise InputError(f"base config: {e}", where=self.where("base")) from None
            if self.base_set:
                cfg = apply_overrides(cfg, self.base_set, self.where("base", "set"))
            self._configs[key] = cfg
        return self._configs[key]

    def spec_hash(self) -> str:
        blob = json.dumps(self.spec.model_dump(mode="json"), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return {"name": self.name, "spec": str(self.path), "preset": self.preset, "spec_hash": self.spec_hash(),
                "description": self.spec.description, "mode": self.spec.mode, "modes": self.modes,
                "timing": self.spec.timing, "combine": self.spec.combine, "seeds": self.seeds,
                "metrics": self.spec.metrics, "axes": [a.to_dict() for a in self.axes],
                "workloads": {k: v.model_dump() for k, v in self.workloads.items()},
                "plots": [p.model_dump() for p in self.spec.plots],
                "base_config_hash": self.base_config().hash(), "setup": self.setup()}

    def setup(self) -> dict[str, Any]:
        """Model, GPU and deployment of the base config, for plot titles (axes may vary them per point)."""
        c = self.base_config()
        return {"model": c.model.name, "gpu": c.hardware.gpu, "tp": c.model.tp, "pp": c.model.pp,
                "gpus_per_node": c.hardware.gpus_per_node, "racks": c.cluster.racks,
                "gpus_per_rack": c.cluster.gpus_per_rack,
                "pd_ratio": f"{c.pd.prefill_ratio}:{c.pd.decode_ratio}", "pd_racks": c.pd.racks,
                "slo_ttft_ms": c.slo.ttft_ms, "slo_tpot_ms": c.slo.tpot_ms}


def apply_overrides(cfg: Config, overrides: dict[str, Any], where: str) -> Config:
    """`cfg` with dotted-key overrides, re-validated; errors name `where` (spec file and line)."""
    try:
        return config_with(cfg, overrides)
    except InputError as e:
        msg = str(e).removeprefix(f"{e.where}: ") if e.where else str(e)
        raise InputError(msg, where=where) from None


def _read(path: Path) -> tuple[str, dict]:
    if not path.exists():
        raise InputError("sweep spec not found", where=str(path))
    if path.is_file() and path.stat().st_size > MAX_SPEC_BYTES:
        raise InputError(f"sweep spec is {path.stat().st_size:,} bytes (max {MAX_SPEC_BYTES:,})", where=str(path))
    text = R.read_text_file(path, "sweep spec")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(f"not valid YAML ({getattr(e, 'problem', e)})",
                         where=f"{path}:{mark.line + 1}" if mark else str(path)) from None
    if not isinstance(raw, dict):
        raise InputError("a sweep spec is a mapping (name, base, workloads, mode, axes, ...)", where=str(path))
    if not raw:
        raise InputError("the sweep spec is empty: give at least `axes` (or `name` and a workload)",
                         where=str(path))
    return text, raw


def count_points(axes: list[Axis], combine: str, seeds: int) -> int:
    """Points of a sweep, computed before any is built (a product of lengths, no list)."""
    if not axes:
        return seeds
    if combine == "zip":
        return len(axes[0].values) * seeds
    return math.prod(len(a.values) for a in axes) * seeds


def load_spec(path: str | Path, preset: str | None = None) -> Sweep:
    """Read, overlay `preset`, validate everything that can be checked before running."""
    from experiments import modes as mode_registry

    path = Path(path)
    text, raw = _read(path)
    spec = _validate(raw, path, text)
    for pname, overlay in spec.presets.items():  # a typo in an unused preset is still an error
        _validate(_merge({k: v for k, v in raw.items() if k != "presets"}, overlay), path, text, ("presets", pname))
    base_preset_from_flag = None
    if preset:
        if preset in spec.presets:
            spec = _validate(_merge(raw, spec.presets[preset]), path, text, ("presets", preset))
        else:
            base_preset_from_flag = preset  # fall back to the config's preset of that name
    if base_preset_from_flag:
        spec.base.preset = base_preset_from_flag

    base_set = {current_key(k): v for k, v in spec.base.set.items()}
    for k in base_set:
        check_config_key(k, where=_where(path, text, ("base", "set", k)))

    workloads = spec.workloads or {"default": spec.workload or WorkloadSpec()}
    for wname, ws in workloads.items():
        wloc = ("workloads", wname) if spec.workloads else ("workload",)
        for k in ws.synthetic:
            if k not in SyntheticCfg.model_fields:
                raise InputError(f"unknown synthetic key {k!r} (known: {', '.join(SyntheticCfg.model_fields)})",
                                 where=_where(path, text, wloc + ("synthetic", k)))

    axes = [parse_axis(str(n), v, _where(path, text, ("axes", n))) for n, v in spec.axes.items()]
    keys_seen: dict[str, str] = {}
    for ax in axes:
        for k in ax.keys:
            if k in keys_seen:
                raise InputError(f"key {k!r} is set by two axes ({keys_seen[k]}, {ax.name})",
                                 where=_where(path, text, ("axes", ax.name)))
            keys_seen[k] = ax.name
    if spec.combine == "zip" and len({len(a.values) for a in axes}) > 1:
        raise InputError(f"combine: zip needs axes of equal length, got "
                         f"{', '.join(f'{a.name}={len(a.values)}' for a in axes)}",
                         where=_where(path, text, ("combine",)))

    # workload axis values must name workloads; several workloads need the axis
    wl_values = [a[k] for ax in axes for a in ax.assigns for k in a if k == "workload"]
    for v in wl_values:
        if v not in workloads:
            raise InputError(f"workload {v!r} is not defined in `workloads` (have: {', '.join(workloads)})",
                             where=_where(path, text, ("axes",)))
    if len(workloads) > 1 and not wl_values:
        raise InputError(f"{len(workloads)} workloads are defined but no axis sets `workload`",
                         where=_where(path, text, ("workloads",)))
    for ax in axes:
        for a in ax.assigns:
            prof = a.get("profile")
            if prof not in (None, "none", "") and not Path(str(prof)).exists():
                raise InputError(f"profile file {prof!r} not found", where=_where(path, text, ("axes", ax.name)))

    mode_values = [a["mode"] for ax in axes for a in ax.assigns if "mode" in a]
    modes = list(dict.fromkeys(mode_values or [spec.mode]))
    for m in modes:
        mode_registry.lookup(str(m), where=_where(path, text, ("axes",) if mode_values else ("mode",)))
    for m in spec.options:
        if m not in modes:
            raise InputError(f"options for mode {m!r}, which no point uses (modes: {', '.join(modes)})",
                             where=_where(path, text, ("options", m)))
    options = {m: mode_registry.parse_options(m, spec.options.get(m), _where(path, text, ("options",)))
               for m in modes}

    for i, m in enumerate(spec.metrics):
        if m not in METRICS:
            raise InputError(f"unknown metric {m!r} (known: {', '.join(sorted(METRICS))})",
                             where=_where(path, text, ("metrics", i)))
    axis_names = [a.name for a in axes]
    for i, p in enumerate(spec.plots):
        for m in p.y:
            if m not in METRICS:
                raise InputError(f"unknown metric {m!r} (known: {', '.join(sorted(METRICS))})",
                                 where=_where(path, text, ("plots", i, "y")))
        for role in ("x", "series", "facet"):
            v = getattr(p, role)
            if v is not None:  # a plot may name an axis by its deprecated key
                v = current_key(v)
                setattr(p, role, v)
            if v is not None and v not in axis_names:
                raise InputError(f"plots[{i}].{role}: {v!r} is not an axis (axes: {', '.join(axis_names) or 'none'})",
                                 where=_where(path, text, ("plots", i, role)))

    n_seeds = len(spec.seeds) if spec.seeds is not None else spec.repeats
    n_points = count_points(axes, spec.combine, n_seeds)
    if n_points > MAX_POINTS:
        sizes = " x ".join(str(len(a.values)) for a in axes) or "1"
        raise InputError(f"the sweep has {n_points:,} points ({sizes} axis values x {n_seeds:,} seed(s); "
                         f"max {MAX_POINTS:,})", where=_where(path, text, ("axes",) if axes else ("repeats",)))
    name = spec.name or path.stem
    try:
        check_safe_name(name)
    except ValueError as e:
        raise InputError(f"the sweep name {name!r} (from the file name) {e}; set `name:`", where=str(path)) from None
    if preset:
        try:
            check_safe_name(preset)
        except ValueError as e:
            raise InputError(f"{preset!r} {e}", where="--preset") from None
    sweep = Sweep(path=path, text=text, spec=spec, name=name, preset=preset, axes=axes,
                  workloads=workloads, seeds=[], modes=[str(m) for m in modes], options=options, base_set=base_set)
    try:
        base = sweep.base_config()
    except InputError as e:
        if base_preset_from_flag and "unknown preset" in str(e):
            raise InputError(f"unknown preset {preset!r}: neither the spec's `presets` "
                             f"({', '.join(spec.presets) or 'none'}) nor the base config define it",
                             where="--preset") from None
        raise
    sweep.seeds = list(spec.seeds) if spec.seeds is not None else [base.seed + r for r in range(spec.repeats)]
    return sweep
