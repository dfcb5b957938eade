"""After a run: was it stable, backlogged or overloaded? From the backlog and TTFT trend over time.

Modelled on BLIS (inference-sim) backlog-drift classification (github.com/inference-sim/inference-sim
issues #1298, #1364, #1390, #1392; PR #1310): three states (unsaturated / transient backlog / persistently
saturated), judged on the *inject phase* only (first to last arrival: after the last arrival the backlog
must drain, which would hide growth, #1390), with the "saturation index" of #1364: the backlog at the end
of the inject phase over its time average, about 1 for a stationary queue and 2 for one that grows
linearly from empty. Here:

* backlog(t) = requests arrived and still without their first token (waiting or in prefill);
  time-averaged per tenth of the inject phase;
* ``backlog_growth_ratio`` = the last tenth's mean backlog / the whole inject phase's;
* ``ttft_trend_ratio`` = median TTFT of the last tenth's arrivals / the first tenth's;
* ``overloaded``: both ratios >= 1.5 and 2 - the queue grew through the run and each arrival waited longer
  than the one before (BLIS: positive backlog slope) - and the final backlog is more requests than the
  workers that prefill (fewer are being served, not waiting: a growth from 1 to 3 on 16 workers is noise);
* ``backlogged``: not overloaded, but the queue dominates TTFT (``queue_share`` >= 0.5 of mean TTFT) or
  one of the two growth signals fired while queueing is a material part of TTFT (>= 0.2);
* ``stable`` otherwise, and always when the queueing adds less than ``WAIT_FLOOR_S`` (1 s): late
  arrivals' median TTFT within 1 s of the early ones' (for the growth signals) and a mean wait under 1 s
  (for the queue share).

The thresholds are ours (BLIS's: |slope| < 0.1 req/s and a backlog ratio in [0.9, 1.1] for
unsaturated, > 1.5 for saturated; its later SI critical values 1 and 2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

WINDOWS = 10
GROWTH_RATIO = 1.5     # backlog_growth_ratio at or above: the backlog grew (linear growth from 0 gives ~1.9)
TTFT_TREND_RATIO = 2.0  # ttft_trend_ratio at or above: late arrivals wait at least twice as long
QUEUE_DOMINATES = 0.5   # queue_share at or above: TTFT is mostly waiting for a GPU
QUEUE_MATERIAL = 0.2
MIN_REQUESTS = 20       # fewer: no trend, only the queue share
# Absolute floor: queueing that adds less than this to TTFT (late arrivals over early ones; the mean wait) is
# not a reason to distrust a KV-cache study's latencies, whatever the ratios say (a 40 -> 110 ms TTFT is x2.7).
WAIT_FLOOR_S = 1.0
LOAD_CLASSES = ("stable", "backlogged", "overloaded")


@dataclass(frozen=True)
class ArrivalSpan:
    """What the inject phase needs of a run's arrivals: the first and last (seconds) and their count. A part of
    a run (a pod) is judged on the whole run's span, so its stream merges into the whole's."""

    first_s: float
    last_s: float
    requests: int

    @classmethod
    def of(cls, arrival_s: np.ndarray) -> ArrivalSpan:
        arr = np.asarray(arrival_s, dtype=float)
        return cls(float(arr.min()), float(arr.max()), len(arr)) if len(arr) else cls(0.0, 0.0, 0)


class SaturationStream:
    """What ``classify`` reads of a run, fed a chunk of requests at a time (``add``, in any chunking and
    order): each window's backlog integral, the first and last tenth's TTFTs, the served TTFTs' sum.
    Memory: the two tenths' TTFTs, not a value per request (a run too large to hold its rows streams them
    here chunk by chunk). ``arrival_s``: every request's arrival (read once, for the inject phase), or the
    whole run's ``ArrivalSpan`` for a stream of part of it (``merge`` then adds the parts)."""

    def __init__(self, arrival_s: np.ndarray | ArrivalSpan) -> None:
        span = arrival_s if isinstance(arrival_s, ArrivalSpan) else ArrivalSpan.of(arrival_s)
        self.span = span
        self.trend = span.requests >= MIN_REQUESTS and span.last_s > span.first_s
        self.t0, self.t1 = span.first_s, span.last_s
        self.edges = np.linspace(self.t0, self.t1, WINDOWS + 1)
        self.wait_s = np.zeros(WINDOWS)  # per window: the seconds requests spent arrived and without a first token
        self.early: list[np.ndarray] = []  # served TTFTs of the first tenth's arrivals
        self.late: list[np.ndarray] = []  # TTFTs of the last tenth's arrivals (inf: never served)
        self.served_sum = 0.0
        self.served = 0

    def add(self, arrival_s: np.ndarray, ttft_s: np.ndarray) -> None:
        arr = np.asarray(arrival_s, dtype=float)
        ttft = np.asarray(ttft_s, dtype=float)
        ok = np.isfinite(ttft)
        fin = ttft[ok]
        self.served_sum += float(fin.sum())
        self.served += len(fin)
        if not self.trend:
            return
        # backlog(t) = #{arrived at or before t, first token after t}: its integral over a window is each
        # request's wait clipped to the window (a request never served waits to the end)
        first = np.where(ok, arr + np.where(ok, ttft, 0.0), np.inf)
        e = self.edges
        for k in range(WINDOWS):
            self.wait_s[k] += float(np.clip(np.minimum(first, e[k + 1]) - np.maximum(arr, e[k]), 0.0, None).sum())
        self.early.append(ttft[(arr <= e[1]) & ok])
        late_mask = arr >= e[-2]
        self.late.append(np.where(ok[late_mask], ttft[late_mask], np.inf))

    def merge(self, other: SaturationStream) -> None:
        """Add the requests `other` was fed (a stream over the same whole run's span)."""
        if other.span != self.span:
            raise ValueError(f"cannot merge saturation streams of different runs ({other.span} into {self.span})")
        self.wait_s += other.wait_s
        self.early.extend(other.early)
        self.late.extend(other.late)
        self.served_sum += other.served_sum
        self.served += other.served

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON-able numbers): what ``from_state`` rebuilds the stream from (a stored pod)."""
        arrays = {"wait_s": self.wait_s, "early": _joined(self.early), "late": _joined(self.late)}
        return arrays, {"span": [self.t0, self.t1, self.span.requests], "served_sum": self.served_sum,
                        "served": self.served}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> SaturationStream:
        t0, t1, n = meta["span"]
        s = cls(ArrivalSpan(float(t0), float(t1), int(n)))
        s.wait_s = np.asarray(arrays["wait_s"], dtype=float).copy()
        s.early, s.late = [np.asarray(arrays["early"], dtype=float)], [np.asarray(arrays["late"], dtype=float)]
        s.served_sum, s.served = float(meta["served_sum"]), int(meta["served"])
        return s

    def result(self, queue_share: float | None, workers: int = 1) -> dict[str, Any]:
        """The ``saturation`` metrics (see the module doc) on ``workers`` replicas that prefill."""
        q = float(queue_share) if queue_share is not None else 0.0
        mean_wait = self.served_sum / self.served * q if self.served else 0.0
        late_minus_early = 0.0
        out: dict[str, Any] = {"load_class": "stable", "backlog_growth_ratio": None, "ttft_trend_ratio": None,
                               "queue_share": queue_share, "backlog_mean_requests": None,
                               "backlog_end_requests": None}
        unserved_late = False
        if self.trend:
            bl = self.wait_s / ((self.t1 - self.t0) / WINDOWS)
            mean_bl = float(bl.mean())
            out["backlog_mean_requests"], out["backlog_end_requests"] = mean_bl, float(bl[-1])
            out["backlog_growth_ratio"] = float(bl[-1] / mean_bl) if mean_bl > 0 else None
            early, late = np.concatenate(self.early), np.concatenate(self.late)
            e50 = float(np.median(early)) if len(early) else None
            l50 = float(np.median(late)) if len(late) else None
            if e50 and l50 is not None and e50 > 0:
                out["ttft_trend_ratio"] = l50 / e50 if np.isfinite(l50) else None
                unserved_late = not np.isfinite(l50)  # most late arrivals never got a first token
                late_minus_early = l50 - e50
        g, tr = out["backlog_growth_ratio"], out["ttft_trend_ratio"]
        grew = g is not None and g >= GROWTH_RATIO and out["backlog_end_requests"] > workers
        slower = (tr is not None and tr >= TTFT_TREND_RATIO and late_minus_early >= WAIT_FLOOR_S) or unserved_late
        if grew and slower:
            out["load_class"] = "overloaded"
        elif mean_wait >= WAIT_FLOOR_S and (q >= QUEUE_DOMINATES or ((grew or slower) and q >= QUEUE_MATERIAL)):
            out["load_class"] = "backlogged"
        return out


def classify(arrival_s: np.ndarray, ttft_s: np.ndarray, queue_share: float | None,
             workers: int = 1) -> dict[str, Any]:
    """The ``saturation`` metrics of one run (see the module doc) on ``workers`` replicas that prefill;
    requests without a first token (rejected, never served) count as still waiting."""
    s = SaturationStream(arrival_s)
    s.add(arrival_s, ttft_s)
    return s.result(queue_share, workers)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


__all__ = ["LOAD_CLASSES", "ArrivalSpan", "SaturationStream", "classify"]
