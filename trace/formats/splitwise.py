"""SplitwiseSim CSV traces.

Header with at least ``arrival_timestamp,prompt_size,token_size`` (arrival in
seconds); extra id columns (``request_id``, ``request_type``,
``application_id``, ``batch_size`` ...) are ignored, except an optional
``session_id`` column, whose values are interned to dense session ids.

Token counts only: block ids are synthetic (16 tokens per block), shared
within a session and unique per request otherwise.
"""
from __future__ import annotations

from pathlib import Path

from trace.collector import Collector
from trace.rowio import Head, run_csv, str_float, str_int, trace_name
from trace.workload import LoadStats, Workload

NAME = "splitwise"
ORDER = 40
SUFFIXES: tuple[str, ...] = ()
BLOCK_TOKENS = 16


def sniff(head: Head) -> bool:
    return {"arrival_timestamp", "prompt_size", "token_size"} <= head.csv_columns


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    coll = Collector(path, "splitwise", strict=strict, limit=limit)
    sessions: dict[str, int] = {}
    turns: dict[int, int] = {}
    add = coll.add

    def row(cells: list[str], cols: dict[str, int], line: int) -> None:
        ts = str_float(cells[cols["ts"]], "arrival_timestamp")
        inp = str_int(cells[cols["inp"]], "prompt_size")
        out = str_int(cells[cols["out"]], "token_size")
        sid, turn = -1, -1
        if "session" in cols:
            key = cells[cols["session"]].strip()
            if key:
                sid = sessions.get(key, len(sessions))
                turn = turns.get(sid, 0)
        if add(line, ts * 1000.0, inp, out, sid, turn) and sid >= 0:
            sessions.setdefault(key, sid)
            turns[sid] = turn + 1

    run_csv(
        path, coll, "splitwise",
        {"ts": ("arrival_timestamp",), "inp": ("prompt_size",), "out": ("token_size",)},
        {"session": ("session_id", "conversation_id")},
        row,
    )
    return coll.build(trace_name(path), synthetic_block_tokens=BLOCK_TOKENS)
