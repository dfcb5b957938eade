"""'Did you mean' for a mistyped config key: the closest dotted key of the schema (difflib)."""
from __future__ import annotations

import difflib

from pydantic import BaseModel


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of a pydantic schema: its sections and their leaves."""
    out: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        out.append(key)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += config_keys(ann, key + ".")
    return out


def closest_key(key: str, model: type[BaseModel]) -> str:
    """' (did you mean a.b?)' for the key of `model` closest to `key`, else ''."""
    close = difflib.get_close_matches(key, config_keys(model), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""
