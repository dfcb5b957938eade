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


def _window_backlog(arr: np.ndarray, first: np.ndarray, t0: float, t1: float, k: int) -> np.ndarray:
    """Time-averaged backlog (arrived, no first token yet) in each of k equal windows of [t0, t1]."""
    times = np.concatenate([arr, first])
    steps = np.concatenate([np.ones(len(arr)), -np.ones(len(first))])
    order = np.argsort(times, kind="stable")
    times, level = times[order], np.cumsum(steps[order])
    edges = np.linspace(t0, t1, k + 1)
    out = np.zeros(k)
    for i in range(k):
        a, b = edges[i], edges[i + 1]
        # piecewise-constant level: value after each event holds until the next one
        pts = np.concatenate([[a], times[(times > a) & (times < b)], [b]])
        idx = np.searchsorted(times, pts[:-1], side="right") - 1
        vals = np.where(idx >= 0, level[np.maximum(idx, 0)], 0.0)
        out[i] = float(np.sum(vals * np.diff(pts)) / (b - a)) if b > a else 0.0
    return out


def classify(arrival_s: np.ndarray, ttft_s: np.ndarray, queue_share: float | None,
             workers: int = 1) -> dict[str, Any]:
    """The ``saturation`` metrics of one run (see the module doc) on ``workers`` replicas that prefill;
    requests without a first token (rejected, never served) count as still waiting."""
    arr = np.asarray(arrival_s, dtype=float)
    ttft = np.asarray(ttft_s, dtype=float)
    q = float(queue_share) if queue_share is not None else 0.0
    fin = ttft[np.isfinite(ttft)]
    mean_wait = float(fin.mean()) * q if len(fin) else 0.0
    late_minus_early = 0.0
    out: dict[str, Any] = {"load_class": "stable", "backlog_growth_ratio": None, "ttft_trend_ratio": None,
                           "queue_share": queue_share, "backlog_mean_requests": None,
                           "backlog_end_requests": None}
    ok = np.isfinite(ttft)
    n = len(arr)
    unserved_late = False
    if n >= MIN_REQUESTS and arr[-1] > arr[0]:
        t0, t1 = float(arr.min()), float(arr.max())
        bl = _window_backlog(arr, arr[ok] + ttft[ok], t0, t1, WINDOWS)
        mean_bl = float(bl.mean())
        out["backlog_mean_requests"], out["backlog_end_requests"] = mean_bl, float(bl[-1])
        out["backlog_growth_ratio"] = float(bl[-1] / mean_bl) if mean_bl > 0 else None
        edges = np.linspace(t0, t1, WINDOWS + 1)
        early = ttft[(arr <= edges[1]) & ok]
        late_mask = arr >= edges[-2]
        late = np.where(ok[late_mask], ttft[late_mask], np.inf)  # unserved late arrivals: waited forever
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


__all__ = ["LOAD_CLASSES", "classify"]
