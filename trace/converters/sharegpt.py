"""ShareGPT: a list of ``{id, conversations: [{from, value}]}`` (JSON array, JSONL or parquet).

``from`` is ``system``, ``human`` / ``user``, or ``gpt`` / ``chatgpt`` /
``assistant`` / ``bard`` / ``bing`` / ``model`` (the spellings found in
ShareGPT dumps); ``value`` must be a string. ShareGPT has no times: sessions
arrive as a seeded Poisson process (:mod:`trace.converters.arrivals`).
"""
from __future__ import annotations

from trace.converters.base import Converter, ConvertOptions, ConvertResult
from trace.converters.chat import parse_time, role_of
from trace.converters.sessions import Conversation, Message, Skip, convert_chat


def parse_record(rec: object) -> Conversation:
    if not isinstance(rec, dict):
        raise Skip("malformed_record", f"a JSON {type(rec).__name__}, expected an object")
    msgs = rec.get("conversations")
    if msgs is None:
        raise Skip("missing_messages", "no conversations key")
    if not isinstance(msgs, list):
        raise Skip("missing_messages", f"conversations is a {type(msgs).__name__}")
    out = []
    for m in msgs:
        if not isinstance(m, dict):
            raise Skip("malformed_record", "a message is not an object")
        if "from" not in m and "role" in m:
            raise Skip("missing_role", "a role/content message; use --from openai")
        value = m.get("value")
        if not isinstance(value, str):  # ShareGPT values are plain strings; anything else is not text
            raise Skip("non_text_content", f"value is {'null' if value is None else type(value).__name__}")
        out.append(Message(role_of(m.get("from")), value))
    return Conversation(out, parse_time(rec.get("timestamp")))


def convert(opts: ConvertOptions) -> ConvertResult:
    return convert_chat(opts, "sharegpt", parse_record)


CONVERTERS: dict[str, tuple[Converter, str]] = {
    "sharegpt": (convert, "ShareGPT: [{id, conversations: [{from, value}]}] (JSON, JSONL, parquet)"),
}
