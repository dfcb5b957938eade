"""Input converters: datasets that are not traces yet, turned into kvsim's Mooncake-style JSONL.

``python main.py trace convert --from NAME --trace IN --out OUT.jsonl`` looks
NAME up in :data:`CONVERTERS`. One module per format family under this
package registers its converters here (:mod:`trace.converters.sharegpt`,
:mod:`trace.converters.chat` for the role/content family); the conversation
-> session -> request logic they share lives in :mod:`trace.converters.sessions`.

A converter is a function ``(ConvertOptions) -> ConvertResult``: it reads
``opts.src``, counts skipped items by reason (``strict``: the first one is an
InputError naming the file and record), and writes ``opts.out`` plus its
metadata side file atomically (all or nothing).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sim.errors import InputError


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


@dataclass
class ConvertResult:
    """What a converter wrote: the output paths, the request count and the metadata it recorded."""

    out: Path
    meta_path: Path
    requests: int
    meta: dict = field(default_factory=dict)


Converter = Callable[[ConvertOptions], ConvertResult]

CONVERTERS: dict[str, Converter] = {}
HELP: dict[str, str] = {}


def register(name: str, help_text: str) -> Callable[[Converter], Converter]:
    """Decorator: add a converter under `name` (one line of help for `trace convert --help`)."""
    def deco(fn: Converter) -> Converter:
        if name in CONVERTERS:
            raise ValueError(f"converter name {name!r} is taken")
        CONVERTERS[name] = fn
        HELP[name] = help_text
        return fn
    return deco


def _load_all() -> None:
    # Imported for their registrations; here, not at the top, so the registry exists first.
    from trace.converters import chat, sharegpt  # noqa: F401


def names() -> tuple[str, ...]:
    _load_all()
    return tuple(sorted(CONVERTERS))


def get(name: str) -> Converter:
    _load_all()
    fn = CONVERTERS.get(name)
    if fn is None:
        raise InputError(f"unknown input format {name!r} (known: {', '.join(sorted(CONVERTERS))})", where="--from")
    return fn


def convert(name: str, opts: ConvertOptions) -> ConvertResult:
    return get(name)(opts)
