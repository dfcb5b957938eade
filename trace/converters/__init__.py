"""Input converters: datasets that are not traces yet, turned into kvsim's Mooncake-style JSONL.

``python main.py trace convert --from NAME --trace IN --out OUT.jsonl`` looks
NAME up in :data:`CONVERTERS`. Each format family is one module of this
package with its own ``CONVERTERS`` (name -> (function, one line of help)),
merged here: :mod:`trace.converters.sharegpt`, :mod:`trace.converters.chat`
(the role/content family), :mod:`trace.converters.vllm_bench` (a `vllm bench
serve --save-detailed` run, with the measured latencies). The conversation -> session -> request logic they
share lives in :mod:`trace.converters.sessions`.

A converter (:data:`trace.converters.base.Converter`) is a function
``(ConvertOptions) -> ConvertResult``: it reads ``opts.src``, counts skipped
items by reason (``strict``: the first one is an InputError naming the file
and record), and writes ``opts.out`` plus its metadata side file atomically
(all or nothing).
"""
from __future__ import annotations

from sim.errors import InputError
from trace.converters.base import Converter, ConvertOptions, ConvertResult

__all__ = ["CONVERTERS", "HELP", "Converter", "ConvertOptions", "ConvertResult", "names", "get", "convert"]

# name -> converter and name -> one line of help; filled from the family modules on first use.
CONVERTERS: dict[str, Converter] = {}
HELP: dict[str, str] = {}


def _registry() -> dict[str, Converter]:
    if not CONVERTERS:
        # Imported here, not at the top: numpy, pyarrow and the tokenizer stay out of `main.py --help`.
        from trace.converters import chat, sharegpt, vllm_bench

        for mod in (sharegpt, chat, vllm_bench):
            for name, (fn, help_text) in mod.CONVERTERS.items():
                if name in CONVERTERS:
                    raise ValueError(f"converter name {name!r} is taken")
                CONVERTERS[name] = fn
                HELP[name] = help_text
    return CONVERTERS


def names() -> tuple[str, ...]:
    return tuple(sorted(_registry()))


def get(name: str) -> Converter:
    fn = _registry().get(name)
    if fn is None:
        raise InputError(f"unknown input format {name!r} (known: {', '.join(names())})", where="--from")
    return fn


def convert(name: str, opts: ConvertOptions) -> ConvertResult:
    return get(name)(opts)
