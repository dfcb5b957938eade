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
import io
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments import results as R
from experiments.pool import Pool
from sim.config import Config, config_with
from sim.errors import InputError
from sim.io_safe import atomic_path, write_bytes_atomic
from trace.workload import Workload

DEFAULT_RATIOS = [(1, d) for d in range(1, 8)]
MAX_RATIOS = 64
ROW_COLUMNS = [
    "ratio", "requested", "prefill_replicas", "decode_replicas", "goodput_req_s", "slo_attainment", "ttft_attainment",
    "tpot_attainment", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "prefill_utilization_share",
    "decode_utilization_share", "preemptions", "kv_transfer_gib", "hit_rate", "wall_s",
]


def parse_ratios(text: str | None) -> list[tuple[int, int]]:
    """'1:1,1:3,2:5' -> [(1, 1), (1, 3), (2, 5)]; None/'' -> 1:1 .. 1:7."""
    if not text:
        return list(DEFAULT_RATIOS)
    out = []
    parts = text.split(",")
    if len(parts) > MAX_RATIOS:
        raise InputError(f"{len(parts)} ratios (max {MAX_RATIOS})", where="--ratios")
    for part in parts:
        p, sep, d = part.strip().partition(":")
        try:
            pi, di = int(p), int(d)
        except ValueError:
            raise InputError(f"not a ratio P:D: {part.strip()!r}", where="--ratios") from None
        if not sep or pi < 1 or di < 1:
            raise InputError(f"not a ratio P:D of positive integers: {part.strip()!r}", where="--ratios")
        out.append((pi, di))
    return out


def replicas_per_rack(cfg: Config) -> int | None:
    """Replicas in one rack of the PD deployment; None when the config is invalid (the run says why)."""
    gpr = cfg.pd.gpus_per_rack or cfg.cluster.gpus_per_rack
    gpn, per = cfg.hardware.gpus_per_node, cfg.model.tp * cfg.model.pp
    if gpn < 1 or per < 1 or gpr % gpn or per > gpn:
        return None
    return (gpr // gpn) * (gpn // per)


def resolve_ratios(cfg: Config, ratios: list[tuple[int, int]], explicit: bool) -> list[tuple[int, int, str]]:
    """Requested P:D ratios -> the distinct splits a rack can hold: (P, D, the requested ratios).

    A rack of n replicas holds P prefill + D decode replicas with P + D = n, so a request is
    rounded to the nearest split; rows are labelled with the split that ran (reduced, e.g. 2:6 ->
    1:3), never with a ratio that did not. An explicit ratio one side of which exceeds n - 1 is
    refused (it cannot be approached); requests that round to the same split run once.
    """
    from sim.modes.pd.setup import split_replicas

    n = replicas_per_rack(cfg)
    if n is None or n < 2:
        return [(p, d, f"{p}:{d}") for p, d in ratios]  # the run reports what is wrong with the deployment
    out: dict[tuple[int, int], list[str]] = {}
    for p, d in ratios:
        if explicit and max(p, d) > n - 1:
            raise InputError(f"ratio {p}:{d} cannot be built from {n} replicas per rack (pd.gpus_per_rack / "
                             f"(model.tp x model.pp)); each side must be 1..{n - 1}", where="--ratios")
        P, D = split_replicas(n, p, d)
        g = math.gcd(P, D)
        out.setdefault((P // g, D // g), []).append(f"{p}:{d}")
    return [(P, D, ",".join(req)) for (P, D), req in out.items()]


def _row(ratio: str, m: dict, layout: dict, wall_s: float) -> dict[str, Any]:
    g = m["gpu_utilization_share"]
    kt = m.get("kv_transfer") or {}
    return {
        "ratio": ratio, "prefill_replicas": layout.get("prefill_replicas"),
        "decode_replicas": layout.get("decode_replicas"), "goodput_req_s": m["goodput_req_s"],
        "slo_attainment": m["slo_attainment"], "ttft_attainment": m["slo"]["ttft_attainment"],
        "tpot_attainment": m["slo"]["tpot_attainment"], "ttft_p50_ms": m["ttft_ms"]["p50"],
        "ttft_p99_ms": m["ttft_ms"]["p99"], "tpot_p50_ms": m["tpot_ms"]["p50"], "tpot_p99_ms": m["tpot_ms"]["p99"],
        "prefill_utilization_share": g.get("prefill", g.get("colocated")),
        "decode_utilization_share": g.get("decode", g.get("colocated")), "preemptions": m["preemptions"]["count"],
        "kv_transfer_gib": (kt.get("bytes") or 0) / 1024**3, "hit_rate": m["hit_rate"], "wall_s": wall_s,
    }


def _point(kind: str, cfg: Config, workload: Workload, policy: str) -> tuple[dict, dict, dict, float]:
    from sim.modes.pd.setup import prepare
    from sim.modes.pd.simulator import simulate
    from sim.report.pd import deployment_metrics

    prep = prepare(cfg, workload, policy)
    res = simulate(kind, cfg, prep, policy)
    return deployment_metrics(res, cfg, len(prep.rejected)), prep.setup.layout(), prep.rejected_info(), res.wall_s


def run_pd_ratio(cfg: Config, workload: Workload, *, ratios: list[tuple[int, int]] | None = None,
                 policy: str | None = None, baseline: bool = True, workers: int = 0,
                 progress: Callable[[str, int, int], None] | None = None) -> dict:
    """One PD run per ratio (+ the colocated baseline); see the module docstring."""
    from sim.report.schema import workload_summary

    resolved = resolve_ratios(cfg, ratios or list(DEFAULT_RATIOS), explicit=bool(ratios))
    requested = {f"{p}:{d}": req for p, d, req in resolved}
    policy = policy or cfg.policies.eviction
    t0 = time.perf_counter()
    jobs: list[tuple[str, str, Config]] = [
        (f"{p}:{d}", "pd", config_with(cfg, {"pd.prefill_ratio": p, "pd.decode_ratio": d})) for p, d, _r in resolved
    ]
    if baseline:
        jobs.append(("colocated", "colocated", cfg))
    n_workers = workers or cfg.experiments.workers or os.cpu_count() or 1
    n_workers = max(1, min(n_workers, len(jobs)))
    # every run's memory estimate (`run --mode pd`'s, for its one deployment) before any runs
    from sim.modes.runner import pd_need

    needs = [pd_need(c, workload, policy, (kind,)) for _l, kind, c in jobs]
    for need in needs:
        need.check()
    if n_workers > 1:  # each run in a worker process of its own: the runs at once must fit together
        from experiments.memory_fit import at_once

        # each worker also unpickles its own copy of the workload
        n_workers = at_once([n.est.total + workload.nbytes() for n in needs], n_workers, "experiment pd-ratio",
                            "runs")
    results: dict[str, tuple[dict, dict, dict, float]] = {}
    if n_workers == 1:
        for k, (label, kind, c) in enumerate(jobs):
            results[label] = _point(kind, c, workload, policy)
            if progress:
                progress("pd-ratio", k + 1, len(jobs))
    else:
        with Pool(max_workers=n_workers) as ex:
            futs = {label: ex.submit(_point, kind, c, workload, policy) for label, kind, c in jobs}
            for k, (label, f) in enumerate(futs.items()):
                results[label] = f.result()
                if progress:
                    progress("pd-ratio", k + 1, len(jobs))
    rows = []
    for label, kind, _c in jobs:
        if kind == "pd":
            m, layout, _rej, wall = results[label]
            P, D = (int(x) for x in layout["actual_ratio"].split(":"))
            if P * int(label.split(":")[1]) != D * int(label.split(":")[0]):  # resolve_ratios' promise
                raise AssertionError(f"ratio {label} ran as {P}:{D}")
            rows.append({**_row(label, m, layout, wall), "requested": requested[label]})
    first = results[jobs[0][0]]
    out: dict[str, Any] = {
        "experiment": "pd-ratio", "config_hash": cfg.hash(), "seed": cfg.seed, "policy": policy,
        "workload": workload_summary(workload), "gpus": first[1]["gpus"], "layout": first[1],
        "rejected": first[2], "slo": {"ttft_ms": cfg.slo.ttft_ms, "tpot_ms": cfg.slo.tpot_ms},
        "rows": rows, "wall_s": time.perf_counter() - t0,
    }
    if baseline:
        m, layout, _rej, wall = results["colocated"]
        out["colocated"] = _row("colocated", m, {"prefill_replicas": layout["replicas"],
                                                 "decode_replicas": layout["replicas"]}, wall)
    best = max(rows, key=lambda r: (r["goodput_req_s"], r["slo_attainment"]))
    out["best_ratio"] = best["ratio"]
    return out


def write_pd_ratio(result: dict, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
    """pd_ratio.json, pd_ratio.csv (one row per ratio, then colocated) and pd_ratio.png in out_dir."""
    d = Path(out_dir)
    paths = {"json": d / "pd_ratio.json", "csv": d / "pd_ratio.csv"}
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=ROW_COLUMNS + ["config_hash"])
    w.writeheader()
    for row in result["rows"] + ([result["colocated"]] if result.get("colocated") else []):
        w.writerow({**{k: ("" if row.get(k) is None else row.get(k)) for k in ROW_COLUMNS},
                    "config_hash": result["config_hash"]})
    # each file atomically, the JSON last: a failure leaves no pd_ratio.json that looks complete
    written: list[Path] = []
    try:
        write_bytes_atomic(paths["csv"], buf.getvalue().encode())
        written.append(paths["csv"])
        if plot:
            from sim.report.pd_plots import plot_pd_ratio

            with atomic_path(d / "pd_ratio.png") as tmp:
                plot_pd_ratio(result, tmp)
            paths["png"] = d / "pd_ratio.png"
            written.append(paths["png"])
        R.write_json(paths["json"], result)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return paths
