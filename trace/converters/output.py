"""A converted trace on disk: the Mooncake-style JSONL plus its metadata side file, written as one set.

The trace rows are exactly what the Mooncake loader reads (``timestamp`` ms,
``input_length``, ``output_length``, ``hash_ids``, ``session_id``, ``turn``,
``block_tokens``); a row's last hash id covers ``input_length -
block_tokens * (len(hash_ids) - 1)`` tokens, so a partial last block keeps its
exact token count. What the rows cannot say (the source, the tokenizer or the
approximation used, the block hash, the arrival process, skipped records) goes
to ``OUT.meta.json`` beside it (e.g. ``conv.jsonl.meta.json``): the loader
never sees a header line it would reject, and ``trace stats`` shows the file.
Both are staged under temporary names and renamed only when both are
written, the trace last, so a failure leaves no trace that looks complete.
"""
from __future__ import annotations

import json
from pathlib import Path

from sim.errors import InputError
from sim.io_safe import OutputSet
from trace.convert import write_mooncake
from trace.workload import Workload

META_SUFFIX = ".meta.json"
META_VERSION = 1


def meta_path(trace: str | Path) -> Path:
    p = Path(trace)
    return p.with_name(p.name + META_SUFFIX)


def write_converted(w: Workload, meta: dict, out: Path) -> Path:
    """Write the trace `out` and its side file; returns the side file's path."""
    mp = meta_path(out)
    text = json.dumps({"kvsim_converted_trace": META_VERSION, **meta}, indent=1, default=float) + "\n"
    with OutputSet() as outs:
        outs.write(mp, "--out", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        outs.write(out, "--out", lambda tmp: write_mooncake(w, tmp))
        outs.commit()
    return mp


def read_meta(trace: str | Path) -> dict | None:
    """The side file of a converted trace, or None when there is none (any other trace)."""
    mp = meta_path(trace)
    if not mp.is_file():
        return None
    try:
        d = json.loads(mp.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable metadata side file ({e})", where=str(mp)) from None
    return d if isinstance(d, dict) and "kvsim_converted_trace" in d else None


def meta_notes(meta: dict) -> list[str]:
    """One-line remarks on a converted trace for `trace stats`: source, tokenizer, blocks, arrivals, skips."""
    skipped = meta.get("skipped", {})
    skip_note = ["skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(skipped.items()))] if skipped else []
    if "conversations_converted" not in meta:  # not a chat dataset (vllm-bench): its facts are stated as text
        notes = [f"converted from {meta.get('converter', meta.get('from'))} {meta.get('source')}: "
                 f"{meta.get('requests')} requests"]
        notes += [f"{k.replace('_', ' ')}: {meta[k]}" for k in ("arrivals", "block_ids", "prefix_structure")
                  if isinstance(meta.get(k), str)]
        return notes + skip_note + [str(n) for n in meta.get("notes", [])]
    tok = meta.get("tokenizer", {})
    tok_s = (f"approximation ({tok.get('rule')})" if tok.get("kind") == "approximation"
             else f"{tok.get('path')} (sha256 {str(tok.get('sha256', ''))[:12]})")
    arr = meta.get("arrivals", {})
    arr_s = ("dataset timestamps" if arr.get("source") == "dataset"
             else f"Poisson sessions at {arr.get('session_rate_sessions_s')}/s, think time "
                  f"{arr.get('think_time_distribution')}, seed {arr.get('seed')}")
    notes = [
        f"converted from {meta.get('from')} {meta.get('source')}: {meta.get('conversations_converted')} of "
        f"{meta.get('records_read')} records",
        f"tokens: {tok_s}",
        f"block ids: {meta.get('block_hash')}, {meta.get('block_tokens')} tokens per block",
        f"arrivals: {arr_s}",
    ]
    return notes + skip_note + [str(n) for n in meta.get("notes", [])]
