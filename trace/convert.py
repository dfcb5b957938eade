"""Write a Workload back out (``python main.py trace convert``).

fmt "mooncake": JSONL, one request per line with ``timestamp`` (ms),
``input_length``, ``output_length``, ``hash_ids``, plus ``session_id`` and
``turn`` when known (>= 0), ``block_tokens`` when it is not 512 and
``synthetic_blocks: true`` when the ids were synthesized, and the Workload's
``extra`` columns (measured latencies, trace.workload.MEASURED_COLUMNS; NaN as
null) - the Mooncake loader reads all of these back. A ``.gz`` path is gzip-compressed.

fmt "npz" (trace.formats.npz): version 2, the parent form uncompressed (memory-mapped on load), when
the workload is or compacts to parent form (``Workload.compacted``); else version 1, ``savez_compressed``
of the CSR arrays. Read back by ``load_trace(path, "npz")`` (auto-detected by suffix).

fmt "auto": "npz" for a ``.npz`` path, "mooncake" otherwise.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from sim.errors import InputError
from sim.io_safe import atomic_path
from trace.formats.npz import EXTRA_PREFIX, meta_members, v2_members
from trace.npzio import write_members
from trace.workload import Workload

WRITE_FORMATS = ("mooncake", "npz")
_ROWS = 1 << 16  # requests per chunk written as JSONL


def _ts(v: float):
    return int(v) if float(v).is_integer() else float(v)


def write_workload(w: Workload, path: str | Path, fmt: str = "auto") -> Path:
    """Write `w` to `path` in `fmt`; returns the path. InputError on a bad
    format or an unwritable path."""
    p = Path(path)
    if fmt == "auto":
        fmt = "npz" if p.suffix.lower() == ".npz" else "mooncake"
    if fmt not in WRITE_FORMATS:
        raise InputError(f"cannot write trace format {fmt!r} (supported: {', '.join(WRITE_FORMATS)})",
                         where=str(p))
    try:
        with atomic_path(p) as tmp:  # a half-written trace would load as a shorter, valid one
            if fmt == "npz":
                _write_npz(w, tmp)
            else:
                write_mooncake(w, tmp)
    except OSError as e:
        raise InputError(f"cannot write trace: {e.strerror or e}", where=str(p)) from None
    return p


def _write_npz(w: Workload, p: Path) -> None:
    c = w.compacted()
    if c.prefix is not None:
        write_members(p, v2_members(c, c.prefix))
        return
    # Version 1 (CSR, compressed). A file object, so numpy does not append ".npz" to the name.
    with open(p, "wb") as fh:
        np.savez_compressed(
            fh,
            arrival_ms=w.arrival_ms,
            input_tokens=w.input_tokens,
            output_tokens=w.output_tokens,
            session_id=w.session_id,
            turn=w.turn,
            block_offsets=w.block_offsets,
            block_ids=w.block_ids,
            **meta_members(w.name, w.block_tokens, w.synthetic_blocks, version=1),
            **{f"{EXTRA_PREFIX}{k}": v for k, v in w.extra.items()},  # type: ignore[arg-type]
        )


def write_mooncake(w: Workload, p: Path) -> None:
    """Write `w` as Mooncake-style JSONL to `p` as it is (no temporary name: callers stage `p`)."""
    extra = {}
    if w.block_tokens != 512:
        extra["block_tokens"] = int(w.block_tokens)
    if w.synthetic_blocks:
        extra["synthetic_blocks"] = True
    dumps = json.dumps
    opener = gzip.open if p.suffix.lower() == ".gz" else open
    with opener(p, "wt", encoding="utf-8", newline="\n") as fh:
        write = fh.write
        # In chunks of requests: Python lists of whole columns, or the expanded block lists of a
        # parent-form workload, would cost far more than the workload itself.
        for lo in range(0, len(w), _ROWS):
            hi = min(len(w), lo + _ROWS)
            arrival, inp, out, sess, turn = (a[lo:hi].tolist() for a in (
                w.arrival_ms, w.input_tokens, w.output_tokens, w.session_id, w.turn))
            if w.compact:
                assert w.prefix is not None
                offs_a, ids = w.prefix.to_csr(lo, hi)
            else:
                offs_a = w.block_offsets[lo:hi + 1] - w.block_offsets[lo]
                ids = w.block_ids[w.block_offsets[lo]:w.block_offsets[hi]]  # sliced per row (~36 B an id as list)
            offs = offs_a.tolist()
            extra_cols = [(k, [None if x != x else x for x in v[lo:hi].tolist()]) for k, v in w.extra.items()]
            for i in range(hi - lo):
                row = {
                    "timestamp": _ts(arrival[i]),
                    "input_length": inp[i],
                    "output_length": out[i],
                    "hash_ids": ids[offs[i] : offs[i + 1]].tolist(),
                }
                if sess[i] >= 0:
                    row["session_id"] = sess[i]
                if turn[i] >= 0:
                    row["turn"] = turn[i]
                if extra:
                    row.update(extra)
                for k, col in extra_cols:
                    row[k] = col[i]
                write(dumps(row))
                write("\n")
