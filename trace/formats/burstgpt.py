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

from trace.rowio import BadRow, Head
from trace.token_csv import load_token_csv
from trace.workload import LoadStats, Workload

NAME = "burstgpt"
ORDER = 30
SUFFIXES: tuple[str, ...] = ()


def sniff(head: Head) -> bool:
    return {"timestamp", "request tokens", "response tokens"} <= head.csv_columns


def _check(_inp: int, out: int) -> None:
    if out == 0:
        raise BadRow("failed_request", "0 response tokens")


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    return load_token_csv(path, "burstgpt", ts="Timestamp", inp="Request tokens", out="Response tokens",
                          session=("Session ID", "session_id", "SessionID"), strict=strict, limit=limit,
                          check=_check, note_sessions=True)
