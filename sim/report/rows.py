"""Flat rows of a report: one per policy or per router run, for the CSV and the on-screen tables."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from sim.cache.layout import LOC_NAMES

POLICY_COLUMNS = [
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


ROUTER_COLUMNS = [
    "router", "policy", "hit_rate", "hbm_hit_rate", "peer_hbm_hit_rate", "dram_hit_rate", "local_eic_hit_rate",
    "remote_eic_hit_rate", "ssd_hit_rate", "ttft_p50_ms", "ttft_p99_ms", "tpot_mean_ms", "net_share",
    "worker_req_skew", "worker_load_skew", "rack_req_skew", "rack_load_skew", "moved_bytes", "slo_attainment",
    "requests_per_s", "config_hash",
]


def router_rows(report: dict) -> list[dict[str, Any]]:
    """One flat row per router run (the CSV and the on-screen table use these)."""
    rows = []
    for r in report.get("routers") or []:
        m = r["metrics"]
        loc = m.get("hit_rate_by_location", {})
        sk = m.get("skew", {})
        rows.append({
            "router": r["name"],
            "policy": m.get("policy"),
            "hit_rate": m.get("hit_rate"),
            **{f"{k}_hit_rate": loc.get(k) for k in LOC_NAMES},
            "ttft_p50_ms": (m.get("ttft_ms") or {}).get("p50"),
            "ttft_p99_ms": (m.get("ttft_ms") or {}).get("p99"),
            "tpot_mean_ms": (m.get("tpot_ms") or {}).get("mean"),
            "net_share": (m.get("network") or {}).get("ttft_network_share"),
            "worker_req_skew": sk.get("worker", {}).get("requests", {}).get("max_mean"),
            "worker_load_skew": sk.get("worker", {}).get("load", {}).get("max_mean"),
            "rack_req_skew": sk.get("rack", {}).get("requests", {}).get("max_mean"),
            "rack_load_skew": sk.get("rack", {}).get("load", {}).get("max_mean"),
            "moved_bytes": (m.get("transfers") or {}).get("bytes"),
            "slo_attainment": m.get("slo_attainment"),
            "requests_per_s": m.get("requests_per_s"),
            "config_hash": report.get("config_hash"),
        })
    return rows


def write_csv(report: dict, path: str | Path) -> None:
    """One row per router for a cluster router comparison, else one row per policy."""
    if report.get("routers"):
        columns, rows = ROUTER_COLUMNS, router_rows(report)
    else:
        columns, rows = POLICY_COLUMNS, policy_rows(report)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=columns)
        wr.writeheader()
        for row in rows:
            wr.writerow({k: ("" if v is None else v) for k, v in row.items()})
