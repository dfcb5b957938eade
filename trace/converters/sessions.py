"""Conversations -> sessions of requests: the logic every chat converter shares.

A parser (:mod:`trace.converters.sharegpt`, :mod:`trace.converters.chat`)
turns each record into a :class:`Conversation` of role-tagged messages, or
raises :class:`Skip` with a reason. Here each conversation becomes a session:
every assistant message that answers new input (a user, system or tool
message since the last reply) is one request whose prompt is the whole
context so far (system prompt + earlier turns + the new user message) and
whose output is that reply's tokens; an assistant message right after another
is counted in the same reply; a leading assistant message (a greeting) is
context only. The context's block ids are extended turn by turn (only the new
blocks are hashed), so a session costs O(its tokens), not O(turns^2).

Skip reasons (counted, or under ``--strict`` the first is an error naming the
file and record): ``malformed_record`` (not a JSON object), ``missing_messages``
(no conversation list), ``empty_conversation``, ``missing_role``,
``unknown_role``, ``non_text_content``, ``no_text`` (every message empty),
``no_assistant_reply`` (nothing to answer or no reply: no request), ``bad_timestamp``.
"""
from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from sim.errors import InputError
from trace.converters.arrivals import (
    DEFAULT_REPLY_TOKENS_S,
    DEFAULT_SESSION_RATE,
    DEFAULT_THINK_TIME_S,
    ArrivalModel,
    assign_arrivals,
)
from trace.converters.base import ConvertOptions, ConvertResult
from trace.converters.chain import HASH_NAME, ROOT_PARENT, as_int64, chain_hashes, dense_ids
from trace.converters.output import write_converted
from trace.converters.records import iter_records
from trace.converters.tokenize import Tokenizer, load_tokenizer
from trace.rowio import trace_name
from trace.workload import LoadStats, Workload

ROLES = ("system", "user", "assistant", "tool")


class Skip(Exception):
    """Raised by a record parser: the record is skipped for `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Message:
    role: str  # one of ROLES
    text: str
    time_s: float | None = None  # epoch seconds, when the dataset says


@dataclass
class Conversation:
    messages: list[Message]
    start_s: float | None = None  # the record's own timestamp, epoch seconds


@dataclass
class Requests:
    """Requests of all sessions so far, in session then turn order, block ids in CSR form."""

    inp: array = field(default_factory=lambda: array("q"))
    out: array = field(default_factory=lambda: array("q"))
    sess: array = field(default_factory=lambda: array("q"))
    turn: array = field(default_factory=lambda: array("q"))
    counts: array = field(default_factory=lambda: array("q"))
    ids: array = field(default_factory=lambda: array("q"))
    turn_s: list[float | None] = field(default_factory=list)  # dataset time of each request
    turn_counts: list[int] = field(default_factory=list)  # per session
    start_s: list[float | None] = field(default_factory=list)  # per session


class SessionBuilder:
    """Tokenizes conversations and appends their requests to a :class:`Requests`."""

    def __init__(self, tok: Tokenizer, block_tokens: int) -> None:
        self.tok = tok
        self.bt = block_tokens
        self.req = Requests()

    def add(self, conv: Conversation) -> int:
        """Append the session of `conv`; the number of requests it made. Raises Skip (nothing appended)."""
        bt, tok = self.bt, self.tok
        parent = ROOT_PARENT
        full: list[int] = []  # hashes (as int64) of the context's full blocks
        tail = np.zeros(0, dtype="<u4")  # hashed-so-far context tokens past the last full block
        pieces: list[np.ndarray] = []  # context tokens not hashed yet (hashed when a request needs them)
        ctx = 0
        pending = False  # new input since the last reply
        any_text = False
        # (input tokens, block ids, output tokens, dataset time) of each request
        turns: list[list] = []
        last_user_s: float | None = None
        for m in conv.messages:
            toks = tok.ids(m.text)
            n = len(toks)
            any_text = any_text or n > 0
            if m.role == "assistant":
                if pending:
                    if pieces:  # only the blocks new since the last request: O(tokens) per session
                        tail = np.concatenate((tail, *pieces))
                        pieces = []
                        nfull = len(tail) // bt
                        if nfull:
                            hashes = chain_hashes(tail[: nfull * bt], bt, 0, parent)
                            parent = hashes[-1]
                            full.extend(as_int64(hashes))
                            tail = tail[nfull * bt:]
                    part = chain_hashes(tail, bt, 0, parent) if len(tail) else []
                    turns.append([ctx, full + as_int64(part), n, last_user_s])
                    pending = False
                elif turns:
                    turns[-1][2] += n  # the same reply, split over messages
            else:
                pending = True
                if m.time_s is not None:
                    last_user_s = m.time_s
            if n:
                pieces.append(toks)
                ctx += n
        if not any_text:
            raise Skip("no_text", "every message is empty")
        if not turns:
            raise Skip("no_assistant_reply", "no assistant message answers a user message")
        r = self.req
        s = len(r.turn_counts)
        for k, (inp, blocks, out, t) in enumerate(turns):
            r.inp.append(inp)
            r.out.append(out)
            r.sess.append(s)
            r.turn.append(k)
            r.counts.append(len(blocks))
            r.ids.extend(blocks)
            r.turn_s.append(t)
        r.turn_counts.append(len(turns))
        first = next((m.time_s for m in conv.messages if m.time_s is not None), None)
        cands = [t for t in (conv.start_s, first) if t is not None]
        r.start_s.append(min(cands) if cands else None)
        return len(turns)


def build_sessions(
    records: Iterable[tuple[int, object]],
    parse: Callable[[object], Conversation],
    builder: SessionBuilder,
    stats: LoadStats,
    *,
    where: str,
    strict: bool,
    limit: int | None,
) -> None:
    """Feed every record through `parse` and `builder`, counting skips by reason in `stats`."""
    for rec_no, rec in records:
        stats.rows_read += 1
        try:
            conv = parse(rec)
            if not conv.messages:
                raise Skip("empty_conversation", "no messages")
            builder.add(conv)
        except Skip as s:
            if strict:
                raise InputError(f"record {rec_no}: {s.reason}" + (f": {s.detail}" if s.detail else ""),
                                 where=where) from None
            stats.reject(rec_no, s.reason, s.detail)
            continue
        stats.loaded += 1
        if limit is not None and stats.loaded >= limit:
            stats.notes.append(f"stopped after the first {limit} converted conversations (--limit)")
            break


def to_workload(req: Requests, arrival_ms: np.ndarray, block_tokens: int, name: str) -> tuple[Workload, int]:
    """The requests as a Workload sorted by arrival (ties keep session, then turn order), block hashes
    renumbered densely in first-seen order; and the number of distinct blocks."""
    counts = np.frombuffer(req.counts, dtype=np.int64) if len(req.counts) else np.zeros(0, np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    ids, n_unique = dense_ids(np.frombuffer(req.ids, dtype=np.int64) if len(req.ids) else np.zeros(0, np.int64))
    w = Workload(
        name=name,
        arrival_ms=arrival_ms,
        input_tokens=np.frombuffer(req.inp, dtype=np.int64),
        output_tokens=np.frombuffer(req.out, dtype=np.int64),
        session_id=np.frombuffer(req.sess, dtype=np.int64),
        block_offsets=offsets,
        block_ids=ids,
        block_tokens=block_tokens,
        turn=np.frombuffer(req.turn, dtype=np.int64),
    )
    return w.select(np.argsort(arrival_ms, kind="stable")), n_unique


def convert_chat(opts: ConvertOptions, fmt: str, parse: Callable[[object], Conversation]) -> ConvertResult:
    """Read `opts.src` with `parse` per record, build the sessions, time them, write the trace and metadata."""
    tok = load_tokenizer(opts.tokenizer)  # a bad tokenizer file fails before the dataset is read
    builder = SessionBuilder(tok, opts.block_tokens)
    stats = LoadStats(source=str(opts.src))
    build_sessions(iter_records(opts.src), parse, builder, stats, where=str(opts.src), strict=opts.strict,
                   limit=opts.limit)
    req = builder.req
    if not req.turn_counts:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(stats.rejected.items())) or "no records"
        first = f"; first: record {stats.examples[0][0]}: {stats.examples[0][1]}" if stats.examples else ""
        raise InputError(f"no conversation could be converted as {fmt} ({reasons}){first}", where=str(opts.src))
    model = ArrivalModel(
        session_rate=opts.session_rate or DEFAULT_SESSION_RATE,
        think_time_s=DEFAULT_THINK_TIME_S if opts.think_time_s is None else opts.think_time_s,
        reply_tokens_s=opts.reply_tokens_s or DEFAULT_REPLY_TOKENS_S,
        seed=opts.seed,
        use_dataset_times=opts.session_rate is None,
    )
    out_tokens = np.frombuffer(req.out, dtype=np.int64)
    arrival_ms, source = assign_arrivals(req.turn_counts, out_tokens, req.start_s, req.turn_s, model)
    if source == "dataset":
        stats.notes.append("arrival times from the dataset; think times and --seed only place turns without a time")
    w, n_unique = to_workload(req, np.round(arrival_ms, 3), opts.block_tokens, trace_name(opts.out))
    meta = {
        "from": fmt,
        "source": str(opts.src),
        "records_read": stats.rows_read,
        "conversations_converted": stats.loaded,
        "skipped": dict(stats.rejected),
        "skipped_examples": [{"record": r, "reason": why} for r, why in stats.examples],
        "requests": len(w),
        "input_tokens_total": int(w.input_tokens.sum()),
        "output_tokens_total": int(w.output_tokens.sum()),
        "tokenizer": tok.describe(),
        "block_tokens": opts.block_tokens,
        "block_hash": HASH_NAME,
        "unique_blocks": n_unique,
        "partial_last_block": "the last hash id of a row covers input_length - block_tokens * (len(hash_ids) - 1) "
                              "tokens",
        "arrivals": model.describe(source),
        "notes": list(stats.notes),
    }
    if opts.url:
        meta["url"] = opts.url
    mp = write_converted(w, meta, opts.out)
    return ConvertResult(out=opts.out, meta_path=mp, requests=len(w), meta=meta)
