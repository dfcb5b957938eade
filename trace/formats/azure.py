"""Azure LLM inference traces 2023/2024 (``AzureLLMInferenceTrace_conv.csv`` ...).

Header ``TIMESTAMP,ContextTokens,GeneratedTokens``; timestamps are wall-clock
datetimes like ``2023-11-16 18:15:46.6805900`` (7 fractional digits, which
``datetime.fromisoformat`` of older Pythons refuses), parsed here by hand. An
optional ``T`` separator, a trailing ``Z`` or a ``+HH:MM`` offset are accepted.
arrival_ms is relative to the first row with a valid timestamp.

The trace holds token counts only and no sessions: block ids are synthetic,
16 tokens per block, unique per request.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from trace.collector import Collector
from trace.rowio import BadRow, Head, run_csv, str_int, trace_name
from trace.workload import LoadStats, Workload

NAME = "azure"
ORDER = 20
SUFFIXES: tuple[str, ...] = ()
BLOCK_TOKENS = 16
_EPOCH_ORD = _dt.date(1970, 1, 1).toordinal()
_day_cache: dict[str, int] = {}


def parse_datetime(s: str) -> tuple[int, float]:
    """``YYYY-MM-DD HH:MM:SS[.fffffff][Z|+HH:MM]`` -> (days since 1970, seconds in day).

    Raises BadRow("bad_value") when the text is not such a timestamp. The
    split keeps sub-microsecond digits exact enough for float64 arithmetic on
    differences.
    """
    s = s.strip()
    date, sep, clock = s.partition(" ")
    if not sep:
        date, sep, clock = s.partition("T")
    if not sep or not clock:
        raise BadRow("bad_value", f"timestamp {s!r} is not 'YYYY-MM-DD HH:MM:SS.f'")
    days = _day_cache.get(date)
    if days is None:
        try:
            if len(date) != 10:
                raise ValueError
            days = _dt.date.fromisoformat(date).toordinal() - _EPOCH_ORD
        except ValueError:
            raise BadRow("bad_value", f"timestamp {s!r}: bad date") from None
        if len(_day_cache) < 4096:
            _day_cache[date] = days
    offset = 0.0
    if clock.endswith("Z"):
        clock = clock[:-1]
    else:
        for sign in ("+", "-"):
            k = clock.find(sign)
            if k > 0:
                oh, _, om = clock[k + 1 :].partition(":")
                try:
                    offset = (int(oh) * 3600 + int(om or 0) * 60) * (1 if sign == "+" else -1)
                except ValueError:
                    raise BadRow("bad_value", f"timestamp {s!r}: bad UTC offset") from None
                clock = clock[:k]
                break
    parts = clock.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        hh, mm = int(parts[0]), int(parts[1])
        ss = float(parts[2])
        if not (0 <= hh < 24 and 0 <= mm < 60 and 0 <= ss < 61):
            raise ValueError
    except ValueError:
        raise BadRow("bad_value", f"timestamp {s!r}: bad time of day") from None
    return days, hh * 3600 + mm * 60 + ss - offset


def sniff(head: Head) -> bool:
    return {"timestamp", "contexttokens", "generatedtokens"} <= head.csv_columns


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    coll = Collector(path, "azure", strict=strict, limit=limit)
    ref: list = []  # (day, seconds) of the first valid timestamp
    add = coll.add

    def row(cells: list[str], cols: dict[str, int], line: int) -> None:
        day, sec = parse_datetime(cells[cols["ts"]])
        inp = str_int(cells[cols["inp"]], "ContextTokens")
        out = str_int(cells[cols["out"]], "GeneratedTokens")
        if not ref:
            ref.append((day, sec))
        d0, s0 = ref[0]
        arrival_ms = ((day - d0) * 86400 + (sec - s0)) * 1000.0
        if arrival_ms < 0:
            raise BadRow(
                "timestamp_out_of_order",
                f"{cells[cols['ts']].strip()} is before the first row's timestamp",
            )
        add(line, arrival_ms, inp, out)

    run_csv(
        path, coll, "azure",
        {"ts": ("TIMESTAMP",), "inp": ("ContextTokens",), "out": ("GeneratedTokens",)},
        {},
        row,
    )
    w, st = coll.build(trace_name(path), synthetic_block_tokens=BLOCK_TOKENS)
    if ref:
        d0, s0 = ref[0]
        first = _dt.datetime(1970, 1, 1) + _dt.timedelta(days=d0, seconds=s0)
        st.notes.append(f"arrival times are relative to the first timestamp ({first.isoformat(' ')} UTC)")
    return w, st
