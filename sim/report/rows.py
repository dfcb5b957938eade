"""Flat rows of a report, for the CSV and the on-screen tables: each mode has its own column set.

single (and oracle-free policy comparisons): one row per policy; cluster: one row per router run;
pd: one row per deployment (pd, colocated) with PD's headline numbers (goodput, TPOT p99, pool
utilisation). Column names follow docs/REPORT_SCHEMA.md (unit in the name, the same name as the
same quantity elsewhere); no column is always empty in its mode.
"""
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
    "remote_eic_hit_rate", "ssd_hit_rate", "ttft_p50_ms", "ttft_p99_ms", "tpot_mean_ms", "ttft_network_share",
    "worker_req_skew", "worker_load_skew", "rack_req_skew", "rack_load_skew", "transfer_bytes", "slo_attainment",
    "sim_speed_req_s", "config_hash",
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
            "ttft_network_share": (m.get("network") or {}).get("ttft_network_share"),
            "worker_req_skew": sk.get("worker", {}).get("requests", {}).get("max_mean"),
            "worker_load_skew": sk.get("worker", {}).get("load", {}).get("max_mean"),
            "rack_req_skew": sk.get("rack", {}).get("requests", {}).get("max_mean"),
            "rack_load_skew": sk.get("rack", {}).get("load", {}).get("max_mean"),
            "transfer_bytes": (m.get("transfers") or {}).get("bytes"),
            "slo_attainment": m.get("slo_attainment"),
            "sim_speed_req_s": m.get("sim_speed_req_s"),
            "config_hash": report.get("config_hash"),
        })
    return rows


PD_COLUMNS = [
    "deployment", "policy", "hit_rate", "hbm_hit_rate", "dram_hit_rate", "eic_hit_rate", "ttft_p50_ms",
    "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "e2e_p50_ms", "slo_attainment", "ttft_attainment",
    "tpot_attainment", "goodput_req_s", "throughput_req_s", "prefill_utilization_share", "decode_utilization_share",
    "preemptions", "kv_transfer_bytes", "evictions", "config_hash",
]


def pd_rows(report: dict) -> list[dict[str, Any]]:
    """One flat row per deployment (`pd`, then the `colocated` baseline on the same GPUs)."""
    rows = []
    for p in report.get("policies", []):
        m = p["metrics"]
        t = m.get("tiers", {})
        util = m.get("gpu_utilization_share") or {}
        slo = m.get("slo") or {}
        rows.append({
            "deployment": p["name"],
            "policy": report.get("eviction_policy"),
            "hit_rate": m.get("hit_rate"),
            **{f"{k}_hit_rate": t.get(k, {}).get("hit_rate") for k in ("hbm", "dram", "eic")},
            "ttft_p50_ms": (m.get("ttft_ms") or {}).get("p50"),
            "ttft_p99_ms": (m.get("ttft_ms") or {}).get("p99"),
            "tpot_p50_ms": (m.get("tpot_ms") or {}).get("p50"),
            "tpot_p99_ms": (m.get("tpot_ms") or {}).get("p99"),
            "e2e_p50_ms": (m.get("e2e_ms") or {}).get("p50"),
            "slo_attainment": m.get("slo_attainment"),
            "ttft_attainment": slo.get("ttft_attainment"),
            "tpot_attainment": slo.get("tpot_attainment"),
            "goodput_req_s": m.get("goodput_req_s"),
            "throughput_req_s": m.get("throughput_req_s"),
            # the colocated baseline has one pool doing both
            "prefill_utilization_share": util.get("prefill", util.get("colocated")),
            "decode_utilization_share": util.get("decode", util.get("colocated")),
            "preemptions": (m.get("preemptions") or {}).get("count"),
            "kv_transfer_bytes": (m.get("kv_transfer") or {}).get("bytes", 0),
            "evictions": m.get("evictions"),
            "config_hash": report.get("config_hash"),
        })
    return rows


def report_rows(report: dict) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of the report's mode: per deployment (pd), per router (cluster), else per policy."""
    if report.get("mode") == "pd":
        return PD_COLUMNS, pd_rows(report)
    if report.get("routers"):
        return ROUTER_COLUMNS, router_rows(report)
    return POLICY_COLUMNS, policy_rows(report)


def write_csv(report: dict, path: str | Path) -> None:
    """The report's rows (see report_rows) with its mode's columns."""
    columns, rows = report_rows(report)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=columns)
        wr.writeheader()
        for row in rows:
            wr.writerow({k: ("" if v is None else v) for k, v in row.items()})
