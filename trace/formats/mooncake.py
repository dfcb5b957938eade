"""Mooncake JSONL traces (FAST'25 release and the same schema elsewhere).

One JSON object per line: ``timestamp`` (ms), ``input_length``,
``output_length``, ``hash_ids`` (prefix-block hashes, 512 tokens per block;
``len(hash_ids) == ceil(input_length / 512)`` exactly, which the real
conversation trace satisfies for all 12,031 rows).

Optional fields written by :func:`trace.convert.write_workload` are read back:
``session_id``, ``turn`` (default -1), ``block_tokens`` (when the blocks are
not 512 tokens; must be the same on every row) and ``synthetic_blocks``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from trace.collector import Collector
from trace.formats.bailian import CHAT_FIELDS
from trace.rowio import BadRow, Head, as_float, as_int, check_hash_ids, run_jsonl, trace_name
from trace.workload import LoadStats, Workload

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


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    coll = Collector(path, "mooncake", strict=strict, limit=limit, block_tokens=BLOCK_TOKENS)
    state: _State = {"bt": None, "synthetic": False}
    add = coll.add

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
        if add(line, ts, inp, out, sess, turn, h, bt) and obj.get("synthetic_blocks") is True:
            state["synthetic"] = True

    run_jsonl(path, coll, row)
    if state["bt"] is not None:
        coll.block_tokens = state["bt"]
    return coll.build(trace_name(path), synthetic_flag=state["synthetic"])
