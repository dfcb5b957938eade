"""Shared machinery of the trace loaders: file opening, row validation, the
columnar accumulator, and block-id helpers.

Every loader reads its file row by row, turns a row into plain Python values
and hands them to a :class:`Collector`, which validates what is common to all
formats (lengths, time order, hash-id counts), counts rejections by reason in
:class:`LoadStats` (or raises :class:`InputError` under ``strict``), honours
``limit`` and finally builds the :class:`Workload` arrays in one go.

Rejection reasons (the keys of ``LoadStats.rejected``):

``malformed_row``           not valid JSON / not an object / wrong CSV field count
``missing_field``           a required field is absent or empty
``bad_value``               a field has the wrong type or cannot be parsed
``negative_length``         input or output length below zero
``negative_timestamp``      arrival time below zero (relative-time formats)
``timestamp_out_of_order``  arrival earlier than the previous loaded row
``hash_ids_count_mismatch`` len(hash_ids) != ceil(input_length / block_tokens)
``failed_request``          BurstGPT row with 0 response tokens (a failure)
"""
from __future__ import annotations

import csv
import gzip
import math
import zlib
from array import array
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

import numpy as np

from sim.errors import InputError
from trace.workload import LoadStats, Workload

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
)

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
    if not p.exists():
        raise InputError("trace file not found", where=str(p))
    if p.is_dir():
        raise InputError("is a directory, expected a trace file", where=str(p))
    return p


def read_magic(path: Path, n: int = 4) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as e:
        raise InputError(f"cannot read trace file: {e.strerror or e}", where=str(path)) from None


def open_binary(path: Path) -> IO[bytes]:
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
            for raw in fh:
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
            raise BadRow("bad_value", f"{field}={s!r} is not an integer")
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


# ----------------------------------------------------------------- the collector


class Collector:
    """Accumulates validated rows in typed arrays; builds the Workload."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        *,
        strict: bool = False,
        limit: int | None = None,
        block_tokens: int | None = None,
    ) -> None:
        if limit is not None and (type(limit) is not int or limit < 1):
            raise InputError(f"limit must be a positive integer, got {limit!r}", where=str(path))
        self.path = path
        self.fmt = fmt
        self.strict = strict
        self.limit = limit
        self.block_tokens = block_tokens  # None: no hash ids (synthetic later)
        self.stats = LoadStats(source=str(path))
        # Typed arrays, 8 bytes per value (a list of ints costs ~36).
        self.arrival = array("d")
        self.inp = array("q")
        self.out = array("q")
        self.sess = array("q")
        self.turn = array("q")
        self.counts = array("q")
        self.ids = array("q")
        self.last_ms = -math.inf
        self.full = False

    # -- rejections

    def reject(self, line: int, reason: str, detail: str = "") -> None:
        if len(detail) > 160:
            detail = detail[:157] + "..."
        if self.strict:
            msg = f"line {line}: {reason}" + (f": {detail}" if detail else "")
            raise InputError(msg, where=str(self.path))
        self.stats.reject(line, reason, detail)

    # -- rows

    def add(
        self,
        line: int,
        arrival_ms: float,
        inp: int,
        out: int,
        session: int = -1,
        turn: int = -1,
        hashes: list | None = None,
        block_tokens: int | None = None,
    ) -> bool:
        """Validate and keep one request; False (and counted) when rejected."""
        if inp < 0 or out < 0:
            which = "input" if inp < 0 else "output"
            self.reject(line, "negative_length", f"{which} length {inp if inp < 0 else out}")
            return False
        if arrival_ms < 0:
            self.reject(line, "negative_timestamp", f"arrival {arrival_ms:g} ms")
            return False
        if arrival_ms < self.last_ms:
            self.reject(
                line, "timestamp_out_of_order",
                f"arrival {arrival_ms:g} ms is before the previous row's {self.last_ms:g} ms",
            )
            return False
        if hashes is not None:
            bt = block_tokens or self.block_tokens
            want = -(-inp // bt)
            if len(hashes) != want:
                self.reject(
                    line, "hash_ids_count_mismatch",
                    f"{len(hashes)} hash_ids for input_length {inp} (expected {want} at {bt} tokens/block)",
                )
                return False
            self.counts.append(len(hashes))
            self.ids.extend(hashes)
        self.last_ms = arrival_ms
        self.arrival.append(arrival_ms)
        self.inp.append(inp)
        self.out.append(out)
        self.sess.append(session)
        self.turn.append(turn)
        self.stats.loaded += 1
        if self.limit is not None and self.stats.loaded >= self.limit:
            self.full = True
        return True

    # -- the result

    def build(self, name: str, *, synthetic_block_tokens: int | None = None,
              synthetic_flag: bool = False) -> tuple[Workload, LoadStats]:
        """The Workload arrays. Hash ids are checked for prefix identity;
        without hash ids (synthetic_block_tokens given) ids are synthesized."""
        st = self.stats
        if st.rows_read == 0:
            raise InputError("empty trace file: no data rows", where=str(self.path))
        if st.loaded == 0:
            err = InputError(
                f"no valid requests: all {st.rows_read} rows rejected ({_reasons(st)})"
                + (f"; first: line {st.examples[0][0]}: {st.examples[0][1]}" if st.examples else "")
                + (f"; is this a {self.fmt} trace?" if set(st.rejected) == {"malformed_row"} else ""),
                where=str(self.path),
            )
            err.load_stats = st  # type: ignore[attr-defined]
            raise err
        n = st.loaded
        arrival = _np(self.arrival, np.float64)
        inp = _np(self.inp, np.int64)
        out = _np(self.out, np.int64)
        sess = _np(self.sess, np.int64)
        turn = _np(self.turn, np.int64)
        if synthetic_block_tokens is not None:
            offsets, ids = synthetic_block_ids(inp, sess, synthetic_block_tokens)
            bt = synthetic_block_tokens
            synthetic = True
            if (sess >= 0).any():
                st.notes.append(
                    f"block ids are synthetic ({bt}-token blocks made from token counts): the turns of a "
                    "session share their full blocks up to the shorter prompt; a partial last block and "
                    "every request without a session get ids of their own"
                )
            else:
                st.notes.append(
                    f"block ids are synthetic ({bt}-token blocks made from token counts): the trace has no "
                    "session ids, so every request gets unique blocks (no prefix sharing is invented)"
                )
        else:
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(_np(self.counts, np.int64), out=offsets[1:])
            ids = _np(self.ids, np.int64)
            bt = self.block_tokens
            synthetic = synthetic_flag
            ids, n_conflicts = ensure_prefix_ids(offsets, ids)
            if n_conflicts:
                st.notes.append(
                    f"hash_ids are not prefix-identifying ({n_conflicts} ids follow different prefixes); "
                    "re-keyed every block by its whole prefix"
                )
        if self.full and self.limit is not None:
            st.notes.append(f"stopped after the first {self.limit} loaded requests (limit)")
        w = Workload(
            name=name,
            arrival_ms=arrival,
            input_tokens=inp,
            output_tokens=out,
            session_id=sess,
            block_offsets=offsets,
            block_ids=ids,
            block_tokens=int(bt),
            turn=turn,
            synthetic_blocks=synthetic,
        )
        return w, st


def _np(a, dtype) -> np.ndarray:
    """A numpy view of a typed array (no copy), or a new array from a list."""
    if isinstance(a, array):
        return np.frombuffer(a, dtype=dtype)
    return np.array(a, dtype=dtype)


def _reasons(st: LoadStats) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(st.rejected.items(), key=lambda kv: -kv[1]))


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
    import json

    loads = json.loads
    stats = coll.stats
    line = 0
    try:
        with open_binary(path) as fh:
            for raw in fh:
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


def _decoded(fh: Iterable[bytes]) -> Iterator[str]:
    first = True
    for raw in fh:
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
        reader = csv.reader(_decoded(fh))
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


# ------------------------------------------------------------------ block ids


def synthetic_block_ids(
    input_tokens: np.ndarray, session_id: np.ndarray, block_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic, prefix-identifying block ids for token-count-only traces.

    Request i gets ceil(input_i / block_tokens) blocks. In a session (id >= 0)
    full block k has the id (session, k), so two turns of one session share
    exactly their common full blocks, i.e. up to the shorter prompt. A partial
    last block, and every block of a request without a session, get fresh ids:
    no prefix sharing the trace does not hold is invented. Ids are a dense
    counter (session ranges first, in session-id order, then fresh ids in
    request order), so they never collide.
    """
    inp = np.asarray(input_tokens, dtype=np.int64)
    sess = np.asarray(session_id, dtype=np.int64)
    n = len(inp)
    bt = int(block_tokens)
    full = inp // bt
    nblk = full + (inp % bt > 0)
    has_s = sess >= 0
    shared = np.where(has_s, full, 0)
    req_base = np.zeros(n, dtype=np.int64)
    next_id = 0
    if has_s.any():
        uniq, inv = np.unique(sess[has_s], return_inverse=True)
        maxfull = np.zeros(len(uniq), dtype=np.int64)
        np.maximum.at(maxfull, inv, full[has_s])
        base = np.zeros(len(uniq), dtype=np.int64)
        np.cumsum(maxfull[:-1], out=base[1:])
        req_base[has_s] = base[inv]
        next_id = int(maxfull.sum())
    fresh = nblk - shared
    fresh_start = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(fresh[:-1], out=fresh_start[1:])
    fresh_start += next_id
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nblk, out=offsets[1:])
    total = int(offsets[-1])
    rel = np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1], nblk)
    rep_shared = np.repeat(shared, nblk)
    ids = np.where(
        rel < rep_shared,
        np.repeat(req_base, nblk) + rel,
        np.repeat(fresh_start, nblk) + (rel - rep_shared),
    )
    return offsets, ids.astype(np.int64, copy=False)


def ensure_prefix_ids(offsets: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Make block ids prefix-identifying; return (ids, number of conflicting ids).

    An id is prefix-identifying when every occurrence follows the same parent
    id (the previous block of its request, or nothing for block 0). This is
    checked with one sort; only if some id violates it are all blocks re-keyed
    by (new parent id, old id), with new ids from a counter in first-seen order.
    """
    if len(ids) == 0:
        return ids, 0
    counts = np.diff(offsets)
    parent = np.empty_like(ids)
    parent[1:] = ids[:-1]
    starts = offsets[:-1][counts > 0]
    # A sentinel no real id can equal: a first block has "no parent".
    parent_valid = np.ones(len(ids), dtype=bool)
    parent_valid[starts] = False
    parent[starts] = 0
    order = np.lexsort((parent, parent_valid, ids))
    si, sv, sp = ids[order], parent_valid[order], parent[order]
    same = si[1:] == si[:-1]
    diff = (sv[1:] != sv[:-1]) | (sp[1:] != sp[:-1])
    bad = same & diff
    n_bad = int(len(np.unique(si[1:][bad]))) if bad.any() else 0
    if not n_bad:
        return ids, 0
    new = np.empty(len(ids), dtype=np.int64)
    table: dict[tuple[int, int], int] = {}
    flat = ids.tolist()
    offs = offsets.tolist()
    for i in range(len(offs) - 1):
        prev = -1
        for j in range(offs[i], offs[i + 1]):
            key = (prev, flat[j])
            nid = table.get(key)
            if nid is None:
                nid = len(table)
                table[key] = nid
            new[j] = nid
            prev = nid
    return new, n_bad
