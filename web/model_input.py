"""The model of a web request: a preset name, the contents of a config.json, or a typed architecture;
never a path.

The browser posts either a preset name (a string) or a HuggingFace config.json
as a JSON object (pasted or uploaded on the page). Nothing here touches the
filesystem: any string that is not a preset gets the same answer, so the
server's files can be neither read nor probed (sim.config.models.presets_only
makes the library refuse paths too while a request runs). A request may
instead carry ``architecture`` (CustomArchitecture: layers, heads, head dim,
parameter count typed into the page's form), which then replaces ``model``.
"""
from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from sim.config.models import PRESETS, UNKNOWN_PRESET, ModelSpec, spec_from_dict
from sim.errors import InputError

MAX_NAME = 255                 # characters of a preset name
MAX_CONFIG_BYTES = 256 << 10   # a posted config.json, as compact JSON (real ones are 1-30 KB)
MAX_LAYERS = 10_000            # num_hidden_layers of a posted config (loops over layers stay short)
MAX_VALUE = 1e12               # any number in a posted config
POSTED_KEY = "<posted config.json>"  # the name the library sees for a posted config (no preset has it)
CUSTOM_KEY = "<custom architecture>"  # ... and for a typed architecture
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


def short(v: object, n: int = 80) -> str:
    """`v` as text, cut to `n` characters: error messages never echo input in full."""
    s = str(v)
    return s if len(s) <= n else s[: n - 3] + "..."


_LONG_RUN = re.compile(r"[^\s'\",;:()]{81,}")


def tidy(msg: str, n: int = 300) -> str:
    """An error message for the browser: one line, every long run of characters (a quoted value) cut to
    80, the whole cut to `n`."""
    one = " ".join(str(msg).split())
    return short(_LONG_RUN.sub(lambda m: short(m.group(0)), one), n)


def _model_value(v: Any) -> str | dict[str, Any]:
    """Shape check of `model` before any work (pydantic plain validator: one message, field "model")."""
    if isinstance(v, str):
        if len(v) > MAX_NAME:
            raise ValueError(f"a model preset name has at most {MAX_NAME} characters (got {len(v)})")
        if not v.strip():
            raise ValueError(f"empty; {UNKNOWN_PRESET}")
        return v.strip()
    if isinstance(v, dict):
        return v
    raise ValueError(f"give a model preset name or the contents of a config.json (a JSON object); {UNKNOWN_PRESET}")


ModelField = Annotated[
    str | dict[str, Any], PlainValidator(_model_value),
    WithJsonSchema({"anyOf": [{"type": "string", "maxLength": MAX_NAME}, {"type": "object"}],
                    "description": "model preset name, or the contents of a HuggingFace config.json"}),
]


def _check_numbers(d: dict[str, Any]) -> None:
    """Every number finite and <= MAX_VALUE, layers <= MAX_LAYERS (top level and text_config)."""
    for scope in (d, d.get("text_config")):
        if not isinstance(scope, dict):
            continue
        for k, v in scope.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if not math.isfinite(v) or abs(v) > MAX_VALUE:
                raise InputError(f"config.json key {short(k, 40)!r} must be a finite number up to {MAX_VALUE:g}",
                                 where="model")
            if k in _LAYER_KEYS and v > MAX_LAYERS:
                raise InputError(f"config.json key {k!r} must be at most {MAX_LAYERS}", where="model")


def posted_spec(d: dict[str, Any]) -> ModelSpec:
    """ModelSpec of a posted config.json (size-capped, numbers bounded); InputError naming "model"."""
    try:
        size = len(json.dumps(d, allow_nan=False, separators=(",", ":")))
    except ValueError:
        raise InputError("config.json holds NaN or Infinity", where="model") from None
    except RecursionError:
        raise InputError("config.json is nested too deeply", where="model") from None
    if size > MAX_CONFIG_BYTES:
        raise InputError(f"config.json larger than {MAX_CONFIG_BYTES >> 10} KiB", where="model")
    _check_numbers(d)
    name = d.get("_name_or_path")
    name = short(name.strip(), 80) if isinstance(name, str) and name.strip() else "posted config.json"
    try:
        return spec_from_dict(d, name, "model")
    except InputError as e:
        raise InputError(short(str(e).removeprefix("model: "), 200), where="model") from None
    except (TypeError, ValueError, ArithmeticError, KeyError, AttributeError):
        raise InputError("config.json has a value of the wrong type or out of range", where="model") from None


class CustomArchitecture(BaseModel):
    """A dense transformer typed into the form: what the KV size, the weights and the step cost need.

    KV bytes per token = 2 x layers x KV heads x head dim x dtype bytes (as for a preset);
    weights = parameters x dtype bytes. ``hidden_size`` defaults to attention heads x head dim,
    ``attention_heads`` to the KV heads (multi-head attention).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(default="custom", min_length=1, max_length=64)
    layers: int = Field(ge=1, le=MAX_LAYERS)
    attention_heads: int | None = Field(default=None, ge=1, le=100_000)
    kv_heads: int = Field(ge=1, le=100_000)
    head_dim: int = Field(ge=1, le=100_000)
    hidden_size: int | None = Field(default=None, ge=1, le=10_000_000)
    params_b: float = Field(gt=0, le=100_000, description="parameters, billions (embeddings included)")
    vocab_size: int = Field(default=0, ge=0, le=10_000_000, description="0 = count every parameter as a GEMM's")
    max_context: int | None = Field(default=None, ge=1, le=100_000_000, description="tokens; None = not checked")


def custom_spec(a: CustomArchitecture) -> ModelSpec:
    """ModelSpec of a typed architecture; InputError naming the field when its parts disagree."""
    heads = a.attention_heads or a.kv_heads
    if heads % a.kv_heads:
        raise InputError(f"Attention heads ({heads:,}) must be a multiple of the KV heads ({a.kv_heads:,})",
                         where="architecture.kv_heads")
    hidden = a.hidden_size or heads * a.head_dim
    params = round(a.params_b * 1e9)
    if a.vocab_size * hidden >= params:
        raise InputError(f"Parameters must exceed the embedding table (vocabulary x hidden size = "
                         f"{a.vocab_size * hidden / 1e9:,.3g} billion)", where="architecture.params_b")
    return ModelSpec(name=short(a.name.strip() or "custom", 64), n_layers=a.layers, hidden_size=hidden,
                     n_heads=heads, n_kv_heads=a.kv_heads, head_dim=a.head_dim, intermediate_size=0,
                     vocab_size=a.vocab_size, params=params, max_context=a.max_context or 10**9)


def resolve_model(model: str | dict[str, Any],
                  architecture: CustomArchitecture | None = None) -> tuple[str, dict[str, ModelSpec]]:
    """(the model name to give the library, the posted models to register with presets_only)."""
    if architecture is not None:
        return CUSTOM_KEY, {CUSTOM_KEY: custom_spec(architecture)}
    if isinstance(model, dict):
        return POSTED_KEY, {POSTED_KEY: posted_spec(model)}
    if model.lower() not in PRESETS:
        raise InputError(f"{UNKNOWN_PRESET}; known presets: {', '.join(PRESETS)}", where="model")
    return model, {}


__all__ = ["CUSTOM_KEY", "CustomArchitecture", "MAX_CONFIG_BYTES", "MAX_NAME", "ModelField", "POSTED_KEY",
           "custom_spec", "posted_spec", "resolve_model", "short", "tidy"]
