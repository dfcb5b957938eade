"""The seam between the simulators' per-request values and the report's distributions.

A ``MetricsSink`` receives per-request values in chunks - ``add({"ttft": seconds, "tpot": ..., ...})``,
one array per metric, all arrays of a chunk describing the same requests - and answers the report's
questions: ``dist_ms(name)`` (mean/p50/p90/p99 in ms of the finite values, as ``schema.dist_ms``) and
``served_mean(name)`` (the mean over the requests whose ``ttft`` is finite, for the TTFT breakdown).

* ``ExactSink`` keeps the arrays: the report is today's, to the last bit (``quantiles: "exact"``).
* ``SketchSink`` keeps one ``QuantileSketch`` per metric and running sums: fixed memory whatever
  the number of requests; quantiles within ``RELATIVE_ERROR`` (1%) of the exact ones, means exact up
  to float summation order, marked ``quantiles: "sketch (relative error <= 1%)"``.

``metrics_sink(n_requests, cfg)`` picks one: exact up to ``report.exact_quantiles_max_requests``
requests (default 2,000,000), sketched above. Today the engines hand over whole arrays at the end of a
run and the report modules feed them in one ``add``; an engine that produces requests in chunks (the
streamed workload) can call ``add`` once per chunk instead, in any chunking: an exact sink concatenates
them, a sketch sink's buckets do not depend on the chunking. Sinks of the same kind merge (``merge``):
pods simulated on separate workers give the whole run's distributions (sketches bucket-wise summed;
exact sinks concatenated in the order merged). ``to_dict``/``from_dict`` carry a sketch sink across
processes.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np

from sim.report.schema import dist_ms
from sim.report.sketch import RELATIVE_ERROR, QuantileSketch

EXACT = "exact"
SKETCH = f"sketch (relative error <= {RELATIVE_ERROR:.0%})"
SERVED_BY = "ttft"  # a request is served when its TTFT is finite; the breakdown's means are over those
# TTFT parts spent waiting for a GPU (the rest is service: loading, computing, transferring)
WAITING_PARTS = ("queue", "decode_wait")


class MetricsSink(Protocol):
    quantiles: str  # EXACT or SKETCH, written into the report's metrics

    def add(self, chunk: Mapping[str, np.ndarray]) -> None:
        """Per-request values in seconds (NaN = the request has none), one array per metric name."""

    def dist_ms(self, name: str) -> dict[str, float | None]:
        """mean/p50/p90/p99 in ms of the metric's finite values (None each when there are none)."""

    def served_mean(self, name: str) -> float | None:
        """Mean (seconds) of the metric over the requests whose TTFT is finite; None when there are none."""

    def merge(self, other: Any) -> None:
        """Add another sink's requests (same kind) to this one."""


class ExactSink:
    """Every value kept; the report's numbers are numpy's on the whole arrays (today's reports)."""

    quantiles = EXACT

    def __init__(self) -> None:
        self._chunks: dict[str, list[np.ndarray]] = {}

    def add(self, chunk: Mapping[str, np.ndarray]) -> None:
        for k, v in chunk.items():
            self._chunks.setdefault(k, []).append(np.asarray(v, dtype=float))

    def values(self, name: str) -> np.ndarray:
        parts = self._chunks.get(name, [])
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.array([])

    def dist_ms(self, name: str) -> dict[str, float | None]:
        return dist_ms(self.values(name))

    def served_mean(self, name: str) -> float | None:
        ok = np.isfinite(self.values(SERVED_BY))
        return float(np.mean(self.values(name)[ok])) if ok.any() else None

    def merge(self, other: ExactSink) -> None:
        for k, parts in other._chunks.items():
            self._chunks.setdefault(k, []).extend(parts)


class SketchSink:
    """One QuantileSketch (of ms values) per metric, and each metric's sum over the served requests."""

    quantiles = SKETCH

    def __init__(self, alpha: float = RELATIVE_ERROR) -> None:
        self.alpha = alpha
        self.sketches: dict[str, QuantileSketch] = {}
        self.served: dict[str, list[float]] = {}  # name -> [sum of seconds, count] over served requests

    def add(self, chunk: Mapping[str, np.ndarray]) -> None:
        ok = np.isfinite(np.asarray(chunk[SERVED_BY], dtype=float)) if SERVED_BY in chunk else None
        for k, v in chunk.items():
            x = np.asarray(v, dtype=float)
            # x * 1000.0 before sketching, as dist_ms converts, so min/max equal the exact report's
            self.sketches.setdefault(k, QuantileSketch(self.alpha)).add(x * 1000.0)
            if ok is not None:
                acc = self.served.setdefault(k, [0.0, 0])
                acc[0] += float(x[ok].sum())
                acc[1] += int(ok.sum())

    def dist_ms(self, name: str) -> dict[str, float | None]:
        sk = self.sketches.get(name)
        if sk is None or not sk.count:
            return {"mean": None, "p50": None, "p90": None, "p99": None}
        p50, p90, p99 = sk.quantiles([0.5, 0.9, 0.99])
        return {"mean": sk.mean(), "p50": float(p50), "p90": float(p90), "p99": float(p99)}

    def served_mean(self, name: str) -> float | None:
        s, n = self.served.get(name, (0.0, 0))
        return s / n if n else None

    def merge(self, other: SketchSink | ExactSink) -> None:
        """Add another sink's requests; an ExactSink's values are sketched (its metrics of equal length)."""
        if isinstance(other, ExactSink):
            self.add({k: other.values(k) for k in other._chunks})
            return
        for k, sk in other.sketches.items():
            self.sketches.setdefault(k, QuantileSketch(self.alpha)).merge(sk)
        for k, (s, n) in other.served.items():
            acc = self.served.setdefault(k, [0.0, 0])
            acc[0] += s
            acc[1] += n

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "sketches": {k: v.to_dict() for k, v in self.sketches.items()},
                "served": {k: list(v) for k, v in self.served.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SketchSink:
        s = cls(float(d["alpha"]))
        s.sketches = {k: QuantileSketch.from_dict(v) for k, v in d["sketches"].items()}
        s.served = {k: [float(v[0]), int(v[1])] for k, v in d["served"].items()}
        return s


def metrics_sink(n_requests: int, cfg) -> ExactSink | SketchSink:
    """Exact up to ``cfg.report.exact_quantiles_max_requests`` requests, a sketch sink above. A run split
    into pods passes the whole run's request count, so every pod's sink is of the kind the whole needs
    (a SketchSink also merges an ExactSink)."""
    return ExactSink() if n_requests <= cfg.report.exact_quantiles_max_requests else SketchSink()


def ttft_breakdown(sink: MetricsSink, parts: Iterable[str]) -> dict[str, Any]:
    """The additive parts of TTFT (metrics of `sink` summing to its ``ttft``) as dists in ms, each part's
    share of the mean TTFT, and the two shares every mode reports alike: ``queue_share`` (waiting for a
    GPU: the ``WAITING_PARTS``) and ``service_share`` (the rest)."""
    names = list(parts)
    mean_ttft = sink.served_mean(SERVED_BY) or 0.0
    out: dict[str, Any] = {k: sink.dist_ms(k) for k in names}
    share = {k: ((sink.served_mean(k) or 0.0) / mean_ttft if mean_ttft > 0 else 0.0) for k in names}
    out["mean_share"] = share
    queue = sum(v for k, v in share.items() if k in WAITING_PARTS)
    out["queue_share"] = queue if mean_ttft > 0 else None
    out["service_share"] = 1.0 - queue if mean_ttft > 0 else None
    return out


def latency_metrics(sink: MetricsSink, parts: Iterable[str], *, part_keys: bool = True) -> dict[str, Any]:
    """The report's latency block from a filled sink: ttft_ms, tpot_ms, e2e_ms, (``part_keys``) one
    ``<part>_ms`` per TTFT part, ttft_breakdown_ms and ``quantiles`` (how the percentiles were computed)."""
    names = list(parts)
    out: dict[str, Any] = {k: sink.dist_ms(k[:-3]) for k in ("ttft_ms", "tpot_ms", "e2e_ms")}
    if part_keys:
        out.update({f"{k}_ms": sink.dist_ms(k) for k in names})
    out["ttft_breakdown_ms"] = ttft_breakdown(sink, names)
    out["quantiles"] = sink.quantiles
    return out
