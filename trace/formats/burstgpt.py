"""BurstGPT CSV traces (``BurstGPT_1.csv`` ...).

Header ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``
(timestamps in seconds); some releases add ``Session ID``. Rows with 0
response tokens are failed requests and are rejected as ``failed_request``.

Token counts only: block ids are synthetic (16 tokens per block), shared
within a session (by ``Session ID``, interned to dense ints in order of first
appearance) and unique per request otherwise.
"""
from __future__ import annotations

from pathlib import Path

from trace.collector import Collector
from trace.rowio import BadRow, Head, run_csv, str_float, str_int, trace_name
from trace.workload import LoadStats, Workload

NAME = "burstgpt"
ORDER = 30
SUFFIXES: tuple[str, ...] = ()
BLOCK_TOKENS = 16


def sniff(head: Head) -> bool:
    return {"timestamp", "request tokens", "response tokens"} <= head.csv_columns


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    coll = Collector(path, "burstgpt", strict=strict, limit=limit)
    sessions: dict[str, int] = {}
    turns: dict[int, int] = {}
    add = coll.add

    def row(cells: list[str], cols: dict[str, int], line: int) -> None:
        ts = str_float(cells[cols["ts"]], "Timestamp")
        inp = str_int(cells[cols["inp"]], "Request tokens")
        out = str_int(cells[cols["out"]], "Response tokens")
        if out == 0:
            raise BadRow("failed_request", "0 response tokens")
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
        path, coll, "burstgpt",
        {"ts": ("Timestamp",), "inp": ("Request tokens",), "out": ("Response tokens",)},
        {"session": ("Session ID", "session_id", "SessionID")},
        row,
    )
    w, st = coll.build(trace_name(path), synthetic_block_tokens=BLOCK_TOKENS)
    if sessions:
        st.notes.append(f"{len(sessions)} Session ID values mapped to session ids 0..{len(sessions) - 1}")
    return w, st
