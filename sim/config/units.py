"""Parsing of the human-friendly quantities users type on the command line."""
from __future__ import annotations

import re

from sim.errors import InputError

_TOKEN_SUFFIX = {"": 1, "k": 1024, "m": 1024**2}


def parse_tokens(text: str, where: str = "tokens") -> int:
    """'32K' -> 32768, '1.5M' -> 1572864, '4000' -> 4000 (K = 1024 tokens)."""
    part = str(text).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmM]?)", part)
    if not m:
        raise InputError(f"not a token count: {part!r} (use e.g. 4096, 8K, 128K, 1M)", where=where)
    n = float(m.group(1)) * _TOKEN_SUFFIX[m.group(2).lower()]
    if n < 1 or n != int(n):
        raise InputError(f"{part!r} must be a positive whole number of tokens", where=where)
    return int(n)
