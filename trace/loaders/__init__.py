"""Trace loaders: one function per format, format sniffing, and `load_trace`.

Every loader has the signature ``(path: Path, *, strict: bool, limit: int |
None) -> (Workload, LoadStats)``. Bad rows are rejected and counted by reason
in LoadStats (``strict=True`` turns the first one into an InputError naming
the file and line); a missing, empty or unrecognizable file is an InputError.
Any input may be gzip-compressed (detected by its magic bytes).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from sim.errors import InputError
from trace.loaders.azure import load_azure
from trace.loaders.bailian import load_bailian
from trace.loaders.burstgpt import load_burstgpt
from trace.loaders.mooncake import load_mooncake
from trace.loaders.npz import load_npz
from trace.loaders.rows import REASONS, ZIP_MAGIC, check_file, head_lines, read_magic
from trace.loaders.splitwise import load_splitwise
from trace.workload import LoadStats, Workload

Loader = Callable[..., "tuple[Workload, LoadStats]"]

LOADERS: dict[str, Loader] = {
    "mooncake": load_mooncake,
    "azure": load_azure,
    "burstgpt": load_burstgpt,
    "splitwise": load_splitwise,
    "bailian": load_bailian,
    "npz": load_npz,
}

# Values accepted by --trace-format.
FORMATS: tuple[str, ...] = ("auto", *LOADERS)

__all__ = ["LOADERS", "FORMATS", "REASONS", "sniff_format", "load_trace"]


def _sniff_json(obj: dict) -> str | None:
    keys = set(obj)
    if keys & {"chat_id", "parent_chat_id", "prompt_length", "completion_length", "timestamp_ms"}:
        return "bailian"
    if {"input_length", "hash_ids"} <= keys:
        return "mooncake"
    return None


def _sniff_csv(header: str) -> str | None:
    cols = {c.strip().strip('"').strip().lower() for c in header.split(",")}
    if {"timestamp", "contexttokens", "generatedtokens"} <= cols:
        return "azure"
    if {"timestamp", "request tokens", "response tokens"} <= cols:
        return "burstgpt"
    if {"arrival_timestamp", "prompt_size", "token_size"} <= cols:
        return "splitwise"
    return None


def sniff_format(path: str | Path) -> str:
    """The format name of a trace file, from its suffix (.npz), its first JSON
    row or its CSV header line. InputError when it cannot be told."""
    p = check_file(path)
    magic = read_magic(p, 4)
    if p.suffix.lower() == ".npz" or magic == ZIP_MAGIC:
        return "npz"
    lines = head_lines(p, max_lines=5)
    if not lines:
        raise InputError("empty trace file: cannot detect its format", where=str(p))
    first = lines[0]
    if first.startswith("{"):
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                fmt = _sniff_json(obj)
                if fmt:
                    return fmt
                raise InputError(
                    f"unrecognized JSON trace: fields {sorted(obj)} match no known format "
                    "(mooncake: timestamp,input_length,output_length,hash_ids; "
                    "bailian: chat_id,parent_chat_id,timestamp,...)",
                    where=str(p),
                )
        raise InputError("cannot detect the trace format: the first lines are not valid JSON", where=str(p))
    fmt = _sniff_csv(first)
    if fmt:
        return fmt
    raise InputError(
        f"cannot detect the trace format from the first line {first[:120]!r}; "
        f"pass --trace-format ({', '.join(LOADERS)})",
        where=str(p),
    )


def load_trace(
    path: str | Path, fmt: str = "auto", *, strict: bool = False, limit: int | None = None
) -> tuple[Workload, LoadStats]:
    """Load a trace file into a Workload plus LoadStats.

    fmt: "auto" (sniffed) or one of LOADERS. strict: the first rejected row
    raises InputError("line N: reason: detail", where=path). limit: keep the
    first N loaded requests and stop reading.
    """
    p = check_file(path)
    if fmt is None or fmt == "auto":
        fmt = sniff_format(p)
    loader = LOADERS.get(fmt)
    if loader is None:
        raise InputError(f"unknown trace format {fmt!r} (known: {', '.join(FORMATS)})", where=str(p))
    return loader(p, strict=strict, limit=limit)
