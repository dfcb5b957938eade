"""The report schema every mode shares: envelope, distributions, workload summary, JSON writer.

Per-request values reach the report through a ``sim.report.sink.MetricsSink`` (exact arrays, or
quantile sketches above ``report.exact_quantiles_max_requests`` requests). Per-mode metrics:
``sim.report.single``, ``sim.report.cluster``, ``sim.report.pd``; flat rows and the CSV writer:
``sim.report.rows``; PNGs: ``sim.report.plots``, ``sim.report.pd_plots``.

docs/REPORT_SCHEMA.md lists every key; those it marks stable are relied on by tools and tests. Extra
keys may be added, never renamed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sim.config import Config
from trace.workload import Workload

REPORT_VERSION = 1


def dist_ms(seconds: np.ndarray) -> dict[str, float | None]:
    """mean/p50/p90/p99 in milliseconds of the finite values (None when there are none)."""
    x = np.asarray(seconds, dtype=float)
    x = x[np.isfinite(x)] * 1000.0
    if not len(x):
        return {"mean": None, "p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def slo_ok(ttft_s: np.ndarray, tpot_s: np.ndarray, ttft_ms: float, tpot_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Per request: (TTFT target met, TPOT target met). A request without a TPOT (NaN: one output token)
    meets the TPOT target by definition; one without a TTFT (never served) meets neither."""
    ttft = np.asarray(ttft_s, dtype=float)
    tpot = np.asarray(tpot_s, dtype=float)
    return ttft * 1000.0 <= ttft_ms, ~np.isfinite(tpot) | (tpot * 1000.0 <= tpot_ms)


def workload_summary(w: Workload) -> dict[str, Any]:
    return {
        "name": w.name,
        "requests": int(len(w)),
        "input_tokens": int(w.input_tokens.sum()),
        "output_tokens": int(w.output_tokens.sum()),
        "block_tokens": int(w.block_tokens),
        "blocks": w.total_blocks,
        "synthetic_blocks": bool(w.synthetic_blocks),
    }


def run_metadata(cfg: Config, wall_s: float) -> dict[str, Any]:
    """Who made the report and when: kvsim version, git commit (None outside a checkout), the preset and
    profile the config came from, and the UTC start time (now minus the run's wall time, to the second)."""
    from datetime import UTC, datetime, timedelta

    from sim.version import git_commit, version

    origin = getattr(cfg, "_origin", None) or {}
    started = datetime.now(UTC) - timedelta(seconds=float(wall_s))
    return {
        "kvsim_version": version(),
        "git_commit": git_commit(),
        "preset": origin.get("preset"),
        "profile": origin.get("profile"),
        "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def build_report(
    mode: str,
    cfg: Config,
    workload: Workload,
    runs: list[tuple[str, dict[str, Any]]],
    *,
    wall_s: float,
    sim_time_s: float,
    load_stats: dict | None = None,
    extra: dict | None = None,
) -> dict[str, Any]:
    """Assemble the report; `runs` is [(policy name, metrics)], the first is the headline."""
    rep: dict[str, Any] = {
        "mode": mode,
        "report_version": REPORT_VERSION,
        **run_metadata(cfg, wall_s),
        "config_hash": cfg.hash(),
        "seed": cfg.seed,
        "workload": workload_summary(workload),
        "wall_s": float(wall_s),
        "sim_time_s": float(sim_time_s),
        "metrics": runs[0][1] if runs else {},
        "policies": [{"name": name, "metrics": m} for name, m in runs],
        "config": cfg.model_dump(mode="json"),
    }
    if load_stats is not None:
        rep["load_stats"] = load_stats
    if extra:
        rep.update(extra)
    return rep


def write_json(report: dict, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n")
