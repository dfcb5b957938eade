"""The role/content family of chat datasets: ``openai``, ``lmsys``, ``wildchat``.

A record holds its conversation under ``messages`` (OpenAI chat format),
``conversation`` (LMSYS-Chat-1M, WildChat) or ``conversations``: a list of
``{role, content}``. Roles: ``system`` / ``developer`` (system), ``user`` /
``human``, ``assistant`` / ``gpt`` / ``model``, ``tool`` / ``function``
(context, like user input). Content is a string, or a list of parts whose
``type`` is ``text`` (joined); an image or any other part skips the
conversation (``non_text_content``), as does a null content (a tool call).

Times (WildChat): a message's ``timestamp`` and the record's ``timestamp`` /
``created`` / ``conversation_start`` are read as epoch seconds (numbers above
1e11 as milliseconds), ISO 8601 strings or datetimes; they become the arrival
times (see :mod:`trace.converters.arrivals`).
"""
from __future__ import annotations

import math
from datetime import UTC, datetime

from trace.converters.base import Converter, ConvertOptions, ConvertResult
from trace.converters.sessions import Conversation, Message, Skip, convert_chat

ROLE_ALIASES = {
    "system": "system", "developer": "system",
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant", "model": "assistant", "chatgpt": "assistant",
    "bard": "assistant", "bing": "assistant",
    "tool": "tool", "function": "tool", "ipython": "tool",
}
MESSAGE_KEYS = ("messages", "conversation", "conversations")
RECORD_TIME_KEYS = ("timestamp", "created", "conversation_start")


def role_of(raw: object) -> str:
    if raw is None or raw == "":
        raise Skip("missing_role", "a message has no role")
    role = ROLE_ALIASES.get(str(raw).strip().lower())
    if role is None:
        raise Skip("unknown_role", f"role {str(raw)[:40]!r}")
    return role


def text_of(content: object) -> str:
    """The text of a message content: a string, or a list of text parts; else Skip(non_text_content)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise Skip("non_text_content", f"a content part of type {str(kind)[:30]!r}")
        return "\n".join(parts)
    raise Skip("non_text_content", f"content is {'null' if content is None else type(content).__name__}")


def parse_time(v: object) -> float | None:
    """Epoch seconds from a number (s, or ms above 1e11), an ISO 8601 string or a datetime; None if absent."""
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
    if isinstance(v, bool):
        raise Skip("bad_timestamp", f"timestamp {v!r}")
    if isinstance(v, int | float):
        if not math.isfinite(v) or v < 0:
            raise Skip("bad_timestamp", f"timestamp {v!r}")
        return float(v) / 1000.0 if v > 1e11 else float(v)
    if isinstance(v, str):
        try:
            return parse_time(datetime.fromisoformat(v.strip().replace("Z", "+00:00")))
        except ValueError:
            raise Skip("bad_timestamp", f"timestamp {v[:40]!r}") from None
    raise Skip("bad_timestamp", f"timestamp of type {type(v).__name__}")


def parse_record(rec: object) -> Conversation:
    if not isinstance(rec, dict):
        raise Skip("malformed_record", f"a JSON {type(rec).__name__}, expected an object")
    msgs = next((rec[k] for k in MESSAGE_KEYS if k in rec), None)
    if msgs is None:
        raise Skip("missing_messages", f"none of the keys {', '.join(MESSAGE_KEYS)}")
    if not isinstance(msgs, list):
        raise Skip("missing_messages", f"the message list is a {type(msgs).__name__}")
    out = []
    for m in msgs:
        if not isinstance(m, dict):
            raise Skip("malformed_record", "a message is not an object")
        if "role" not in m and ("from" in m or "value" in m):
            raise Skip("missing_role", "a ShareGPT-style message (from/value); use --from sharegpt")
        out.append(Message(role_of(m.get("role")), text_of(m.get("content")), parse_time(m.get("timestamp"))))
    start = next((parse_time(rec[k]) for k in RECORD_TIME_KEYS if rec.get(k) not in (None, "")), None)
    return Conversation(out, start)


def _run(fmt: str) -> Converter:
    def run(opts: ConvertOptions) -> ConvertResult:
        return convert_chat(opts, fmt, parse_record)
    return run


CONVERTERS: dict[str, tuple[Converter, str]] = {
    "openai": (_run("openai"), "OpenAI chat format: records with messages: [{role, content}] (JSON, JSONL, parquet)"),
    "lmsys": (_run("lmsys"), "LMSYS-Chat-1M: records with conversation: [{role, content}] (parquet, JSON, JSONL)"),
    "wildchat": (_run("wildchat"), "WildChat: like lmsys, with per-message timestamps used as arrival times"),
}
