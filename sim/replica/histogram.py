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
        self.counts = np.zeros(self.n_bins, dtype=np.int64)
        self.total = 0
        self.sum_s = 0.0
        self._log_lo = math.log10(LO_S)

    def _bin(self, x: float) -> int:
        if x <= LO_S:
            return 0
        b = int((math.log10(x) - self._log_lo) * PER_DECADE)
        return b if b < self.n_bins else self.n_bins - 1

    def _edge(self, b: int) -> float:
        """Lower edge of bin b."""
        return 10.0 ** (self._log_lo + b / PER_DECADE)

    def add(self, x: float) -> None:
        self.counts[self._bin(x)] += 1
        self.total += 1
        self.sum_s += x

    def add_progression(self, first: float, step: float, k: int) -> None:
        """k iterations lasting first, first + step, ..., first + (k-1) x step (step >= 0)."""
        if k <= 0:
            return
        self.total += k
        self.sum_s += k * first + step * k * (k - 1) / 2.0
        if step <= 0 or k == 1:
            self.counts[self._bin(first)] += k
            return
        last = first + step * (k - 1)
        b, b_last = self._bin(first), self._bin(last)
        j = 0  # iterations counted so far (the first j of the progression)
        while b < b_last:
            # iterations with first + i x step below the next edge: i < (edge - first) / step
            upto = min(k, max(j, math.ceil((self._edge(b + 1) - first) / step)))
            self.counts[b] += upto - j
            j = upto
            b += 1
        self.counts[b_last] += k - j

    def merge(self, other: IterationHistogram) -> None:
        self.counts += other.counts
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


def merged_summary_ms(hists: Iterable[IterationHistogram]) -> dict[str, float]:
    """``summary_ms`` of several replicas' iterations together (a PD pool, a deployment)."""
    total = IterationHistogram()
    for h in hists:
        total.merge(h)
    return total.summary_ms()


__all__ = ["IterationHistogram", "merged_summary_ms"]
