"""A PD or colocated deployment's finished requests, as columns.

A request's ``Req`` (sim.replica.request: ~50 slots, its floats and ints as Python objects, ~700 bytes) lives
while the request is in flight. When it finishes, the fields the report, the per-request file and the
saturation check read are copied into one row of these columns (8 bytes a field) and the ``Req`` is
dropped: the run holds ``FIELDS`` x 8 bytes a request instead of every ``Req`` (issue #19: memory that
follows the requests in flight).

Rows are indexed by the request's position in the deployment's workload (arrival order) and held in blocks
(``sim.modes.result_rows``): the whole deployment in one, or, above ``report.exact_quantiles_max_requests``,
blocks of ``ROW_BLOCK`` requests handed to the report as they complete and dropped. ``col(name)`` is a
column of a run that keeps its rows; ``rows[i]`` and iteration give read-only records with the ``Req``'s
attribute names, for callers that read a request at a time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from sim.modes.result_rows import Column, ResultRows, RowBlock, block_size
from sim.replica.request import Req

INT_FIELDS = ("inp", "out", "pre", "dec", "hit_hbm", "hit_low", "n_dram", "cached", "recomputed", "preempted")
FLOAT_FIELDS = ("t_arr", "t_ready", "t_pstart", "t_pend", "t_grant", "t_kv", "t_join", "t_done", "t_flow0",
                "t_full", "xfer_s")
FIELDS = INT_FIELDS + FLOAT_FIELDS
# the row columns (sim.modes.result_rows): 0 / NaN until the request finishes
PD_COLUMNS = tuple(Column(f) for f in INT_FIELDS) + tuple(Column(f, kind="latency") for f in FLOAT_FIELDS)


class FinishedRow:
    """One finished request's fields (a view of row `i` of the columns)."""

    __slots__ = ("_cols", "_i")

    def __init__(self, cols: FinishedRequests, i: int) -> None:
        self._cols, self._i = cols, i

    def __getattr__(self, name: str):
        if name == "i":
            return self._i
        if name not in FIELDS:
            raise AttributeError(f"a finished request keeps no {name!r} (sim.modes.pd.finished.FIELDS)")
        return self._cols.col(name)[self._i].item()


class FinishedRequests:
    """The finished requests of a deployment of `n` requests: one row each, filled by ``add`` as each finishes,
    in blocks of ``sim.modes.result_rows.ResultRows``. Each block goes to `consume` once it and the blocks before
    it are complete (``sim.report.pd.PDTotals``). `streamed`: blocks of ROW_BLOCK requests, dropped once
    consumed (a run above ``report.exact_quantiles_max_requests``); else one block of all, kept for ``col``."""

    def __init__(self, n: int, consume: Callable[[RowBlock], None] | None = None, streamed: bool = False) -> None:
        self.n, self.streamed = n, streamed
        self.finished = 0
        self._rows = ResultRows(n, True, block_size(n, streamed), consume or (lambda b: None), PD_COLUMNS,
                                keep=not streamed)

    def add(self, r: Req) -> None:
        """Request r finished: its fields go into row r.i (the Req may then be dropped)."""
        i = r.i
        b = self._rows.at(i)
        j = i - b.lo
        for f in FIELDS:
            getattr(b, f)[j] = getattr(r, f)
        self.finished += 1
        self._rows.done(i)

    def close(self) -> None:
        """Every request finished: the last blocks are handed over (ResultRows.close)."""
        self._rows.close()

    def col(self, name: str) -> np.ndarray:
        """A field of every request (NaN / 0 for a request that has not finished); a streamed run keeps none."""
        if self.streamed:
            raise RuntimeError("a deployment that streams its rows keeps no whole column (sim.modes.pd.finished)")
        b = self._rows.whole  # None until the last request finished: then the run's one block, still open
        return getattr(b if b is not None else self._rows.at(0), name)

    def unfinished(self, k: int = 5) -> list[int]:
        """The first `k` requests that never finished."""
        rows, out = self._rows, list[int]()
        for blk in range(rows.next, -(-self.n // rows.size)):
            b = rows.open.get(blk)
            lo = blk * rows.size
            left = range(lo, min(lo + rows.size, self.n)) if b is None else \
                (b.lo + np.flatnonzero(np.isnan(b.t_done))).tolist()
            out.extend(left[:k - len(out)])
            if len(out) >= k:
                break
        return out

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> FinishedRow:
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return FinishedRow(self, i % self.n)

    def __iter__(self) -> Iterator[FinishedRow]:
        return (FinishedRow(self, i) for i in range(self.n))


__all__ = ["FIELDS", "PD_COLUMNS", "FinishedRequests", "FinishedRow"]
