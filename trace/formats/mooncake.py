"""Mooncake JSONL traces (FAST'25 release and the same schema elsewhere).

One JSON object per line: ``timestamp`` (ms), ``input_length``,
``output_length``, ``hash_ids`` (prefix-block hashes, 512 tokens per block;
``len(hash_ids) == ceil(input_length / 512)`` exactly, which the real
conversation trace satisfies for all 12,031 rows).

Optional fields written by :func:`trace.convert.write_workload` are read back:
``session_id``, ``turn`` (default -1), ``block_tokens`` (when the blocks are
not 512 tokens; must be the same on every row), ``synthetic_blocks`` and the
measured latencies of a converted benchmark (trace.workload.MEASURED_COLUMNS,
into Workload.extra; null = NaN). Which measured columns a file has is decided
by its first loaded row, so traces without them pay one check per row.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TypedDict

import numpy as np

from trace.collector import Collector
from trace.formats.bailian import CHAT_FIELDS
from trace.rowio import BadRow, Head, as_float, as_int, check_hash_ids, run_jsonl, trace_name
from trace.workload import MEASURED_COLUMNS, LoadStats, Workload

NAME = "mooncake"
ORDER = 10
SUFFIXES: tuple[str, ...] = ()
BLOCK_TOKENS = 512


def sniff(head: Head) -> bool:
    """A JSON row with input_length and hash_ids; Bailian rows have both too, plus chat fields."""
    keys = head.json_keys
    return {"input_length", "hash_ids"} <= keys and not keys & CHAT_FIELDS


class _State(TypedDict):
    """What the rows said about the file as a whole: its block size, whether its ids are synthetic."""

    bt: int | None
    synthetic: bool
    measured: tuple[str, ...] | None  # the measured columns of the file (None: no row loaded yet)


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    coll = Collector(path, "mooncake", strict=strict, limit=limit, block_tokens=BLOCK_TOKENS)
    state: _State = {"bt": None, "synthetic": False, "measured": None}
    add = coll.add
    measured: dict[str, list[float]] = {}

    def row(obj: dict, line: int) -> None:
        try:
            ts = obj["timestamp"]
            inp = obj["input_length"]
            out = obj["output_length"]
            h = obj["hash_ids"]
        except KeyError as e:
            raise BadRow("missing_field", f"no {e.args[0]} field") from None
        ts = as_float(ts, "timestamp")
        inp = as_int(inp, "input_length")
        out = as_int(out, "output_length")
        check_hash_ids(h)
        sess = as_int(obj["session_id"], "session_id") if "session_id" in obj else -1
        turn = as_int(obj["turn"], "turn") if "turn" in obj else -1
        bt = BLOCK_TOKENS
        if "block_tokens" in obj:
            bt = as_int(obj["block_tokens"], "block_tokens")
            if bt <= 0:
                raise BadRow("bad_value", f"block_tokens={bt} must be positive")
        if state["bt"] is None:
            state["bt"] = bt
        elif bt != state["bt"]:
            raise BadRow("bad_value", f"block_tokens={bt} differs from earlier rows ({state['bt']})")
        cols = state["measured"]
        if cols is None:
            cols = tuple(k for k in MEASURED_COLUMNS if k in obj)
        vals = [_measured(obj, k) for k in cols] if cols else None
        if not add(line, ts, inp, out, sess, turn, h, bt):
            return
        if state["measured"] is None:
            state["measured"] = cols
            measured.update({k: [] for k in cols})
        if obj.get("synthetic_blocks") is True:
            state["synthetic"] = True
        if vals:
            for k, v in zip(cols, vals, strict=True):
                measured[k].append(v)

    run_jsonl(path, coll, row)
    if state["bt"] is not None:
        coll.block_tokens = state["bt"]
    w, st = coll.build(trace_name(path), synthetic_flag=state["synthetic"])
    if measured:
        w.extra = {k: np.asarray(v, dtype=np.float64) for k, v in measured.items()}
    return w, st


def _measured(obj: dict, key: str) -> float:
    """A measured latency of a row: a number >= 0, or null (not measured: NaN)."""
    if key not in obj:
        raise BadRow("missing_field", f"no {key} field (the first row has it)")
    v = obj[key]
    if v is None:
        return math.nan
    v = as_float(v, key)
    if not v >= 0:
        raise BadRow("bad_value", f"{key}={v!r} must be >= 0")
    return v
