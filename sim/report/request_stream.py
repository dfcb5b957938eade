"""`--requests-out` written while the simulation runs, for runs too large to hold every row until the end.

``RequestStream`` takes the runners' ``RequestTable``s the way a list does (``append``) but writes
each at once - CSV rows appended, or one Parquet row group per ``ROW_GROUP_ROWS`` rows
(pyarrow ``ParquetWriter``) - so a run's columns can be dropped after its table is written. A table
may be a whole run or a chunk of one (an engine that produces requests in chunks appends one table
per chunk, in order). The content is the batch writer's (``sim.report.requests``): the same CSV bytes,
the same Parquet table read back (only the row-group boundaries differ).

Atomic as every result file: the rows go to a temporary file (``.<name>.<hex>.tmp<suffix>``) beside
the target, or in the nearest existing folder above it; ``finish(dest)`` moves the complete file to
`dest` (the command's ``OutputSet`` temporary, renamed with the report files), ``abort()`` removes
it. Used as a context manager, an exception aborts it: a failed run leaves no file.
"""
from __future__ import annotations

import csv
import os
import secrets
from pathlib import Path
from typing import Any, Protocol

from sim.report.requests import RequestTable, arrow_table, csv_rows

ROW_GROUP_ROWS = 1 << 20  # Parquet rows per row group (pyarrow's default maximum)


class RequestSink(Protocol):
    """Where the runners put each run's per-request table: a list (batch write at the end) or a RequestStream."""

    def append(self, table: RequestTable, /) -> None: ...


def request_rows(sink: Any) -> int:
    """Rows a list of tables or a RequestStream holds."""
    return sink.rows if isinstance(sink, RequestStream) else sum(len(t) for t in sink)


def _temp_beside(path: Path) -> Path:
    folder = path.resolve().parent
    while not folder.exists():  # the target's folder is made later, by the command's OutputSet
        folder = folder.parent
    while True:
        tmp = folder / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


class RequestStream:
    """Per-request rows streamed to a temporary file; ``finish`` moves it into place, ``abort`` removes it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.parquet = self.path.suffix.lower() == ".parquet"
        self.tmp = _temp_beside(self.path)
        self.rows = 0
        self._names: list[str] | None = None
        self._file: Any = None
        self._csv: Any = None
        self._pq: Any = None

    def append(self, table: RequestTable, /) -> None:
        names = table.names()
        if self._names is None:
            self._names = names
            self._open()
        elif names != self._names:  # every run of one command has the same mode and timing
            raise ValueError(f"per-request tables differ in columns: {self._names} vs {names}")
        n = len(table)
        if self.parquet:
            for lo in range(0, n, ROW_GROUP_ROWS):
                self._write_group(arrow_table(table, lo, min(n, lo + ROW_GROUP_ROWS)))
        else:
            for rows in csv_rows(table):
                self._csv.writerows(rows)
        self.rows += n

    def _open(self) -> None:
        if not self.parquet:
            self._file = open(self.tmp, "w", newline="")
            self._csv = csv.writer(self._file)
            self._csv.writerow(self._names)

    def _write_group(self, tab) -> None:
        import pyarrow.parquet as pq

        if self._pq is None:
            self._pq = pq.ParquetWriter(self.tmp, tab.schema)
        self._pq.write_table(tab, row_group_size=ROW_GROUP_ROWS)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._pq is not None:
            self._pq.close()
            self._pq = None

    def finish(self, dest: str | Path) -> None:
        """Close the file and move it to `dest` (same filesystem); nothing appended is a ValueError."""
        if self._names is None:
            raise ValueError("no per-request rows were written")
        self._close()
        os.replace(self.tmp, dest)

    def abort(self) -> None:
        """Close and remove the temporary file (a no-op after finish)."""
        try:
            self._close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> RequestStream:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
