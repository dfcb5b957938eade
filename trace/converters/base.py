"""What every dataset converter takes and returns (:mod:`trace.converters` is the registry)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ConvertOptions:
    """What `trace convert --from` passes to a converter (None: the converter's default)."""

    src: Path
    out: Path
    tokenizer: Path | None = None
    block_tokens: int = 16
    session_rate: float | None = None
    think_time_s: float | None = None
    reply_tokens_s: float | None = None
    seed: int = 0
    strict: bool = False
    limit: int | None = None  # the first N converted conversations (or records)
    url: str | None = None  # where `src` was downloaded from (--trace http(s)://...), recorded in the metadata


@dataclass
class ConvertResult:
    """What a converter wrote: the output paths, the request count and the metadata it recorded."""

    out: Path
    meta_path: Path
    requests: int
    meta: dict = field(default_factory=dict)


Converter = Callable[[ConvertOptions], ConvertResult]
