"""Training labels: was a block reused within a horizon of its access?

The label of access ``pos`` is ``next_use[pos] - pos <= horizon``: the
block's next access (``AccessContext.next_use``, the same index Belady
reads) comes within ``horizon`` block accesses. It reads the future of the
access, so labels exist only for training, never at inference.

What "only the past" means for training at position ``upto`` (every access
before ``upto`` has happened, none after): the label of ``pos`` is settled by
then iff ``pos + horizon < upto`` - the window has closed, and ``next_use``
is compared with a bound below ``upto``, so no access at or after ``upto`` is
looked at. Accesses whose window is still open are left out (keeping only
those already reused would bias the labels towards reuse).

The horizon itself comes from reuse distances observed before ``upto``
(``horizon_from_counts``): a high quantile of them, scaled, so the label asks
"reused within the span where most reuse of this trace happens".

The trainers label from the reuse distances the feature stream yields
(``learned.train.reused``), never from a per-access array; the whole-trace
definitions on ``AccessContext.next_use`` (``reuse_labels``,
``horizon_from_past``) are the tests' reference
(tests/learned/reference_online.py).
"""
from __future__ import annotations

import numpy as np

MIN_HORIZON = 16  # block accesses; below this the label says little about caching


class GapCounts:
    """Reuse distances observed so far as (distinct value, count): what ``horizon_from_past`` (the tests'
    reference) takes a quantile of, held per distinct distance instead of per reuse (the trainers stream)."""

    def __init__(self) -> None:
        self.values = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def add(self, gaps: np.ndarray) -> None:
        """Distances of reuses (NaN: a first access, skipped); merged in batches of about a million."""
        gaps = gaps[~np.isnan(gaps)] if gaps.dtype.kind == "f" else gaps
        if len(gaps):
            self._pending.append(np.asarray(gaps, dtype=np.int64))
            self._pending_n += len(gaps)
            if self._pending_n >= 1 << 20:
                self._merge()

    def merge(self, other: GapCounts) -> None:
        """Add every distance `other` holds."""
        other._merge()
        self._merge()
        self._merge(other.values, other.counts)

    def _merge(self, v: np.ndarray | None = None, c: np.ndarray | None = None) -> None:
        if v is None:
            if not self._pending:
                return
            v, c = np.unique(np.concatenate(self._pending), return_counts=True)
        assert c is not None
        allv = np.concatenate((self.values, v))
        allc = np.concatenate((self.counts, c))
        self.values, inv = np.unique(allv, return_inverse=True)
        self.counts = np.bincount(inv, weights=allc, minlength=len(self.values)).astype(np.int64)
        self._pending, self._pending_n = [], 0

    def __len__(self) -> int:
        self._merge()
        return int(self.counts.sum())

    def quantile(self, q: float) -> float:
        """``np.quantile(all distances, q)`` (its default 'linear' method) from the counts: the two order
        statistics around ``(n - 1) q`` interpolated by numpy's own formula, so the value is the same float."""
        self._merge()
        n = int(self.counts.sum())
        if n == 0:
            raise ValueError("no reuse distance observed")
        vi = (n - 1) * np.float64(q)
        prev = np.floor(vi)
        cum = np.cumsum(self.counts)
        if vi >= n - 1:
            a = b = self.values[-1]
        else:
            k = int(prev)
            a = self.values[np.searchsorted(cum, k + 1)]  # the value of rank k (0-based)
            b = self.values[np.searchsorted(cum, k + 2)]
        gamma = vi - prev
        diff = b - a
        return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)


def horizon_from_counts(counts: GapCounts, *, quantile: float = 0.9, factor: float = 1.5) -> int | None:
    """``horizon_from_past`` from distances held as counts (None when none observed)."""
    if not 0.0 < quantile <= 1.0 or factor <= 0:
        raise ValueError("quantile must be in (0, 1] and factor > 0")
    if len(counts) == 0:
        return None
    return max(MIN_HORIZON, int(round(factor * counts.quantile(quantile))))
