"""Alibaba Bailian usage traces (``qwen-bailian-usagetraces-anon``), JSONL.

Fields: ``chat_id``, ``parent_chat_id`` (-1 for a first turn), ``timestamp``
(seconds, float, trace-relative), ``input_length``, ``output_length``,
``type`` (text, search, image, file ...), ``turn``, ``hash_ids`` (16-token
blocks, ``len == ceil(input_length / 16)``). Also accepted: ``timestamp_ms``
(milliseconds), ``prompt_length``, ``completion_length``.

Sessions: session_id is the chat_id at the root of the parent_chat_id chain
(a parent not seen earlier in the file - e.g. before the trace window, or a
rejected row - is taken as the root itself). turn comes from the ``turn``
field, shifted to 0-based when the file numbers first turns from 1; without
the field it is the chain depth (-1 when the chain starts at an unseen parent).
A row without ``chat_id`` has no session (-1).

The release hashes each 16-token block with salted SipHash; whether the
hashes chain over the prefix is not documented, so the loader checks that
every id always follows the same parent id and re-keys the blocks by their
whole prefix when it does not (a note in LoadStats says so).
"""
from __future__ import annotations

from array import array
from collections import Counter
from pathlib import Path

from trace.collector import Collector
from trace.rowio import BadRow, Head, as_float, as_int, check_hash_ids, first_key, run_jsonl, trace_name
from trace.workload import LoadStats, Workload

NAME = "bailian"
ORDER = 50
SUFFIXES: tuple[str, ...] = ()
BLOCK_TOKENS = 16
# Fields only Bailian rows carry (Mooncake rows share input_length and hash_ids).
CHAT_FIELDS = frozenset({"chat_id", "parent_chat_id", "prompt_length", "completion_length", "timestamp_ms"})


def sniff(head: Head) -> bool:
    return bool(head.json_keys & CHAT_FIELDS)


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    coll = Collector(path, "bailian", strict=strict, limit=limit, block_tokens=BLOCK_TOKENS)
    chains: dict[int, tuple[int, int]] = {}  # chat_id -> (root, depth)
    raw_turns: list[int | None] = []
    depths: list[int] = []
    types: Counter = Counter()
    dup = [0]
    add = coll.add

    def row(obj: dict, line: int) -> None:
        if "timestamp_ms" in obj:
            ts_ms = as_float(obj["timestamp_ms"], "timestamp_ms")
        elif "timestamp" in obj:
            ts_ms = as_float(obj["timestamp"], "timestamp") * 1000.0
        else:
            raise BadRow("missing_field", "no timestamp field (timestamp / timestamp_ms)")
        inp = as_int(first_key(obj, ("input_length", "prompt_length"), "input length"), "input_length")
        out = as_int(first_key(obj, ("output_length", "completion_length"), "output length"), "output_length")
        if "hash_ids" not in obj:
            raise BadRow("missing_field", "no hash_ids field")
        h = check_hash_ids(obj["hash_ids"])
        raw_turn = None
        if "turn" in obj and obj["turn"] is not None:
            raw_turn = as_int(obj["turn"], "turn")
        chat = obj.get("chat_id")
        if chat is None:
            session, depth = -1, -1
        else:
            chat = as_int(chat, "chat_id")
            parent = obj.get("parent_chat_id", -1)
            parent = -1 if parent is None else as_int(parent, "parent_chat_id")
            if parent < 0:
                session, depth = chat, 0
            elif parent in chains:
                session, pdepth = chains[parent]
                depth = pdepth + 1 if pdepth >= 0 else -1
            else:
                session, depth = parent, -1
        if not add(line, ts_ms, inp, out, session, -1, h):
            return
        if chat is not None:
            if chat in chains:
                dup[0] += 1
            else:
                chains[chat] = (session, depth)
        raw_turns.append(raw_turn)
        depths.append(depth)
        t = obj.get("type")
        if t is not None:
            types[str(t)] += 1

    run_jsonl(path, coll, row)

    # Turn numbers: the file's `turn` shifted to 0-based, else chain depth.
    root_turns = [t for t, d in zip(raw_turns, depths, strict=True) if d == 0 and t is not None]
    present = [t for t in raw_turns if t is not None]
    if root_turns:
        base = min(root_turns)
    elif present:
        base = 1 if min(present) >= 1 else 0
    else:
        base = 0
    coll.turn = array("q", [
        (t - base if t - base >= 0 else -1) if t is not None else d for t, d in zip(raw_turns, depths, strict=True)
    ])
    w, st = coll.build(trace_name(path))
    if present and base:
        st.notes.append(f"turn numbers in the file start at {base}; stored 0-based")
    if dup[0]:
        st.notes.append(f"{dup[0]} rows reuse an earlier chat_id; the first occurrence defines the chain")
    if types:
        st.notes.append("request types: " + ", ".join(f"{k} {v}" for k, v in types.most_common()))
    return w, st
