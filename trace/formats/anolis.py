"""openanolis kvcache-calculator trace rows (its ``ingest/trace_loader.py`` schema), JSONL.

Fields: ``chat_id`` and ``parent_chat_id`` (any text or number; ``-1``,
``none``, ``null`` or absent = first turn), ``turn``, ``type``, ``hash_ids``
(a list of ids, or one comma-separated string; ids of any type, compared as
text), a timestamp (``timestamp_ms``, ``timestamp``, ``time`` or ``ts``:
numbers >= 10^12 are milliseconds, smaller ones seconds, or an ISO-8601
string), ``input_length`` / ``prompt_length`` / ``prompt_len`` and
``output_length`` / ``completion_length`` / ``completion_len`` (0 when absent).

Rows with integer ids and numeric timestamps are Bailian rows (trace/formats/
bailian.py reads them the same way); this format claims the files bailian
cannot read: text ids, text hash ids, ``time``/``ts`` keys or ISO times.

Mapping to kvsim: each ``chat_id`` chain (``parent_chat_id`` links) is one
session, numbered by its root in order of first appearance; ``turn`` is the
file's turn made 0-based (as bailian); every distinct hash id text becomes one
block id; blocks are ``BLOCK_TOKENS`` (16) tokens as in the public
openanolis traces (re-block with ``--block-tokens``).
"""
from __future__ import annotations

from array import array
from collections import Counter
from datetime import datetime
from pathlib import Path

from trace.collector import Collector
from trace.rowio import BadRow, Head, as_int, first_key, run_jsonl, trace_name
from trace.workload import LoadStats, Workload

NAME = "anolis"
ORDER = 45  # before bailian, which reads the integer-only subset of these rows
SUFFIXES: tuple[str, ...] = ()
BLOCK_TOKENS = 16
TIME_KEYS = ("timestamp_ms", "timestamp", "time", "ts")
INPUT_KEYS = ("input_length", "prompt_length", "prompt_len")
OUTPUT_KEYS = ("output_length", "completion_length", "completion_len")
NO_PARENT = {"", "-1", "none", "null"}


def sniff(head: Head) -> bool:
    row = head.json_row
    if not isinstance(row, dict) or "chat_id" not in row or "hash_ids" not in row:
        return False
    h = row["hash_ids"]
    text_ids = isinstance(h, str) or (isinstance(h, list) and any(not isinstance(x, int) for x in h))
    text_time = not ({"timestamp", "timestamp_ms"} & set(row)) or isinstance(row.get("timestamp"), str)
    return (text_ids or text_time or isinstance(row["chat_id"], str)
            or bool({"prompt_len", "completion_len"} & set(row)))


def _time_ms(v: object) -> float:
    if isinstance(v, bool):
        raise BadRow("bad_value", f"timestamp {v!r} is not a time")
    if isinstance(v, str):
        t = v.strip()
        try:
            v = float(t)
        except ValueError:
            try:
                return datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith("Z") else t).timestamp() * 1000.0
            except ValueError:
                raise BadRow("bad_value", f"timestamp {t[:40]!r} is neither a number nor ISO-8601") from None
    if not isinstance(v, (int, float)):
        raise BadRow("bad_value", f"timestamp {v!r} is not a time")
    return float(v) if v >= 1e12 else float(v) * 1000.0  # openanolis: >= 10^12 is already ms


def _text_id(v: object) -> str | None:
    if v is None:
        return None
    t = str(v).strip()
    return None if t.lower() in NO_PARENT else t


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    coll = Collector(path, NAME, strict=strict, limit=limit, block_tokens=BLOCK_TOKENS)
    chains: dict[str, tuple[int, int]] = {}  # chat_id -> (session, depth)
    roots: dict[str, int] = {}
    blocks: dict[str, int] = {}
    raw_turns: list[int | None] = []
    depths: list[int] = []
    types: Counter = Counter()

    def row(obj: dict, line: int) -> None:
        key = next((k for k in TIME_KEYS if obj.get(k) is not None), None)
        if key is None:
            raise BadRow("missing_field", "no timestamp field (timestamp_ms / timestamp / time / ts)")
        ts_ms = _time_ms(obj[key])
        inp = as_int(first_key(obj, INPUT_KEYS, "input length"), "input_length")
        out_key = next((k for k in OUTPUT_KEYS if obj.get(k) is not None), None)
        out = as_int(obj[out_key], "output_length") if out_key else 0
        h = obj.get("hash_ids")
        if h is None:
            raise BadRow("missing_field", "no hash_ids field")
        if isinstance(h, str):
            h = [p.strip() for p in h.split(",") if p.strip()]
        if not isinstance(h, list):
            raise BadRow("bad_value", "hash_ids is neither a list nor a comma-separated string")
        ids = [blocks.setdefault(str(x), len(blocks)) for x in h]
        chat = _text_id(obj.get("chat_id"))
        if chat is None:
            raise BadRow("missing_field", "no chat_id field")
        raw_turn = as_int(obj["turn"], "turn") if obj.get("turn") is not None else None
        parent = _text_id(obj.get("parent_chat_id"))
        if parent is None:
            session, depth = roots.setdefault(chat, len(roots)), 0
        elif parent in chains:
            session, pdepth = chains[parent]
            depth = pdepth + 1 if pdepth >= 0 else -1
        else:  # a parent before the trace window: it roots the chain
            session, depth = roots.setdefault(parent, len(roots)), -1
        if not coll.add(line, ts_ms, inp, out, session, -1, ids):
            return
        chains.setdefault(chat, (session, depth))
        raw_turns.append(raw_turn)
        depths.append(depth)
        if obj.get("type") is not None:
            types[str(obj["type"])] += 1

    run_jsonl(path, coll, row)
    roots_t = [t for t, d in zip(raw_turns, depths, strict=True) if d == 0 and t is not None]
    present = [t for t in raw_turns if t is not None]
    base = min(roots_t) if roots_t else (1 if present and min(present) >= 1 else 0)
    coll.turn = array("q", [(t - base if t - base >= 0 else -1) if t is not None else d
                            for t, d in zip(raw_turns, depths, strict=True)])
    w, st = coll.build(trace_name(path))
    st.notes.append(f"{len(blocks)} distinct hash ids mapped to block ids; {len(roots)} chat chains as sessions")
    if present and base:
        st.notes.append(f"turn numbers in the file start at {base}; stored 0-based")
    if types:
        st.notes.append("request types: " + ", ".join(f"{k} {v}" for k, v in types.most_common()))
    return w, st
