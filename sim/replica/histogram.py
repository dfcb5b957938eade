"""Iteration times in fixed memory: a histogram with log-spaced bins.

Bins are ``PER_DECADE`` per factor of ten from ``LO_S`` to ``HI_S`` seconds
(values outside land in the first / last bin), so a quantile is known to
within half a bin: a factor of 10^(1/(2 x PER_DECADE)) (~1.2% at 100 per
decade). The mean is exact (the sum is kept). A coalesced decode stretch,
whose iteration times form an arithmetic progression, is added in closed
form: the iterations falling in each bin it crosses are counted, never one
by one.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

PER_DECADE = 100
LO_S = 1e-6
HI_S = 1e3


class IterationHistogram:
    def __init__(self) -> None:
        self.n_bins = int(round(math.log10(HI_S / LO_S) * PER_DECADE))
        # Counts in a plain list (``counts`` is its array view): the engine adds a stretch per decode
        # wake-up, and a numpy element update costs several times a list's.
        self._c = [0] * self.n_bins
        self.total = 0
        self.sum_s = 0.0
        self._log_lo = math.log10(LO_S)
        self._edges = _edges(self)

    @property
    def counts(self) -> np.ndarray:
        """Iterations per bin (a copy: write it back by assignment, e.g. ``h.counts += other``)."""
        return np.array(self._c, dtype=np.int64)

    @counts.setter
    def counts(self, value: np.ndarray) -> None:
        if len(value) != self.n_bins:
            raise ValueError(f"{len(value)} counts for {self.n_bins} bins")
        self._c = [int(x) for x in value]

    def _bin(self, x: float) -> int:
        if x <= LO_S:
            return 0
        b = int((math.log10(x) - self._log_lo) * PER_DECADE)
        return b if b < self.n_bins else self.n_bins - 1

    def _edge(self, b: int) -> float:
        """Lower edge of bin b."""
        return 10.0 ** (self._log_lo + b / PER_DECADE)

    def add(self, x: float) -> None:
        self._c[self._bin(x)] += 1
        self.total += 1
        self.sum_s += x

    def add_progression(self, first: float, step: float, k: int) -> None:
        """k iterations lasting first, first + step, ..., first + (k-1) x step (step >= 0)."""
        if k <= 0:
            return
        self.total += k
        self.sum_s += k * first + step * k * (k - 1) / 2.0
        c = self._c
        if step <= 0 or k == 1:
            c[self._bin(first)] += k
            return
        last = first + step * (k - 1)
        b, b_last = self._bin(first), self._bin(last)
        j = 0  # iterations counted so far (the first j of the progression)
        edges, ceil = self._edges, math.ceil
        while b < b_last:
            # iterations with first + i x step below the next edge: i < (edge - first) / step
            upto = ceil((edges[b + 1] - first) / step)  # min(k, max(j, ...)) without the calls
            if upto < j:
                upto = j
            if upto > k:
                upto = k
            c[b] += upto - j
            j = upto
            b += 1
        c[b_last] += k - j

    def merge(self, other: IterationHistogram) -> None:
        self._c = [a + b for a, b in zip(self._c, other._c, strict=True)]
        self.total += other.total
        self.sum_s += other.sum_s

    def quantile(self, q: float) -> float:
        """Seconds: the geometric middle of the bin holding the q-quantile (0 when empty)."""
        if self.total == 0:
            return 0.0
        rank = q * (self.total - 1)
        cum = np.cumsum(self.counts)
        b = int(np.searchsorted(cum, rank, side="right"))
        b = min(b, self.n_bins - 1)
        return 10.0 ** (self._log_lo + (b + 0.5) / PER_DECADE)

    def summary_ms(self) -> dict[str, float]:
        """p50 / p90 / p99 / mean in milliseconds."""
        if self.total == 0:
            return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "mean": 0.0}
        return {"p50": self.quantile(0.5) * 1e3, "p90": self.quantile(0.9) * 1e3,
                "p99": self.quantile(0.99) * 1e3, "mean": self.sum_s / self.total * 1e3}


_EDGES: list[float] = []


def _edges(h: IterationHistogram) -> list[float]:
    """Lower edges of the bins and of the bin past the last, as ``_edge`` computes them (one list for
    every histogram: the bins are the module's constants)."""
    if not _EDGES:
        _EDGES.extend(h._edge(b) for b in range(h.n_bins + 1))
    return _EDGES


def merged_summary_ms(hists: Iterable[IterationHistogram]) -> dict[str, float]:
    """``summary_ms`` of several replicas' iterations together (a PD pool, a deployment)."""
    total = IterationHistogram()
    for h in hists:
        total.merge(h)
    return total.summary_ms()


__all__ = ["IterationHistogram", "merged_summary_ms"]
