"""Sweep axes: their values (lists or ranges), the keys they set, and how to label them.

An axis of a spec is ``NAME: VALUES``. NAME is one of

* a dotted key of the Config schema (``hardware.hbm.capacity_gib``), checked
  against the schema: a typo is an error, never an ignored override;
* a special key: ``mode`` (simulation mode), ``workload`` (a name from the
  spec's ``workloads``), ``profile`` (a calibration overlay file, or ``none``);
* a derived key from :data:`DERIVED` (``kv_capacity_tokens``), converted into
  config keys once the rest of the point's config is known;
* any other name when VALUES is ``{zip: {KEY: [...], ...}, labels: [...]}``:
  a composite axis whose i-th value sets every KEY to its i-th entry.

VALUES is a list, ``{values: [...]}``, or a range: ``{start, stop, num,
log}`` (num points, geometric when log) or ``{start, stop, step}``
(inclusive). ``integer: true`` rounds range values to integers; ``label``
names the axis on plots (default: from the key and its unit suffix).
"""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from sim.config import Config, current_key
from sim.errors import InputError

SPECIAL_KEYS = ("mode", "workload", "profile")
MAX_AXIS_VALUES = 10_000  # one axis; the whole sweep is bounded by experiments.spec.MAX_POINTS
RANGE_KEYS = {"start", "stop", "num", "step", "log", "integer", "label"}
LIST_KEYS = {"values", "log", "label"}
ZIP_KEYS = {"zip", "labels", "label"}


@dataclass(frozen=True)
class DerivedKey:
    """A sweep key that is not in the config but converts into config keys."""

    label: str  # axis label on plots, with unit
    apply: Callable[[Config, Any], dict[str, Any]]  # (config so far, value) -> config overrides
    doc: str


def _kv_capacity_tokens(cfg: Config, value: Any) -> dict[str, Any]:
    from sim.config.kv_sizes import GIB, kv_bytes_per_token_total
    from sim.config.models import model_spec

    tokens = float(value)
    if not math.isfinite(tokens) or tokens <= 0:
        raise InputError(f"kv_capacity_tokens must be > 0, got {value!r}")
    kvpt = kv_bytes_per_token_total(model_spec(cfg.model.name), cfg.model.kv_dtype)
    gpus = cfg.model.tp * cfg.model.pp
    # Bytes per GPU rounded up to a whole byte, so that the simulator's
    # int(capacity_gib * GiB) x GPUs holds floor(tokens / block) blocks exactly
    # (x / 2**30 and back is exact in binary floating point).
    per_gpu = math.ceil(tokens * kvpt / gpus)
    return {"hardware.hbm.capacity_gib": per_gpu / GIB}


DERIVED: dict[str, DerivedKey] = {
    "kv_capacity_tokens": DerivedKey(
        label="KV capacity of one model replica's HBM (tokens)",
        apply=_kv_capacity_tokens,
        doc="HBM KV capacity of one worker (tp x pp GPUs) in tokens of the configured model and KV dtype; "
            "sets hardware.hbm.capacity_gib",
    ),
}


# ---------------------------------------------------------------- config keys

def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_leaf_keys(ann, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


CONFIG_KEYS: tuple[str, ...] = tuple(_leaf_keys(Config))


def check_config_key(key: str, where: str, what: str = "config key") -> None:
    """InputError unless `key` is a leaf key of the Config schema (with a did-you-mean)."""
    if key in CONFIG_KEYS:
        return
    close = difflib.get_close_matches(key, CONFIG_KEYS, n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise InputError(f"unknown {what} {key!r}{hint}", where=where)


def check_axis_key(key: str, where: str) -> None:
    if key in SPECIAL_KEYS or key in DERIVED:
        return
    if key == "seed":
        raise InputError("`seed` cannot be an axis: use `repeats` or `seeds`", where=where)
    if key not in CONFIG_KEYS:
        close = difflib.get_close_matches(key, [*CONFIG_KEYS, *SPECIAL_KEYS, *DERIVED], n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(
            f"unknown axis key {key!r}{hint}: use a config key (a.b.c), one of {', '.join(SPECIAL_KEYS)}, "
            f"a derived key ({', '.join(DERIVED)}), or {{zip: {{KEY: [...]}}, labels: [...]}}",
            where=where,
        )


# ---------------------------------------------------------------- values

# PyYAML follows YAML 1.1, where 1e4 and 1.0e4 (no exponent sign) are strings.
_EXP_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _yaml11_number(v: Any) -> Any:
    """'1.0e4' -> 10000.0 (what the spec author meant); anything else unchanged."""
    if isinstance(v, str) and _EXP_NUMBER.match(v.strip()):
        return float(v)
    return v

def _clean(v: float) -> float | int:
    """12 significant digits: 0.1 + 0.2 style noise must not leak into CSV columns and ids."""
    return float(f"{v:.12g}")


def _range_values(raw: dict, where: str) -> list[Any]:
    unknown = set(raw) - RANGE_KEYS
    if unknown:
        raise InputError(f"unknown range key {sorted(unknown)[0]!r} (allowed: {', '.join(sorted(RANGE_KEYS))})",
                         where=where)
    raw = {k: _yaml11_number(v) for k, v in raw.items()}
    for k in ("start", "stop"):
        if k not in raw:
            raise InputError("a range needs `start` and `stop` (and `num` or `step`)", where=where)
        if isinstance(raw[k], bool) or not isinstance(raw[k], (int, float)):
            raise InputError(f"range {k} must be a number, got {raw[k]!r}", where=where)
    start, stop = float(raw["start"]), float(raw["stop"])
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise InputError(f"range start and stop must be finite numbers, got {start!r}, {stop!r}", where=where)
    log = bool(raw.get("log", False))
    if ("num" in raw) == ("step" in raw):
        raise InputError("a range takes exactly one of `num` or `step`", where=where)
    if "num" in raw:
        num = raw["num"]
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise InputError(f"range num must be an integer >= 1, got {num!r}", where=where)
        if num > MAX_AXIS_VALUES:
            raise InputError(f"range num is {num:,} (max {MAX_AXIS_VALUES:,} values per axis)", where=where)
        if log:
            if start <= 0 or stop <= 0:
                raise InputError("a log range needs start > 0 and stop > 0", where=where)
            a, b = math.log10(start), math.log10(stop)
            vals = [10 ** (a + (b - a) * i / (num - 1)) if num > 1 else start for i in range(num)]
        else:
            vals = [start + (stop - start) * i / (num - 1) if num > 1 else start for i in range(num)]
    else:
        step = raw["step"]
        if log:
            raise InputError("`log` goes with `num`, not `step`", where=where)
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step == 0 or (stop - start) * step < 0:
            raise InputError(f"range step must be a non-zero number going from start to stop, got {step!r}",
                             where=where)
        span = (stop - start) / step + 1e-9
        if not math.isfinite(span) or span + 1 > MAX_AXIS_VALUES:
            raise InputError(f"range has {span + 1:,.0f} values (max {MAX_AXIS_VALUES:,} per axis)", where=where)
        n = int(math.floor(span)) + 1
        vals = [start + i * step for i in range(n)]
    integer = raw.get("integer")
    if integer is None:  # integral start/stop/step -> integers, as the user wrote them
        integer = "step" in raw and all(isinstance(raw[k], int) for k in ("start", "stop", "step"))
    if integer:
        out = []
        for v in vals:
            iv = int(round(v))
            if iv not in out:
                out.append(iv)
        return out
    return [_clean(v) for v in vals]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def looks_log_spaced(values: list[Any]) -> bool:
    """Positive numbers spanning >= 20x with roughly constant ratios (a list written as a log grid)."""
    nums = sorted(float(v) for v in values if _is_number(v))
    if len(nums) < 3 or len(nums) != len(values) or nums[0] <= 0 or nums[-1] / nums[0] < 20:
        return False
    ratios = [b / a for a, b in zip(nums, nums[1:], strict=False)]
    return max(ratios) / min(ratios) < 3.0


def _check_value(v: Any, where: str) -> None:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return
    if isinstance(v, list) and all(isinstance(x, (str, int, float, bool)) for x in v):
        return
    raise InputError(f"axis values must be scalars or lists of scalars, got {v!r}", where=where)


@dataclass
class Axis:
    """One axis: its display values and, per value, the keys it sets."""

    name: str
    values: list[Any]  # what the CSV column `name` holds, in spec order
    assigns: list[dict[str, Any]]  # per value: key -> value (config, special or derived keys)
    label: str | None = None
    log: bool = False
    keys: list[str] = field(default_factory=list)

    @property
    def numeric(self) -> bool:
        return all(_is_number(v) for v in self.values)

    def to_dict(self) -> dict:
        return {"name": self.name, "values": self.values, "keys": self.keys, "label": self.label or default_label(self),
                "log": self.log, "numeric": self.numeric}


def parse_axis(name: str, raw: Any, where: str) -> Axis:
    """Parse one `axes:` entry (see the module doc). `where` names the spec file and line."""
    if isinstance(raw, dict) and "zip" in raw:
        unknown = set(raw) - ZIP_KEYS
        if unknown:
            raise InputError(f"axes.{name}: unknown key {sorted(unknown)[0]!r} (allowed: zip, labels, label)",
                             where=where)
        z = raw["zip"]
        if not isinstance(z, dict) or not z:
            raise InputError(f"axes.{name}.zip must map keys to lists of values", where=where)
        z = {current_key(str(k)): v for k, v in z.items()}
        lengths = set()
        for k, vals in z.items():
            check_axis_key(str(k), where=f"{where}: axes.{name}.zip")
            if not isinstance(vals, list) or not vals:
                raise InputError(f"axes.{name}.zip.{k} must be a non-empty list", where=where)
            for v in vals:
                _check_value(v, f"{where}: axes.{name}.zip.{k}")
            lengths.add(len(vals))
        if len(lengths) != 1:
            raise InputError(f"axes.{name}.zip lists differ in length ({sorted(lengths)})", where=where)
        n = lengths.pop()
        assigns = [{k: z[k][i] for k in z} for i in range(n)]
        labels = raw.get("labels")
        if labels is None:
            labels = [", ".join(f"{k}={a[k]}" for k in z) for a in assigns]
        elif not isinstance(labels, list) or len(labels) != n:
            raise InputError(f"axes.{name}.labels must be a list of {n} names", where=where)
        labels = [str(x) for x in labels]
        if len(set(labels)) != n:
            raise InputError(f"axes.{name}.labels must be distinct", where=where)
        return Axis(name, labels, assigns, label=raw.get("label"), keys=list(z))
    name = current_key(name)
    check_axis_key(name, where=f"{where}: axes")
    label = None
    log = None
    if isinstance(raw, list):
        values = raw
    elif isinstance(raw, dict) and "values" in raw:
        unknown = set(raw) - LIST_KEYS
        if unknown:
            raise InputError(f"axes.{name}: unknown key {sorted(unknown)[0]!r} (allowed: values, log, label)",
                             where=where)
        values, label, log = raw["values"], raw.get("label"), raw.get("log")
        if not isinstance(values, list):
            raise InputError(f"axes.{name}.values must be a list", where=where)
    elif isinstance(raw, dict):
        values = _range_values(raw, f"{where}: axes.{name}")
        label, log = raw.get("label"), bool(raw.get("log", False))
    else:
        raise InputError(f"axes.{name} must be a list, {{values: [...]}} or a range {{start, stop, num|step}}",
                         where=where)
    if not values:
        raise InputError(f"axes.{name} has no values", where=where)
    if len(values) > MAX_AXIS_VALUES:
        raise InputError(f"axes.{name} has {len(values):,} values (max {MAX_AXIS_VALUES:,} per axis)", where=where)
    values = [_yaml11_number(v) for v in values]
    for v in values:
        _check_value(v, f"{where}: axes.{name}")
    keyed = [repr(v) for v in values]
    if len(set(keyed)) != len(keyed):
        raise InputError(f"axes.{name} repeats a value", where=where)
    if log is None:
        log = looks_log_spaced(values)
    ax = Axis(name, list(values), [{name: v} for v in values], label=label, log=bool(log), keys=[name])
    if ax.log and not (ax.numeric and all(v > 0 for v in values)):
        raise InputError(f"axes.{name}: a log axis needs positive numbers", where=where)
    return ax


# ---------------------------------------------------------------- labels

UNIT_SUFFIXES = (  # (key suffix, unit) - the unit conventions of config.yaml
    ("_gb_s", "GB/s"), ("_gb", "GiB"), ("_ms", "ms"), ("_us", "µs"), ("_tokens", "tokens"), ("_per_s", "1/s"),
    ("_s", "s"), ("_cv", "coefficient of variation"), ("_prob", "probability"), ("_ratio", "instances"),
)
KEY_LABELS = {
    "policies.eviction": "eviction policy",
    "mode": "simulation mode",
    "workload": "workload",
    "profile": "calibration profile",
    "hardware.hbm.capacity_gib": "HBM KV budget per GPU (GiB)",
    "hardware.dram.capacity_gib": "host DRAM for KV per node (GiB)",
    "hardware.ssd.capacity_gib": "local SSD for KV per node (GiB)",
    "pd.decode_ratio": "decode instances per prefill instance",
    "network.jitter_cv": "network jitter (coefficient of variation)",
    "network.tail_prob": "tail-slowdown probability per transfer",
    "synthetic.document_tokens": "context length (document tokens)",
}


def key_label(key: str) -> str:
    """A readable axis label with its unit, from the key (config.yaml's unit suffix conventions)."""
    if key in KEY_LABELS:
        return KEY_LABELS[key]
    if key in DERIVED:
        return DERIVED[key].label
    leaf = key.rsplit(".", 1)[-1]
    for suf, unit in UNIT_SUFFIXES:
        if leaf.endswith(suf):
            return f"{key.removesuffix(suf)} ({unit})"
    return key


def default_label(ax: Axis) -> str:
    if ax.label:
        return ax.label
    if len(ax.keys) == 1 and ax.keys[0] == ax.name:
        return key_label(ax.name)
    return ax.name
