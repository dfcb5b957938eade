"""The learned policy's online mode, streamed: retrained on the past without the whole trace's rows.

What the online mode computes is defined by ``train_on_past`` on the whole feature matrix (the
whole-trace form, kept as the tests' reference in tests/learned/reference_online.py): at each retraining
point ``upto`` (``retrain_points``) the label horizon H is the scaled quantile of the reuse distances
completed before ``upto`` (``horizon_from_past`` there), and the model is fitted on the latest
``max_rows`` accesses p with p + H < upto, labelled "reused within H accesses".

``OnlineStream`` computes the same thing in two passes of ``learned.features.FeatureStream`` (as
``learned train`` does):

1. The schedule and its horizons: the retraining points follow from the request layout alone, and the
   horizon of each from the reuse distances counted until the stream reaches it
   (``learned.labels.GapCounts``). So every training window [upto - H - max_rows, upto - H) is known
   before the replay starts.
2. The replay: chunks of whole requests that never straddle a retraining point are featurised, handed
   to the scorer and dropped, except the rows a training still to come reads: those at or after the
   lowest window start of the remaining schedule (a suffix minimum). Each kept row carries the reuse
   distance of its block's next access, filled in as later chunks pass (``learned.train.reused``), so
   any training labels it with its own horizon: reused within H iff that distance <= H (inf while the
   next access is unseen; a next access at or after ``upto`` is farther than H from a settled row).

Why a first pass rather than a bound taken from the horizon so far: a later horizon can grow without
limit (a trace whose later reuses are all long pushes the quantile up), so a window kept from the
current horizon is not exact in general, and keeping rows "just in case" is the whole trace again. The
first pass knows every horizon, so exactly the rows some training reads are kept: about H + max_rows
plus the accesses since the previous retraining point, never the whole trace. Its cost is featurising
the trace twice (the first time for the reuse distances only); with a fixed horizon
(``TrainParams.horizon``) it is skipped.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from learned.features import N_FEATURES, FeatureStream
from learned.labels import GapCounts, horizon_from_counts
from learned.train import LearnedModel, TrainParams, fit_settled, reused

PASS1_CHUNK = 1 << 18  # accesses per chunk of the first pass (its rows are dropped at once)


def retrain_points(offsets: np.ndarray, every: int, min_accesses: int) -> list[tuple[int, int]]:
    """(position, request) of each retraining: the first access of every `every`-th request (of the next
    request with blocks when it has none), skipped when fewer than `min_accesses` accesses passed since
    the previous one (the first counts from position 0). `offsets`: the requests' block offsets."""
    n_req = len(offsets) - 1
    n = int(offsets[-1]) if len(offsets) else 0

    def pos_of(r: int) -> int:
        return int(offsets[r]) if r < n_req else n

    out: list[tuple[int, int]] = []
    last = 0
    nxt = pos_of(every)
    while nxt < n:
        req = int(np.searchsorted(offsets, nxt, side="right")) - 1  # the request holding access nxt
        if nxt - last >= min_accesses:
            out.append((nxt, req))
            last = nxt
        nxt = pos_of((req // every + 1) * every)
    return out


class _Rows:
    """Feature rows of consecutive positions [lo, lo + n), each with the reuse distance of its block's
    next access (inf until that access is seen)."""

    def __init__(self) -> None:
        self.lo = 0
        self.n = 0
        self.X = np.zeros((0, N_FEATURES), dtype=np.float32)
        self.next_gap = np.zeros(0)

    def nbytes(self) -> int:
        return self.X.nbytes + self.next_gap.nbytes

    def push(self, pos: int, X: np.ndarray, gaps: np.ndarray, keep: int) -> None:
        """Drop the rows below `keep`, hold the chunk's rows (at `pos`, reuse distances `gaps`) from `keep`
        on, and fill in the next-access distances the chunk reveals."""
        k = min(self.n, max(0, keep - self.lo))
        if k:
            self.X[:self.n - k] = self.X[k:self.n]
            self.next_gap[:self.n - k] = self.next_gap[k:self.n]
            self.lo += k
            self.n -= k
        end = pos + len(X)
        a = max(pos, keep)
        if a < end:
            if self.n == 0:
                self.lo = a
            m = end - a
            if self.n + m > len(self.next_gap):
                self._grow(self.n + m)
            self.X[self.n:self.n + m] = X[a - pos:]
            self.next_gap[self.n:self.n + m] = np.inf
            self.n += m
        prev, g = reused(self.lo, self.lo + self.n, pos, gaps)
        self.next_gap[prev - self.lo] = g

    def _grow(self, need: int) -> None:
        cap = max(need, 2 * len(self.next_gap))
        X = np.zeros((cap, N_FEATURES), dtype=np.float32)
        X[:self.n] = self.X[:self.n]
        g = np.zeros(cap)
        g[:self.n] = self.next_gap[:self.n]
        self.X, self.next_gap = X, g

    def window(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, next-access distances) of positions [lo, hi)."""
        if hi <= lo:
            return self.X[:0], self.next_gap[:0]
        if lo < self.lo or hi > self.lo + self.n:  # the schedule kept them: a bug if not
            raise AssertionError(f"learned online: rows {lo}..{hi} not held ({self.lo}..{self.lo + self.n})")
        return self.X[lo - self.lo:hi - self.lo], self.next_gap[lo - self.lo:hi - self.lo]


class OnlineStream:
    """A workload's feature chunks in replay order (``next_chunk``), the model retrained at each
    retraining point before the chunk that starts there (``model``: the latest, None before the first)."""

    def __init__(self, make_stream: Callable[[], FeatureStream], retrain_every: int, retrain_min_accesses: int,
                 params: TrainParams | None = None) -> None:
        """`make_stream`: a fresh stream of the workload, called once for the first pass (with a horizon
        from the trace) and once for the replay, after the first pass's stream is dropped (one tracker
        at a time)."""
        if retrain_every < 1:
            raise ValueError("retrain_every must be >= 1 request")
        self.every = int(retrain_every)
        self.params = params or TrainParams()
        fs = make_stream()
        self.points = retrain_points(fs.offsets, self.every, int(retrain_min_accesses))
        if self.params.horizon:
            self.horizons: list[int | None] = [int(self.params.horizon)] * len(self.points)
        else:
            self.horizons = self._horizons(fs)
            del fs
            fs = make_stream()
        self.fs = fs
        self.keep_from = self._keep_from()
        self.rows = _Rows()
        self.model: LearnedModel | None = None
        self.trainings = 0
        self.train_s = 0.0
        self.log: list[dict] = []  # one entry per (re)training: request, rows, horizon, seconds
        self._k = 0  # the next retraining point

    def _horizons(self, fs: FeatureStream) -> list[int | None]:
        """Each retraining's horizon from the reuse distances completed before it (the first pass)."""
        p = self.params
        counts, out = GapCounts(), []
        for _upto, req in self.points:
            for _ in fs.chunks_until(req, PASS1_CHUNK):
                counts.add(fs.reuse_gaps())
            out.append(horizon_from_counts(counts, quantile=p.horizon_quantile, factor=p.horizon_factor))
        return out

    def _window(self, k: int) -> tuple[int, int]:
        upto, h = self.points[k][0], self.horizons[k]
        if h is None:
            return 0, 0
        hi = max(0, upto - h)
        return max(0, hi - self.params.max_rows), hi

    def _keep_from(self) -> np.ndarray:
        """Per retraining point, the lowest row it or a later one reads (n: none reads a row)."""
        lows = []
        for k in range(len(self.points)):
            lo, hi = self._window(k)
            lows.append(lo if hi > lo else self.fs.n)
        return np.minimum.accumulate(np.array(lows[::-1], dtype=np.int64))[::-1]

    def window_rows(self) -> int:
        """The most rows the replay will hold at once (known from the first pass): before retraining
        point k, the rows from the lowest one a remaining training reads up to the point."""
        if not self.points:
            return 0
        uptos = np.array([u for u, _ in self.points], dtype=np.int64)
        return int(max(0, (uptos - self.keep_from).max()))

    def _retrain(self, k: int) -> None:
        upto, req = self.points[k]
        h = self.horizons[k]
        t0 = time.perf_counter()
        m = None
        if h is not None:
            X, nxt = self.rows.window(*self._window(k))
            m = fit_settled(X, (nxt <= h).astype(np.float32), h, self.params, trained_upto=int(upto))
        dt = time.perf_counter() - t0
        self.train_s += dt
        if m is not None:
            self.model = m
            self.trainings += 1
            self.log.append({"request": int(req), "rows": m.meta["rows"], "horizon": m.horizon, "s": dt})

    def next_chunk(self, min_accesses: int) -> tuple[int, np.ndarray]:
        """(first position, rows) of the next chunk: whole requests, at least `min_accesses` accesses
        unless a retraining point or the end comes first."""
        fs, k = self.fs, self._k
        while k < len(self.points) and fs.pos >= self.points[k][0]:
            self._retrain(k)
            k += 1
        self._k = k
        r_end = self.points[k][1] if k < len(self.points) else fs.n_requests
        pos = fs.pos
        X = fs.take(min(r_end, fs.chunk_end(min_accesses)))
        if k < len(self.points):
            self.rows.push(pos, X, fs.reuse_gaps(), int(self.keep_from[k]))
        elif self.rows.n:
            self.rows = _Rows()  # no training left: nothing to keep
        return pos, X
