"""Reading trace files row by row: file checks, gzip, the first lines for
sniffing, JSON/CSV value parsing and the JSONL/CSV row drivers.

A format's loader reads its file with :func:`run_jsonl` or :func:`run_csv`;
its row parser turns a row into plain Python values (raising :class:`BadRow`
to reject it) and hands them to a :class:`trace.collector.Collector`, which
validates what all formats share, counts rejections and builds the Workload.
Any input may be gzip-compressed (detected by its magic bytes).

Rejection reasons (the keys of ``LoadStats.rejected``):

``malformed_row``           not valid JSON / not an object / wrong CSV field count
``missing_field``           a required field is absent or empty
``bad_value``               a field has the wrong type or cannot be parsed
``negative_length``         input or output length below zero
``negative_timestamp``      arrival time below zero (relative-time formats)
``timestamp_out_of_order``  arrival earlier than the previous loaded row
``hash_ids_count_mismatch`` len(hash_ids) != ceil(input_length / block_tokens)
``failed_request``          BurstGPT row with 0 response tokens (a failure)
``timestamp_out_of_range``  arrival beyond MAX_ARRIVAL_MS (trace.collector)

A line longer than MAX_LINE_BYTES stops the load with an InputError naming the
file and line (a file without newlines, e.g. /dev/zero or a binary, must not be
read whole into memory); so does a path that is not a regular file.
"""
from __future__ import annotations

import csv
import gzip
import json
import math
import stat
import zlib
from collections.abc import Iterator, Sequence
from functools import cached_property
from io import BufferedReader
from pathlib import Path
from typing import TYPE_CHECKING

from sim.errors import InputError

if TYPE_CHECKING:
    from trace.collector import Collector

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"

REASONS = (
    "malformed_row",
    "missing_field",
    "bad_value",
    "negative_length",
    "negative_timestamp",
    "timestamp_out_of_order",
    "hash_ids_count_mismatch",
    "failed_request",
    "timestamp_out_of_range",
)
# The longest trace line read (a 1M-token Mooncake row's hash_ids take < 1 MB).
MAX_LINE_BYTES = 4 << 20

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)


class BadRow(Exception):
    """Raised by a row parser: the row is rejected with `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------- files


def check_file(path: str | Path) -> Path:
    """The path as a Path, or InputError when it is not a readable file."""
    p = Path(path)
    if "\0" in str(path):
        raise InputError("path contains a NUL byte", where="--trace")
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError("trace file not found", where=str(p)) from None
    except OSError as e:
        raise InputError(f"cannot open trace file: {e.strerror or e}", where=str(p)) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError("is a directory, expected a trace file", where=str(p))
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file (device, FIFO or socket), expected a trace file", where=str(p))
    return p


def bounded_lines(fh, path: Path, max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary stream, each at most max_bytes (else InputError naming file and line)."""
    n = 0
    while True:
        raw = fh.readline(max_bytes + 1)
        if not raw:
            return
        n += 1
        if len(raw) > max_bytes:
            raise InputError(f"line {n}: longer than {max_bytes:,} bytes (the limit of a trace line; "
                             "is this a line-oriented trace?)", where=str(path))
        yield raw


def read_magic(path: Path, n: int = 4) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as e:
        raise InputError(f"cannot read trace file: {e.strerror or e}", where=str(path)) from None


def open_binary(path: Path) -> gzip.GzipFile | BufferedReader:
    """Open a trace for binary line reading; gzip is detected by magic bytes."""
    magic = read_magic(path, 2)
    try:
        if magic == GZIP_MAGIC:
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot open trace file: {e.strerror or e}", where=str(path)) from None


def stream_errors():
    """Exceptions that mean the byte stream itself is broken (bad gzip, I/O)."""
    return (OSError, EOFError, zlib.error)


def head_lines(path: Path, max_lines: int = 20, max_bytes: int = 1 << 20) -> list[str]:
    """The first non-blank lines of a (possibly gzipped) text file, decoded."""
    out: list[str] = []
    read = 0
    try:
        with open_binary(path) as fh:
            for raw in bounded_lines(fh, path):
                read += len(raw)
                line = raw.decode("utf-8", "replace").lstrip("\ufeff").strip()
                if line:
                    out.append(line)
                if len(out) >= max_lines or read >= max_bytes:
                    break
    except stream_errors() as e:
        if not out:
            raise InputError(f"cannot read trace file: {e}", where=str(path)) from None
    return out



class Head:
    """What a format's sniffer looks at: the path, its first bytes and (read on
    first use) its first non-blank lines, as a JSON row or as CSV column names."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.suffix = path.suffix.lower()
        self.magic = read_magic(path, 4)

    @cached_property
    def lines(self) -> list[str]:
        # A zip archive (.npz) has no text lines: its bytes are not decoded.
        return [] if self.magic == ZIP_MAGIC else head_lines(self.path, max_lines=5)

    @cached_property
    def json_row(self) -> dict | None:
        """The first JSON object among the first lines, when the file starts like JSONL."""
        if not self.lines or not self.lines[0].startswith("{"):
            return None
        for line in self.lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
        return None

    @cached_property
    def json_keys(self) -> frozenset[str]:
        return frozenset(self.json_row or ())

    @cached_property
    def csv_columns(self) -> frozenset[str]:
        """Lowercased column names of the first line (empty when the file starts like JSONL)."""
        if not self.lines or self.lines[0].startswith("{"):
            return frozenset()
        return frozenset(c.strip().strip('"').strip().lower() for c in self.lines[0].split(","))

# ------------------------------------------------------------------ value parsing


def as_int(v, field: str) -> int:
    """A JSON value as an int: ints and integral floats; anything else is bad_value."""
    t = type(v)
    if t is int or (t is float and v.is_integer()):
        v = int(v)
        if _INT64_MIN <= v <= _INT64_MAX:
            return v
        raise BadRow("bad_value", f"{field}={v} is out of int64 range")
    if v is None:
        raise BadRow("missing_field", f"{field} is null")
    raise BadRow("bad_value", f"{field}={v!r} is not an integer")


def as_float(v, field: str) -> float:
    """A JSON value as a finite float (bools and strings are bad_value)."""
    t = type(v)
    if t is int or t is float:
        f = float(v)
        if math.isfinite(f):
            return f
    if v is None:
        raise BadRow("missing_field", f"{field} is null")
    raise BadRow("bad_value", f"{field}={v!r} is not a finite number")


def str_int(s: str, field: str) -> int:
    """A CSV cell as an int ("12", " 12 ", "12.0")."""
    s = s.strip()
    if not s:
        raise BadRow("missing_field", f"{field} is empty")
    try:
        v = int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            raise BadRow("bad_value", f"{field}={s!r} is not an integer") from None
        if not f.is_integer():
            raise BadRow("bad_value", f"{field}={s!r} is not an integer") from None
        v = int(f)
    if _INT64_MIN <= v <= _INT64_MAX:
        return v
    raise BadRow("bad_value", f"{field}={s!r} is out of int64 range")


def str_float(s: str, field: str) -> float:
    """A CSV cell as a finite float."""
    s = s.strip()
    if not s:
        raise BadRow("missing_field", f"{field} is empty")
    try:
        f = float(s)
    except ValueError:
        raise BadRow("bad_value", f"{field}={s!r} is not a number") from None
    if not math.isfinite(f):
        raise BadRow("bad_value", f"{field}={s!r} is not finite")
    return f


def first_key(row: dict, names: Sequence[str], field: str):
    """The value of the first of `names` present in `row` (missing_field if none)."""
    for n in names:
        if n in row:
            return row[n]
    raise BadRow("missing_field", f"no {field} field ({' / '.join(names)})")


def check_hash_ids(h, field: str = "hash_ids") -> list:
    """`h` must be a list of int64 integers."""
    if type(h) is not list:
        raise BadRow("bad_value", f"{field} is not a list")
    if h:
        for x in h:
            if type(x) is not int:
                raise BadRow("bad_value", f"{field} holds a non-integer {x!r}")
        if max(h) > _INT64_MAX or min(h) < _INT64_MIN:
            raise BadRow("bad_value", f"{field} value out of int64 range")
    return h


def trace_name(path: Path) -> str:
    """File name without .gz and the format suffix."""
    name = path.name
    if name.endswith(".gz"):
        name = name[:-3]
    stem = Path(name).stem
    return stem or name


# ------------------------------------------------------------------ row drivers


def run_jsonl(path: Path, coll: Collector, parse_row) -> None:
    """Feed each JSON-object line of `path` to ``parse_row(obj, line)``.

    ``parse_row`` raises :class:`BadRow` to reject; blank lines are skipped.
    """
    loads = json.loads
    stats = coll.stats
    line = 0
    try:
        with open_binary(path) as fh:
            for raw in bounded_lines(fh, path):
                line += 1
                if not raw.strip():
                    continue
                stats.rows_read += 1
                try:
                    try:
                        obj = loads(raw)
                    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
                        why = f"{e.msg} at char {e.pos}" if hasattr(e, "msg") and hasattr(e, "pos") else _short(e)
                        raise BadRow("malformed_row", f"invalid JSON ({why})") from None
                    if type(obj) is not dict:
                        raise BadRow("malformed_row", "not a JSON object")
                    parse_row(obj, line)
                except BadRow as b:
                    coll.reject(line, b.reason, b.detail)
                if coll.full:
                    break
    except stream_errors() as e:
        raise InputError(f"line {line + 1}: cannot read file ({_short(e)})", where=str(path)) from None


def _decoded(fh, path: Path) -> Iterator[str]:
    first = True
    for raw in bounded_lines(fh, path):
        s = raw.decode("utf-8", "replace")
        if first:
            s = s.lstrip("\ufeff")
            first = False
        yield s


def open_csv(path: Path, fmt: str, required: dict[str, Sequence[str]], optional: dict[str, Sequence[str]]):
    """Open a CSV trace; returns (file handle, csv reader, column index map).

    `required` / `optional` map a logical field to accepted header spellings
    (compared case-insensitively, surrounding spaces ignored). A missing
    required column is a file-level InputError.
    """
    fh = open_binary(path)
    try:
        reader = csv.reader(_decoded(fh, path))
        header = None
        for row in reader:
            if row and any(c.strip() for c in row):
                header = row
                break
    except stream_errors() as e:
        fh.close()
        raise InputError(f"cannot read file ({_short(e)})", where=str(path)) from None
    except csv.Error as e:
        fh.close()
        raise InputError(f"line {reader.line_num}: unreadable CSV header ({e})", where=str(path)) from None
    if header is None:
        fh.close()
        raise InputError("empty trace file: no header line", where=str(path))
    norm = {c.strip().lower(): i for i, c in enumerate(header)}
    cols: dict[str, int] = {}
    missing = []
    for field, names in required.items():
        idx = next((norm[n.lower()] for n in names if n.lower() in norm), None)
        if idx is None:
            missing.append(names[0])
        else:
            cols[field] = idx
    if missing:
        fh.close()
        raise InputError(
            f"header {','.join(header)!r} lacks the column(s) {', '.join(missing)} of the {fmt} format",
            where=str(path),
        )
    for field, names in optional.items():
        idx = next((norm[n.lower()] for n in names if n.lower() in norm), None)
        if idx is not None:
            cols[field] = idx
    return fh, reader, cols, len(header)


def run_csv(path: Path, coll: Collector, fmt: str, required, optional, parse_row) -> None:
    """Feed each CSV data row to ``parse_row(cells, cols, line)``."""
    fh, reader, cols, width = open_csv(path, fmt, required, optional)
    stats = coll.stats
    line = reader.line_num
    try:
        with fh:
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    line = reader.line_num
                    stats.rows_read += 1
                    coll.reject(line, "malformed_row", f"CSV error ({e})")
                    continue
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                stats.rows_read += 1
                try:
                    if len(row) != width:
                        raise BadRow("malformed_row", f"{len(row)} fields, header has {width}")
                    parse_row(row, cols, line)
                except BadRow as b:
                    coll.reject(line, b.reason, b.detail)
                if coll.full:
                    break
    except stream_errors() as e:
        raise InputError(f"line {line + 1}: cannot read file ({_short(e)})", where=str(path)) from None


def _short(e: Exception, n: int = 80) -> str:
    s = str(e) or type(e).__name__
    return s if len(s) <= n else s[: n - 3] + "..."
