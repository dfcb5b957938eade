"""The `model` field of a web request: a preset name or the contents of a config.json, never a path.

The browser posts either a preset name (a string) or a HuggingFace config.json
as a JSON object (pasted or uploaded on the page). Nothing here touches the
filesystem: any string that is not a preset gets the same answer, so the
server's files can be neither read nor probed (sim.config.models.presets_only
makes the library refuse paths too while a request runs).
"""
from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema

from sim.config.models import PRESETS, UNKNOWN_PRESET, ModelSpec, spec_from_dict
from sim.errors import InputError

MAX_NAME = 255                 # characters of a preset name
MAX_CONFIG_BYTES = 256 << 10   # a posted config.json, as compact JSON (real ones are 1-30 KB)
MAX_LAYERS = 10_000            # num_hidden_layers of a posted config (loops over layers stay short)
MAX_VALUE = 1e12               # any number in a posted config
POSTED_KEY = "<posted config.json>"  # the name the library sees for a posted config (no preset has it)
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


def resolve_model(model: str | dict[str, Any]) -> tuple[str, dict[str, ModelSpec]]:
    """(the model name to give the library, the posted models to register with presets_only)."""
    if isinstance(model, dict):
        return POSTED_KEY, {POSTED_KEY: posted_spec(model)}
    if model.lower() not in PRESETS:
        raise InputError(f"{UNKNOWN_PRESET}; known presets: {', '.join(PRESETS)}", where="model")
    return model, {}


__all__ = ["MAX_CONFIG_BYTES", "MAX_NAME", "ModelField", "POSTED_KEY", "posted_spec", "resolve_model", "short", "tidy"]
