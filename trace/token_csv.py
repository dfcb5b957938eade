"""Token-count-only CSV traces (BurstGPT, SplitwiseSim): one loader, the columns given by each format.

A row is (arrival in seconds, input tokens, output tokens) and, when the file
has a session column, a session key: keys are interned to dense session ids
in order of first appearance and number their turns. Block ids are synthetic
(``BLOCK_TOKENS`` per block), shared within a session and unique per request
otherwise (``Collector.build``).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trace.collector import Collector
from trace.rowio import run_csv, str_float, str_int, trace_name
from trace.workload import LoadStats, Workload

BLOCK_TOKENS = 16


def load_token_csv(path: Path, fmt: str, *, ts: str, inp: str, out: str, session: tuple[str, ...],
                   strict: bool = False, limit: int | None = None,
                   check: Callable[[int, int], None] | None = None,
                   note_sessions: bool = False) -> tuple[Workload, LoadStats]:
    """Load one token-count CSV. ``ts``/``inp``/``out`` name the required columns, ``session`` the
    accepted names of the optional session column; ``check(inp, out)`` may reject a row (BadRow)."""
    coll = Collector(path, fmt, strict=strict, limit=limit)
    sessions: dict[str, int] = {}
    turns: dict[int, int] = {}
    add = coll.add

    def row(cells: list[str], cols: dict[str, int], line: int) -> None:
        t = str_float(cells[cols["ts"]], ts)
        n_in = str_int(cells[cols["inp"]], inp)
        n_out = str_int(cells[cols["out"]], out)
        if check is not None:
            check(n_in, n_out)
        sid, turn = -1, -1
        if "session" in cols:
            key = cells[cols["session"]].strip()
            if key:
                sid = sessions.get(key, len(sessions))
                turn = turns.get(sid, 0)
        if add(line, t * 1000.0, n_in, n_out, sid, turn) and sid >= 0:
            sessions.setdefault(key, sid)
            turns[sid] = turn + 1

    run_csv(path, coll, fmt, {"ts": (ts,), "inp": (inp,), "out": (out,)}, {"session": session}, row)
    w, st = coll.build(trace_name(path), synthetic_block_tokens=BLOCK_TOKENS)
    if note_sessions and sessions:
        st.notes.append(f"{len(sessions)} Session ID values mapped to session ids 0..{len(sessions) - 1}")
    return w, st
