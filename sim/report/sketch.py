"""A fixed-memory, mergeable quantile sketch with a relative-error guarantee (DDSketch-style).

Masson, Rim and Lee, "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with Relative-Error Guarantees"
(VLDB 2019): a value x > 0 goes to bucket i = ceil(log_gamma(x)), gamma = (1 + a) / (1 - a); every
value in bucket i lies in (gamma^(i-1), gamma^i], and the estimate 2 gamma^i / (gamma + 1) is within
relative error a of each of them. A quantile query finds the bucket holding the wanted order
statistic, so the answer is within a of that order statistic's true value.

Here the buckets form one dense int64 array over a fixed range, ``[MIN_VALUE, MAX_VALUE]`` (1e-6 to
1e12 in the caller's unit, ms for the reports: 1 ns to 31 years), so memory does not depend on the
number of values: 2 x 2,072 buckets (about 33 KB) at a = 1%. Values below MIN_VALUE in magnitude count
as zero (absolute error < MIN_VALUE, also in a quantile interpolated from one of them), values above
MAX_VALUE go to the top bucket (the exact max is kept, and answers are clipped to [min, max]); NaN and
infinities are skipped, as ``dist_ms`` skips them.

``quantile(q)`` follows numpy's default ``percentile`` (linear interpolation between the order
statistics at ranks floor and ceil of q (n - 1)): each of the two is estimated within a relative
error of a, so for values of one sign the interpolated answer is within a of numpy's exact answer.
The extreme ranks (0 and n - 1) use the exact min and max.

Merging is a bucket-wise sum (plus count, sum, min, max), so merge(sketch(A), sketch(B)) has the same
buckets as sketch(A + B) - the order values arrive in does not change the buckets; ``sum`` (hence the
mean) is a float sum and may differ from a one-pass sum in the last bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RELATIVE_ERROR = 0.01  # the reports' sketches: quantiles within 1% of numpy's exact percentile
MIN_VALUE = 1e-6
MAX_VALUE = 1e12


def _n_buckets(alpha: float) -> int:
    gamma = (1.0 + alpha) / (1.0 - alpha)
    return int(math.ceil(math.log(MAX_VALUE / MIN_VALUE) / math.log(gamma))) + 1


@dataclass
class QuantileSketch:
    """Counts of values in log-spaced buckets of relative width 2 a (``alpha``), plus exact count/sum/min/max."""

    alpha: float = RELATIVE_ERROR
    count: int = 0
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    zeros: int = 0
    # bucket counts of the positive and negative values; empty = allocate the full fixed range
    pos: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    neg: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        self._gamma = (1.0 + self.alpha) / (1.0 - self.alpha)
        self._log_gamma = math.log(self._gamma)
        n = _n_buckets(self.alpha)
        if not len(self.pos):
            self.pos = np.zeros(n, dtype=np.int64)
        if not len(self.neg):
            self.neg = np.zeros(n, dtype=np.int64)

    # ------------------------------------------------------------ updates

    def _index(self, mag: np.ndarray) -> np.ndarray:
        # bucket k holds (MIN_VALUE gamma^(k-1), MIN_VALUE gamma^k]; clipped to the fixed range
        k = np.ceil(np.log(mag / MIN_VALUE) / self._log_gamma)
        return np.clip(k, 0, len(self.pos) - 1).astype(np.int64)

    def add(self, values: np.ndarray) -> None:
        """Add a chunk of values (any shape; NaN and +-inf are skipped)."""
        x = np.asarray(values, dtype=float).ravel()
        x = x[np.isfinite(x)]
        if not len(x):
            return
        self.count += int(len(x))
        self.sum += float(x.sum())
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        mag = np.abs(x)
        small = mag < MIN_VALUE
        self.zeros += int(small.sum())
        n = len(self.pos)
        for store, sel in ((self.pos, (x > 0) & ~small), (self.neg, (x < 0) & ~small)):
            if sel.any():
                store += np.bincount(self._index(mag[sel]), minlength=n)

    def merge(self, other: QuantileSketch) -> None:
        """Add `other`'s values to this sketch (bucket-wise sum); both must have the same alpha."""
        if other.alpha != self.alpha:
            raise ValueError(f"cannot merge sketches of relative error {self.alpha} and {other.alpha}")
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.zeros += other.zeros
        self.pos += other.pos
        self.neg += other.neg

    # ------------------------------------------------------------ queries

    def _value(self, k: np.ndarray, sign: float) -> np.ndarray:
        # gamma^k per element through libm's pow (a few ranks are asked): numpy's array power is built per
        # machine (AVX-512 rounds some results differently), and a report must not differ between machines
        g = self._gamma
        pw = np.array([g ** kk for kk in np.asarray(k, dtype=np.int64).ravel().tolist()], dtype=np.float64)
        return sign * MIN_VALUE * 2.0 * pw.reshape(np.shape(k)) / (g + 1.0)

    def order_stat(self, ranks: np.ndarray) -> np.ndarray:
        """Estimates of the values of 0-based order statistics `ranks` (exact min and max at the ends)."""
        r = np.asarray(ranks, dtype=np.int64)
        # sorted buckets from the most negative value to the largest: neg reversed, zeros, pos
        counts = np.concatenate([self.neg[::-1], [self.zeros], self.pos])
        nb = len(self.pos)
        pos_of = np.searchsorted(np.cumsum(counts), r, side="right")  # bucket holding order statistic r
        est = np.where(pos_of < nb, self._value(nb - 1 - pos_of, -1.0), 0.0)
        est = np.where(pos_of > nb, self._value(pos_of - nb - 1, 1.0), est)
        est = np.clip(est, self.min, self.max)
        est = np.where(r <= 0, self.min, est)
        return np.where(r >= self.count - 1, self.max, est)

    def quantiles(self, qs: list[float] | np.ndarray) -> np.ndarray:
        """numpy.percentile(values, 100 q)'s linear interpolation, on the sketch's order statistics."""
        if not self.count:
            return np.full(len(qs), np.nan)
        pos = np.asarray(qs, dtype=float) * (self.count - 1)
        lo = np.floor(pos)
        frac = pos - lo
        a = self.order_stat(lo.astype(np.int64))
        b = self.order_stat(np.minimum(lo + 1, self.count - 1).astype(np.int64))
        return a + (b - a) * frac

    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def buckets_used(self) -> int:
        return int(np.count_nonzero(self.pos) + np.count_nonzero(self.neg) + (self.zeros > 0))

    def nbytes(self) -> int:
        return int(self.pos.nbytes + self.neg.nbytes)

    def same_buckets(self, other: QuantileSketch) -> bool:
        return (self.alpha == other.alpha and self.count == other.count and self.zeros == other.zeros
                and bool(np.array_equal(self.pos, other.pos)) and bool(np.array_equal(self.neg, other.neg)))

    # ------------------------------------------------------------ transport (Ray workers, files)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the non-empty buckets only (index -> count)."""
        def sparse(a: np.ndarray) -> list[list[int]]:
            nz = np.flatnonzero(a)
            return [[int(i), int(a[i])] for i in nz]

        return {"alpha": self.alpha, "count": self.count, "sum": self.sum,
                "min": self.min if self.count else None, "max": self.max if self.count else None,
                "zeros": self.zeros, "pos": sparse(self.pos), "neg": sparse(self.neg)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantileSketch:
        s = cls(alpha=float(d["alpha"]), count=int(d["count"]), sum=float(d["sum"]),
                min=math.inf if d["min"] is None else float(d["min"]),
                max=-math.inf if d["max"] is None else float(d["max"]), zeros=int(d["zeros"]))
        for store, key in ((s.pos, "pos"), (s.neg, "neg")):
            for i, c in d[key]:
                store[int(i)] = int(c)
        return s
