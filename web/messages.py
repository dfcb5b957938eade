"""Validation errors in words a user reads: the one place that maps pydantic's wording to the page's.

pydantic says "Input should be greater than or equal to 1" or "Input should be a
valid integer, unable to parse string as an integer"; the page says "Layers must
be a whole number between 1 and 10,000". The bounds come from the request
models' own field constraints (never restated here), the labels from LABELS.
Errors of other kinds (a custom validator's message, the library's InputError)
are already written for people and pass through unchanged.
"""
from __future__ import annotations

from typing import Any

import annotated_types as at
from pydantic import BaseModel

from web.model_input import short

# Field (dotted for nested models) -> what the page calls it.
LABELS = {
    "gpus": "GPUs", "tp": "TP", "pp": "PP", "kv_dtype": "KV dtype", "weight_dtype": "Weight dtype",
    "weight_overhead": "Weight overhead", "memory_gb": "GPU memory (GiB)", "kv_budget_gb": "KV budget per GPU (GiB)",
    "arrival_rate": "Arrival rate (conversations/s)", "turns": "Turns", "turns_dist": "Turn count",
    "interval_s": "Interval (s)",
    "prompt_tokens": "New tokens per turn", "response_tokens": "Response tokens",
    "system_prompt_tokens": "System prompt tokens", "system_prompts": "System prompts",
    "target_hit_rate": "Target hit rate", "points": "Chart points", "prefix_tokens": "Prefix tokens",
    "link_gb_s": "Link bandwidth (GB/s)", "gemm_efficiency": "GEMM efficiency", "gpu": "GPU", "vary": "Vary",
    "architecture.name": "Name", "architecture.layers": "Layers", "architecture.attention_heads": "Attention heads",
    "architecture.kv_heads": "KV heads", "architecture.head_dim": "Head dim", "architecture.hidden_size": "Hidden size",
    "architecture.params_b": "Parameters (billions)", "architecture.vocab_size": "Vocabulary size",
    "architecture.max_context": "Max context",
}
_NUMBER_ERRORS = {"int_parsing", "int_type", "int_from_float", "float_parsing", "float_type", "finite_number",
                  "greater_than", "greater_than_equal", "less_than", "less_than_equal", "missing", "none_required"}


def _num(v: Any) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,}"


def _field(model: type[BaseModel], path: list[str]) -> Any:
    """The FieldInfo at `path` (nested models followed), or None."""
    info = None
    for name in path:
        fields = getattr(model, "model_fields", None)
        if fields is None or name not in fields:
            return None
        info = fields[name]
        ann = info.annotation
        # `X | None` -> X: the nested model (if any) is the non-None member
        members = getattr(ann, "__args__", (ann,))
        model = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), model)
    return info


def _is_int(info: Any) -> bool:
    members = getattr(info.annotation, "__args__", (info.annotation,))
    return int in members and float not in members


def _range(info: Any, whole: bool) -> str:
    lo: Any = None
    hi: Any = None
    lo_open = False
    for m in info.metadata:
        if isinstance(m, at.Ge):
            lo = m.ge
        elif isinstance(m, at.Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, at.Le):
            hi = m.le
    if whole and lo is not None and lo_open:  # a whole number above 0 is one from 1
        lo, lo_open = lo + 1, False
    kind = "a whole number" if whole else "a number"
    if lo is not None and hi is not None:
        return (f"{kind} above {_num(lo)} and up to {_num(hi)}" if lo_open
                else f"{kind} between {_num(lo)} and {_num(hi)}")
    if lo is not None:
        return f"{kind} above {_num(lo)}" if lo_open else f"{kind} of at least {_num(lo)}"
    if hi is not None:
        return f"{kind} up to {_num(hi)}"
    return kind


def friendly(model: type[BaseModel], err: dict[str, Any]) -> str:
    """The page's message for one pydantic error of a request of type `model`."""
    path = [str(p) for p in err.get("loc", ()) if p not in ("body", "query")]
    kind = err.get("type", "")
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    key = ".".join(path)
    label = LABELS.get(key, key.replace("_", " ").capitalize() or "Input")
    if kind == "extra_forbidden":
        return f"{short(key, 40)!r} is not an input here"
    if kind in ("literal_error", "enum"):
        expected = (err.get("ctx") or {}).get("expected", "")
        return f"{label} must be one of {expected}".rstrip()
    info = _field(model, path) if path else None
    if info is None or kind not in _NUMBER_ERRORS:
        return msg
    if kind == "missing":
        return f"{label} is required"
    return f"{label} must be {_range(info, _is_int(info))}"


__all__ = ["LABELS", "friendly"]
