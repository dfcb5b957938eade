"""The records of a dataset file, whatever its container: a JSON array, JSONL, or parquet (pyarrow).

Gzip is detected by its magic bytes; parquet by its ``PAR1`` magic; a file
whose first non-blank character is ``[`` is one JSON array (or an object with
a ``data`` list, as some dataset dumps are); anything else is read as JSONL.
A syntax error is an InputError naming the file and the line (JSONL) or
character (JSON): a truncated download must not convert as a shorter dataset.
Records come with their 1-based number, which skip messages and ``--strict``
errors name.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

from sim.errors import InputError
from trace.rowio import bounded_lines, check_file, open_binary, read_magic, stream_errors

PARQUET_MAGIC = b"PAR1"
_PARQUET_BATCH = 2048
_CHUNK = 1 << 20  # characters read at a time from a JSON list


def iter_records(path: Path) -> Iterator[tuple[int, object]]:
    """(record number, record) for every record of the file; InputError for a file that does not parse."""
    p = check_file(path)
    if read_magic(p, 4) == PARQUET_MAGIC:
        yield from _parquet(p)
        return
    first = _first_char(p)
    if first is None:
        raise InputError("empty dataset file", where=str(p))
    if first == "[":
        yield from _json_array_stream(p)
    elif first == "{" and _is_single_json(p):
        yield from _json_array(p)
    else:
        yield from _jsonl(p)


def _first_char(p: Path) -> str | None:
    try:
        with open_binary(p) as fh:
            while True:
                chunk = fh.read(4096)
                if not chunk:
                    return None
                s = chunk.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
                if s:
                    return s[0]
    except stream_errors() as e:
        raise InputError(f"cannot read the file ({e})", where=str(p)) from None


def _is_single_json(p: Path) -> bool:
    """A file starting with '{' is JSONL unless its first line is not a complete JSON value (pretty-printed)."""
    try:
        with open_binary(p) as fh:
            for raw in bounded_lines(fh, p):
                if raw.strip():
                    json.loads(raw)
                    return False
    except ValueError:
        return True
    except stream_errors():
        return False
    return False


def _json_array(p: Path) -> Iterator[tuple[int, object]]:
    try:
        with open_binary(p) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}", where=str(p)) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start})", where=str(p)) from None
    except stream_errors() as e:
        raise InputError(f"cannot read the file ({e})", where=str(p)) from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise InputError(f"expected a JSON list of conversations, got a JSON {type(data).__name__}", where=str(p))
    for i in range(len(data)):
        rec, data[i] = data[i], None  # drop each record once converted: the parsed file is the peak
        yield i + 1, rec


def _json_array_stream(p: Path) -> Iterator[tuple[int, object]]:
    """The items of a top-level JSON array, decoded one at a time from a growing text buffer.

    json.load of a ShareGPT dump holds every record at once (~3.6x the file in
    memory); this holds one record and a chunk. A record that does not decode
    is retried with more text until the end of the file, where it is an error
    naming the record.
    """
    dec = json.JSONDecoder()
    n = 0
    try:
        with open_binary(p) as fh, io.TextIOWrapper(fh, encoding="utf-8-sig") as text:
            buf, pos, eof = "", 0, False

            def more(size: int) -> None:
                nonlocal buf, pos, eof
                chunk = text.read(size)
                eof = not chunk
                buf = buf[pos:] + chunk
                pos = 0

            def skip_ws() -> str:
                """The next non-blank character ('' at the end of the file), buffered."""
                nonlocal pos
                while True:
                    while pos < len(buf) and buf[pos] in " \t\r\n":
                        pos += 1
                    if pos < len(buf) or eof:
                        return buf[pos] if pos < len(buf) else ""
                    more(_CHUNK)

            more(_CHUNK)
            if skip_ws() != "[":
                raise InputError("malformed JSON: expected a list", where=str(p))
            pos += 1
            while True:
                c = skip_ws()
                if c == "]":
                    return
                if n:
                    if c != ",":
                        raise InputError(f"record {n + 1}: malformed JSON (expected ',' or ']', got {c[:1]!r})"
                                         if c else f"malformed JSON: the list ends after record {n} without ']'",
                                         where=str(p))
                    pos += 1
                    c = skip_ws()
                if not c:
                    raise InputError(f"malformed JSON: the list ends after record {n} without ']'", where=str(p))
                size = _CHUNK
                while True:
                    try:
                        rec, end = dec.raw_decode(buf, pos)
                        if end < len(buf) or eof:  # a value ending at the buffer's end may go on (a number)
                            break
                    except json.JSONDecodeError as e:
                        if eof:
                            raise InputError(f"record {n + 1}: malformed JSON ({e.msg})", where=str(p)) from None
                    size = max(size, len(buf) - pos)  # double the record's text each retry: O(record) overall
                    more(size)
                n += 1
                pos = end
                yield n, rec
    except UnicodeDecodeError as e:
        raise InputError(f"record {n + 1}: not UTF-8 text (byte {e.start} of a chunk)", where=str(p)) from None
    except stream_errors() as e:
        raise InputError(f"record {n + 1}: cannot read the file ({e})", where=str(p)) from None


def _jsonl(p: Path) -> Iterator[tuple[int, object]]:
    line = 0
    try:
        with open_binary(p) as fh:
            for raw in bounded_lines(fh, p):
                line += 1
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                except ValueError as e:
                    why = f"{e.msg} at char {e.pos}" if isinstance(e, json.JSONDecodeError) else "not UTF-8"
                    raise InputError(f"line {line}: malformed JSON ({why})", where=str(p)) from None
                yield line, rec
    except stream_errors() as e:
        raise InputError(f"line {line + 1}: cannot read the file ({e})", where=str(p)) from None


def _parquet(p: Path) -> Iterator[tuple[int, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"malformed parquet file ({str(e).splitlines()[0][:160]})", where=str(p)) from None
    n = 0
    try:
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH):
            for rec in batch.to_pylist():
                n += 1
                yield n, rec
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"record {n + 1}: unreadable parquet data ({str(e).splitlines()[0][:160]})",
                         where=str(p)) from None
