"""One report schema for every mode (see DESIGN.md), plus JSON/CSV writers.

Keys listed in DESIGN.md are stable: tools and tests rely on them. Extra
keys may be added, never renamed.
"""
from __future__ import annotations

import csv
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


def workload_summary(w: Workload) -> dict[str, Any]:
    return {
        "name": w.name,
        "requests": int(len(w)),
        "input_tokens": int(w.input_tokens.sum()),
        "output_tokens": int(w.output_tokens.sum()),
        "block_tokens": int(w.block_tokens),
        "blocks": int(len(w.block_ids)),
        "synthetic_blocks": bool(w.synthetic_blocks),
    }


def single_metrics(res, cfg: Config) -> dict[str, Any]:
    """Metrics of one single-node replay (a sim.modes.single.RunResult)."""
    w = res.workload
    total_in = max(1, int(w.input_tokens.sum()))
    total_blocks = max(1, len(w.block_ids))
    cache = res.cache
    bb = res.setup.block_bytes
    tiers: dict[str, Any] = {}
    evictions = 0
    for k, (name, group) in enumerate(cache.tiers().items()):
        st = [t.stats for t in group]
        agg = {
            key: int(sum(getattr(s, key) for s in st))
            for key in ("hits", "inserts", "demotions_in", "promotions_out", "taken", "evictions", "dropped",
                        "rejected")
        }
        agg["bytes_read"] = int(sum(t.bytes_read for t in group))
        agg["bytes_written"] = int(sum(t.bytes_written for t in group))
        evictions += agg["evictions"]
        tiers[name] = {
            "hit_rate": float(res.hit_tokens[:, k].sum() / total_in),
            "block_hit_rate": float(res.hit_blocks[:, k].sum() / total_blocks),
            "used_bytes": int(sum(len(t) for t in group) * bb),
            "capacity_bytes": int(sum(t.capacity for t in group) * bb),
            **agg,
            "occupancy": [[round(t, 6), int(b) * bb] for t, b in cache.occupancy[name]],
        }
    tr = cache.traffic
    links = {
        "dram_to_hbm": tr.dram_to_hbm * bb,
        "ssd_to_hbm": tr.ssd_to_hbm * bb,
        "hbm_to_dram": tr.hbm_to_dram * bb,
        "dram_to_ssd": tr.dram_to_ssd * bb,
    }
    moved_blocks = tr.dram_to_hbm + tr.ssd_to_hbm + tr.hbm_to_dram + tr.dram_to_ssd
    m: dict[str, Any] = {
        "hit_rate": float(res.hit_tokens.sum() / total_in),
        "block_hit_rate": float(res.hit_blocks.sum() / total_blocks),
        "tiers": tiers,
        "evictions": int(evictions),
        "transfers": {"bytes": int(moved_blocks * bb), "count": int(moved_blocks), "by_link_bytes": links},
        "prefetch": {
            "blocks": int(cache.prefetched_blocks),
            "bytes": int(cache.prefetched_blocks * bb),
            "skipped_busy_link": int(res.prefetch_skipped),
        },
        "capacity_blocks": {
            "hbm_per_worker": res.setup.hbm_blocks,
            "dram": res.setup.dram_blocks,
            "ssd": res.setup.ssd_blocks,
        },
        "block_bytes": int(bb),
        "workers": res.setup.n_workers,
    }
    if res.timing:
        ttft, tpot = res.ttft_s, res.tpot_s
        ok = (ttft * 1000 <= cfg.slo.ttft_ms) & (tpot * 1000 <= cfg.slo.tpot_ms)
        sim_t = max(res.sim_time_s, 1e-9)
        m.update(
            ttft_ms=dist_ms(ttft),
            tpot_ms=dist_ms(tpot),
            e2e_ms=dist_ms(res.e2e_s),
            load_ms=dist_ms(res.load_s),
            queue_ms=dist_ms(res.queue_s),
            prefill_ms=dist_ms(res.prefill_s),
            throughput_tokens_s=float((w.input_tokens.sum() + w.output_tokens.sum()) / sim_t),
            slo_attainment=float(ok.mean()) if len(ok) else None,
            gpu_decode_busy_share=float(np.mean(res.busy_s.get("decode", [0.0])) / sim_t),
            # share of the workers' time spent in prefill; near 1 means the node is
            # overloaded and TTFT is dominated by queueing
            prefill_utilization=float(np.nansum(res.prefill_s) / (sim_t * res.setup.n_workers)),
        )
    else:
        for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
            m[key] = dist_ms(np.array([]))
        m.update(throughput_tokens_s=None, slo_attainment=None)
    return m


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


CSV_COLUMNS = [
    "policy", "hit_rate", "block_hit_rate", "hbm_hit_rate", "dram_hit_rate", "ssd_hit_rate",
    "ttft_p50_ms", "ttft_p99_ms", "tpot_mean_ms", "e2e_p50_ms", "load_mean_ms", "evictions",
    "transfer_bytes", "slo_attainment", "config_hash",
]


def policy_rows(report: dict) -> list[dict[str, Any]]:
    """One flat row per policy (the CSV and the on-screen table use these)."""
    rows = []
    for p in report.get("policies", []):
        m = p["metrics"]
        t = m.get("tiers", {})
        rows.append({
            "policy": p["name"],
            "hit_rate": m.get("hit_rate"),
            "block_hit_rate": m.get("block_hit_rate"),
            "hbm_hit_rate": t.get("hbm", {}).get("hit_rate"),
            "dram_hit_rate": t.get("dram", {}).get("hit_rate"),
            "ssd_hit_rate": t.get("ssd", {}).get("hit_rate"),
            "ttft_p50_ms": (m.get("ttft_ms") or {}).get("p50"),
            "ttft_p99_ms": (m.get("ttft_ms") or {}).get("p99"),
            "tpot_mean_ms": (m.get("tpot_ms") or {}).get("mean"),
            "e2e_p50_ms": (m.get("e2e_ms") or {}).get("p50"),
            "load_mean_ms": (m.get("load_ms") or {}).get("mean"),
            "evictions": m.get("evictions"),
            "transfer_bytes": (m.get("transfers") or {}).get("bytes"),
            "slo_attainment": m.get("slo_attainment"),
            "config_hash": report.get("config_hash"),
        })
    return rows


def write_csv(report: dict, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if report.get("routers"):  # cluster mode: one row per router
        from sim.report.cluster import ROUTER_COLUMNS, router_rows

        with p.open("w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=ROUTER_COLUMNS)
            wr.writeheader()
            for row in router_rows(report):
                wr.writerow({k: ("" if v is None else v) for k, v in row.items()})
        return
    with p.open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        wr.writeheader()
        for row in policy_rows(report):
            wr.writerow({k: ("" if v is None else v) for k, v in row.items()})
