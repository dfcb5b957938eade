"""`run --compare-measured`: simulated TTFT/TPOT set against what the benchmark measured, per request.

The workload carries the measured latencies as ``Workload.extra`` columns (a trace converted with
``trace convert --from vllm-bench``); the predictions are the per-request tables every runner fills
(sim.report.requests, one per run: policy, router or deployment), row i = request i of the workload.
Each run gets, for TTFT and for TPOT, over the requests that have both a prediction and a measurement
(measured > 0; TPOT needs two output tokens): the predicted and the measured mean/p50/p90/p99 in ms and
the error distribution - the median and p90 of |pred - meas| / meas (``rel_error_p50_share``,
``rel_error_p90_share``), the mean signed difference (``bias_ms``, > 0: the simulation is slower) and
the median signed relative difference (``bias_share``). Keys: docs/REPORT_SCHEMA.md, "measured".
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sim.errors import InputError
from sim.report.requests import RequestTable
from trace.workload import Workload

# report key -> (predicted column of the request table, measured column of the workload)
METRICS = {"ttft": ("ttft_ms", "measured_ttft_ms"), "tpot": ("tpot_ms", "measured_tpot_ms")}


def check_measured(workload: Workload, where: str = "--compare-measured") -> None:
    """InputError unless the workload has the measured TTFT and TPOT columns."""
    missing = [m for _, m in METRICS.values() if m not in workload.extra]
    if missing:
        raise InputError(f"the workload has no {', '.join(missing)} column(s): use a trace converted from a "
                         "benchmark (python main.py trace convert --from vllm-bench ...)", where=where)


def _dist(x: np.ndarray) -> dict[str, float | None]:
    if not len(x):
        return {"mean": None, "p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def compare(predicted_ms: np.ndarray, measured_ms: np.ndarray) -> dict[str, Any]:
    """Predicted vs measured over the requests that have both (measured > 0)."""
    pred = np.asarray(predicted_ms, dtype=float)
    meas = np.asarray(measured_ms, dtype=float)
    ok = np.isfinite(pred) & np.isfinite(meas) & (meas > 0)
    p, m = pred[ok], meas[ok]
    out: dict[str, Any] = {"requests": int(ok.sum()), "predicted_ms": _dist(p), "measured_ms": _dist(m)}
    if len(p):
        rel = (p - m) / m
        p50, p90 = np.percentile(np.abs(rel), [50, 90])
        out.update(rel_error_p50_share=float(p50), rel_error_p90_share=float(p90),
                   bias_ms=float(np.mean(p - m)), bias_share=float(np.median(rel)))
    else:
        out.update(rel_error_p50_share=None, rel_error_p90_share=None, bias_ms=None, bias_share=None)
    return out


def _checked(t: RequestTable, workload: Workload) -> None:
    if len(t) != len(workload) or "ttft_ms" not in t.columns:
        raise ValueError(f"request table of {t.labels} has {len(t)} rows (workload {len(workload)}) "
                         f"or no times: cannot pair it with the measured latencies")


def measured_block(tables: list[RequestTable], workload: Workload) -> dict[str, Any]:
    """The report's ``measured`` block: one entry per run (its labels, then ttft and tpot)."""
    runs = []
    for t in tables:
        _checked(t, workload)
        run: dict[str, Any] = dict(t.labels)
        for key, (pred_col, meas_col) in METRICS.items():
            run[key] = compare(t.columns[pred_col], workload.extra[meas_col])
        runs.append(run)
    measured = workload.extra["measured_ttft_ms"]
    return {"requests": int(np.isfinite(measured).sum()), "runs": runs}


def add_measured_columns(tables: list[RequestTable], workload: Workload) -> None:
    """The per-request file gains measured_ttft_ms and measured_tpot_ms beside ttft_ms and tpot_ms."""
    for t in tables:
        _checked(t, workload)
        for _, meas_col in METRICS.values():
            t.columns[meas_col] = workload.extra[meas_col]


def measured_rows(report: dict) -> list[list[str]]:
    """Table rows: run, metric, predicted / measured p50, p90, p99 (ms), |error| p50 and p90, bias."""
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}"

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    rows = []
    for run in report["measured"]["runs"]:
        label = " / ".join(str(v) for k, v in run.items() if k not in METRICS)
        for key in METRICS:
            c = run[key]
            p, m = c["predicted_ms"], c["measured_ms"]
            rows.append([label, key.upper(), *(f"{f(p[q])} / {f(m[q])}" for q in ("p50", "p90", "p99")),
                         pct(c["rel_error_p50_share"]), pct(c["rel_error_p90_share"]), pct(c["bias_share"])])
    return rows
