"""A PD or colocated deployment's finished requests, as columns.

A request's ``Req`` (sim.replica.request: ~50 slots, its floats and ints as Python objects, ~700 bytes) lives
while the request is in flight. When it finishes, the fields the report, the per-request file and the
saturation check read are copied into one row of these columns (8 bytes a field) and the ``Req`` is
dropped: the run holds ``FIELDS`` x 8 bytes a request instead of every ``Req`` (issue #19: memory that
follows the requests in flight).

Rows are indexed by the request's position in the deployment's workload (arrival order). ``col(name)``
is a column; ``rows[i]`` and iteration give read-only records with the ``Req``'s attribute names, for
callers that read a request at a time.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from sim.replica.request import Req

INT_FIELDS = ("inp", "out", "pre", "dec", "hit_hbm", "hit_low", "n_dram", "cached", "recomputed", "preempted")
FLOAT_FIELDS = ("t_arr", "t_ready", "t_pstart", "t_pend", "t_grant", "t_kv", "t_join", "t_done", "t_flow0",
                "t_full", "xfer_s")
FIELDS = INT_FIELDS + FLOAT_FIELDS


class FinishedRow:
    """One finished request's fields (a view of row `i` of the columns)."""

    __slots__ = ("_cols", "_i")

    def __init__(self, cols: FinishedRequests, i: int) -> None:
        self._cols, self._i = cols, i

    def __getattr__(self, name: str):
        if name == "i":
            return self._i
        try:
            return self._cols.col(name)[self._i].item()
        except KeyError:
            raise AttributeError(f"a finished request keeps no {name!r} (sim.modes.pd.finished.FIELDS)") from None


class FinishedRequests:
    """The finished requests of a deployment of `n` requests: one row each, filled by ``add`` as each finishes."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._cols: dict[str, np.ndarray] = {f: np.zeros(n, dtype=np.int64) for f in INT_FIELDS}
        self._cols.update({f: np.full(n, np.nan) for f in FLOAT_FIELDS})
        self.finished = 0

    def add(self, r: Req) -> None:
        """Request r finished: its fields go into row r.i (the Req may then be dropped)."""
        i = r.i
        for f in FIELDS:
            self._cols[f][i] = getattr(r, f)
        self.finished += 1

    def col(self, name: str) -> np.ndarray:
        """A field of every request (NaN / 0 for a request that has not finished)."""
        return self._cols[name]

    def unfinished(self, k: int = 5) -> list[int]:
        """The first `k` requests that never finished (their t_done is NaN)."""
        return np.flatnonzero(np.isnan(self._cols["t_done"]))[:k].tolist()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> FinishedRow:
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return FinishedRow(self, i % self.n)

    def __iter__(self) -> Iterator[FinishedRow]:
        return (FinishedRow(self, i) for i in range(self.n))


__all__ = ["FIELDS", "FinishedRequests", "FinishedRow"]
