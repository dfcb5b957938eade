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

from trace.rowio import Head
from trace.token_csv import load_token_csv
from trace.workload import LoadStats, Workload

NAME = "splitwise"
ORDER = 40
SUFFIXES: tuple[str, ...] = ()


def sniff(head: Head) -> bool:
    return {"arrival_timestamp", "prompt_size", "token_size"} <= head.csv_columns


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    return load_token_csv(path, "splitwise", ts="arrival_timestamp", inp="prompt_size", out="token_size",
                          session=("session_id", "conversation_id"), strict=strict, limit=limit)
