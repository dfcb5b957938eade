"""Standard study: the prefill:decode ratio of a disaggregated deployment.

``run_pd_ratio`` simulates the PD deployment of ``cfg`` once per ratio
(default 1:1 .. 1:7; the split is per rack, rounded, at least one replica of
each kind) on the same GPUs and workload, plus the colocated deployment of
those GPUs once as the baseline, and returns one row per ratio: goodput,
SLO attainment (both / TTFT / TPOT), TTFT and TPOT percentiles, pool
utilizations, preemptions. ``python main.py experiment pd-ratio`` prints the
table and writes ``pd_ratio.json``, ``pd_ratio.csv`` and ``pd_ratio.png``.

Points run in worker processes (``workers``; 0 = ``experiments.workers``,
0 there = every core); every point is deterministic, so the result does
not depend on the number of workers.
"""
from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sim.config import Config, config_with
from sim.errors import InputError
from trace.workload import Workload

DEFAULT_RATIOS = [(1, d) for d in range(1, 8)]
ROW_COLUMNS = [
    "ratio", "prefill_replicas", "decode_replicas", "goodput_req_s", "slo_attainment", "ttft_attainment",
    "tpot_attainment", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "prefill_utilization",
    "decode_utilization", "preemptions", "kv_transfer_gib", "hit_rate", "wall_s",
]


def parse_ratios(text: str | None) -> list[tuple[int, int]]:
    """'1:1,1:3,2:5' -> [(1, 1), (1, 3), (2, 5)]; None/'' -> 1:1 .. 1:7."""
    if not text:
        return list(DEFAULT_RATIOS)
    out = []
    for part in text.split(","):
        p, sep, d = part.strip().partition(":")
        try:
            pi, di = int(p), int(d)
        except ValueError:
            raise InputError(f"not a ratio P:D: {part.strip()!r}", where="--ratios") from None
        if not sep or pi < 1 or di < 1:
            raise InputError(f"not a ratio P:D of positive integers: {part.strip()!r}", where="--ratios")
        out.append((pi, di))
    return out


def _row(ratio: str, m: dict, layout: dict) -> dict[str, Any]:
    g = m["gpu_utilization"]
    kt = m.get("kv_transfer") or {}
    return {
        "ratio": ratio, "prefill_replicas": layout.get("prefill_replicas"),
        "decode_replicas": layout.get("decode_replicas"), "goodput_req_s": m["goodput_req_s"],
        "slo_attainment": m["slo_attainment"], "ttft_attainment": m["slo"]["ttft_attainment"],
        "tpot_attainment": m["slo"]["tpot_attainment"], "ttft_p50_ms": m["ttft_ms"]["p50"],
        "ttft_p99_ms": m["ttft_ms"]["p99"], "tpot_p50_ms": m["tpot_ms"]["p50"], "tpot_p99_ms": m["tpot_ms"]["p99"],
        "prefill_utilization": g.get("prefill", g.get("colocated")),
        "decode_utilization": g.get("decode", g.get("colocated")), "preemptions": m["preemptions"]["count"],
        "kv_transfer_gib": (kt.get("bytes") or 0) / 1024**3, "hit_rate": m["hit_rate"], "wall_s": m["wall_s"],
    }


def _point(kind: str, cfg: Config, workload: Workload, policy: str) -> tuple[dict, dict, dict]:
    from sim.modes.pd.setup import prepare
    from sim.modes.pd.simulator import simulate
    from sim.report.pd import deployment_metrics

    prep = prepare(cfg, workload, policy)
    res = simulate(kind, cfg, prep, policy)
    return deployment_metrics(res, cfg, len(prep.rejected)), prep.setup.layout(), prep.rejected_info()


def run_pd_ratio(cfg: Config, workload: Workload, *, ratios: list[tuple[int, int]] | None = None,
                 policy: str | None = None, baseline: bool = True, workers: int = 0,
                 progress: Callable[[str, int, int], None] | None = None) -> dict:
    """One PD run per ratio (+ the colocated baseline); see the module docstring."""
    from sim.report.schema import workload_summary

    ratios = ratios or list(DEFAULT_RATIOS)
    policy = policy or cfg.policies.eviction
    t0 = time.perf_counter()
    jobs: list[tuple[str, str, Config]] = [
        (f"{p}:{d}", "pd", config_with(cfg, {"pd.prefill_ratio": p, "pd.decode_ratio": d})) for p, d in ratios
    ]
    if baseline:
        jobs.append(("colocated", "colocated", cfg))
    n_workers = workers or cfg.experiments.workers or os.cpu_count() or 1
    n_workers = max(1, min(n_workers, len(jobs)))
    results: dict[str, tuple[dict, dict, dict]] = {}
    if n_workers == 1:
        for k, (label, kind, c) in enumerate(jobs):
            results[label] = _point(kind, c, workload, policy)
            if progress:
                progress("pd-ratio", k + 1, len(jobs))
    else:
        with ProcessPoolExecutor(max_workers=n_workers) as ex:
            futs = {label: ex.submit(_point, kind, c, workload, policy) for label, kind, c in jobs}
            for k, (label, f) in enumerate(futs.items()):
                results[label] = f.result()
                if progress:
                    progress("pd-ratio", k + 1, len(jobs))
    rows = []
    for label, kind, _c in jobs:
        if kind == "pd":
            m, layout, _rej = results[label]
            rows.append(_row(label, m, layout))
    first = results[jobs[0][0]]
    out: dict[str, Any] = {
        "experiment": "pd-ratio", "config_hash": cfg.hash(), "seed": cfg.seed, "policy": policy,
        "workload": workload_summary(workload), "gpus": first[1]["gpus"], "layout": first[1],
        "rejected": first[2], "slo": {"ttft_ms": cfg.slo.ttft_ms, "tpot_ms": cfg.slo.tpot_ms},
        "rows": rows, "wall_s": time.perf_counter() - t0,
    }
    if baseline:
        m, layout, _rej = results["colocated"]
        out["colocated"] = _row("colocated", m, {"prefill_replicas": layout["replicas"],
                                                 "decode_replicas": layout["replicas"]})
    best = max(rows, key=lambda r: (r["goodput_req_s"], r["slo_attainment"]))
    out["best_ratio"] = best["ratio"]
    return out


def write_pd_ratio(result: dict, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
    """pd_ratio.json, pd_ratio.csv (one row per ratio, then colocated) and pd_ratio.png in out_dir."""
    from sim.report.schema import write_json

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"json": d / "pd_ratio.json", "csv": d / "pd_ratio.csv"}
    write_json(result, paths["json"])
    with paths["csv"].open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ROW_COLUMNS + ["config_hash"])
        w.writeheader()
        for row in result["rows"] + ([result["colocated"]] if result.get("colocated") else []):
            w.writerow({**{k: ("" if row.get(k) is None else row.get(k)) for k in ROW_COLUMNS},
                        "config_hash": result["config_hash"]})
    if plot:
        from sim.report.pd_plots import plot_pd_ratio

        paths["png"] = plot_pd_ratio(result, d / "pd_ratio.png")
    return paths
