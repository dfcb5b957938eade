"""Writers of the oracle outputs: CSV, JSON and a markdown report (EN + ZH).

Every CSV's first column is the bucket label (``all`` = the whole trace).
Hit rates are token-weighted fractions (0-1) unless the column says block.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sim.io_safe import write_text_set
from sim.oracle.bounds import BOUND_LABELS, BOUND_NAMES

HIT_COLUMNS = (
    ["bucket", "requests", "input_tokens", "blocks", "capacity_gib", "capacity_blocks"]
    + [f"{BOUND_LABELS[k]}_hit_rate" for k in BOUND_NAMES]
    + [f"{BOUND_LABELS[k]}_block_hit_rate" for k in BOUND_NAMES]
    + ["capacity_gap_share", "policy_gap_share", "bottleneck", "strict_prefix_proven_optimal", "method"]
)
TIER_COLUMNS = ["bucket", "tier"] + HIT_COLUMNS[4:] + ["strict_prefix_opt_gain_vs_previous_tier_share",
                                                       "lru_gain_vs_previous_tier_share"]


def _row(pool: dict, t: dict) -> dict[str, Any]:
    b = t["bounds"]
    r = {"bucket": pool["bucket"], "tier": t["tier"], "requests": pool["requests"],
         "input_tokens": pool["input_tokens"], "blocks": pool["blocks"],
         "capacity_gib": round(t["capacity"]["gib"], 3), "capacity_blocks": t["capacity"]["blocks"]}
    for k in BOUND_NAMES:
        r[f"{BOUND_LABELS[k]}_hit_rate"] = round(b["hit_rate"][k], 6)
        r[f"{BOUND_LABELS[k]}_block_hit_rate"] = round(b["block_hit_rate"][k], 6)
    r.update(capacity_gap_share=round(t["capacity_gap_share"], 6), policy_gap_share=round(t["policy_gap_share"], 6),
             bottleneck=t["bottleneck"], method=b["method"])
    r["strict_prefix_proven_optimal"] = b["proven_optimal"]
    return r


def hit_rows(report: dict) -> list[dict]:
    """One row per pool at the HBM tier (empty pools get a row of blanks)."""
    rows = []
    for pool in report["oracle"]["pools"]:
        if pool["tiers"]:
            rows.append(_row(pool, pool["tiers"][0]))
        else:
            rows.append({"bucket": pool["bucket"], "requests": 0, "input_tokens": 0, "blocks": 0})
    return rows


def tier_rows(report: dict) -> list[dict]:
    """One row per pool and tier; the gain columns are the hit-rate rise over the pool's previous tier."""
    rows = []
    for pool in report["oracle"]["pools"]:
        prev: dict | None = None
        for t in pool["tiers"]:
            r = _row(pool, t)
            for k in ("strict_prefix", "lru"):
                col = f"{BOUND_LABELS[k]}_hit_rate"
                gain = None if prev is None else round(r[col] - prev[col], 6)
                r[f"{BOUND_LABELS[k]}_gain_vs_previous_tier_share"] = gain
            rows.append(r)
            prev = r
    return rows


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO(newline="")
    wr = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    wr.writeheader()
    for r in rows:
        wr.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=_json_default) + "\n"


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _pct(v) -> str:
    return "-" if v is None or v == "" else f"{100 * float(v):.2f}%"


_TEXT: dict[str, dict[str, Any]] = {
    "en": {
        "title": "KV-cache oracle report",
        "trace": "Trace", "requests": "requests", "scope": "Prefix scope", "method": "Optimum method",
        "hits": "Hit-rate bounds (token-weighted) at the HBM capacity",
        "tiers": "Bounds per tier",
        "cols": ["bucket", "capacity GiB", "blocks", "content", "relaxed", "strict-prefix opt", "LRU",
                 "bottleneck", "proven"],
        "tcols": ["bucket", "tier", "capacity GiB", "blocks", "content", "relaxed", "strict-prefix opt", "LRU",
                  "bottleneck"],
        "notes": "Notes",
        "legend": [
            "content: unlimited capacity (a block hits if its id was seen before).",
            "relaxed: best eviction with this capacity, prefix order ignored.",
            "strict-prefix opt: best schedule when a request's hit stops at its first missing block; "
            "on prefix-consistent traces it equals the relaxed bound (see sim/oracle/bounds.py).",
            "LRU: strict-prefix LRU replay.",
            "bottleneck: capacity when content - optimum is the larger gap, policy when optimum - LRU is, "
            "none when both are within the tolerance.",
        ],
    },
    "zh": {
        "title": "KV 缓存离线上界报告",
        "trace": "轨迹", "requests": "个请求", "scope": "前缀范围", "method": "最优解求法",
        "hits": "HBM 容量下的命中率上界（按 token 加权）",
        "tiers": "各存储层级的上界",
        "cols": ["分桶", "容量 GiB", "块数", "内容上界", "松弛上界", "严格前缀最优", "LRU", "瓶颈", "已证明最优"],
        "tcols": ["分桶", "层级", "容量 GiB", "块数", "内容上界", "松弛上界", "严格前缀最优", "LRU", "瓶颈"],
        "notes": "说明",
        "legend": [
            "内容上界：容量无限，块 ID 之前出现过即命中。",
            "松弛上界：给定容量下最优淘汰，忽略前缀顺序。",
            "严格前缀最优：请求命中在第一个缺失块处截止时的最优调度；在前缀一致的轨迹上与松弛上界相等"
            "（证明见 sim/oracle/bounds.py）。",
            "LRU：严格前缀规则下的 LRU 回放。",
            "瓶颈：内容上界与最优之差较大时为 capacity（容量），最优与 LRU 之差较大时为 policy（策略），"
            "两者都在容差内时为 none。",
        ],
    },
}
_NECK_ZH = {"capacity": "容量", "policy": "策略", "none": "无"}


def markdown(report: dict, lang: str = "en") -> str:
    tx = _TEXT[lang]
    w = report["workload"]
    o = report["oracle"]
    yes = ("yes", "no") if lang == "en" else ("是", "否")
    lines = [f"# {tx['title']}", "",
             f"- {tx['trace']}: `{w['name']}`, {w['requests']:,} {tx['requests']}, {w['block_tokens']}-token blocks",
             f"- {tx['scope']}: `{o['scope']}`; {tx['method']}: `{o['method']}`", "",
             f"## {tx['hits']}", "", "| " + " | ".join(tx["cols"]) + " |",
             "|" + "---|" * len(tx["cols"])]
    notes = []
    for r in hit_rows(report):
        if "capacity_blocks" not in r:
            continue
        neck = r["bottleneck"] if lang == "en" else f"{_NECK_ZH[r['bottleneck']]} ({r['bottleneck']})"
        lines.append("| " + " | ".join([
            r["bucket"], f"{r['capacity_gib']:,.1f}", f"{r['capacity_blocks']:,}",
            *[_pct(r[f"{BOUND_LABELS[k]}_hit_rate"]) for k in BOUND_NAMES], neck,
            yes[0] if r["strict_prefix_proven_optimal"] else yes[1]]) + " |")
    lines += ["", f"## {tx['tiers']}", "", "| " + " | ".join(tx["tcols"]) + " |", "|" + "---|" * len(tx["tcols"])]
    for r in tier_rows(report):
        neck = r["bottleneck"] if lang == "en" else f"{_NECK_ZH[r['bottleneck']]} ({r['bottleneck']})"
        lines.append("| " + " | ".join([
            r["bucket"], r["tier"], f"{r['capacity_gib']:,.1f}", f"{r['capacity_blocks']:,}",
            *[_pct(r[f"{BOUND_LABELS[k]}_hit_rate"]) for k in BOUND_NAMES], neck]) + " |")
    for pool in o["pools"]:
        for t in pool["tiers"]:
            for n in t["bounds"]["notes"]:
                notes.append(f"{pool['bucket']} / {t['tier']}: {n}")
    lines += ["", f"## {tx['notes']}", ""] + [f"- {s}" for s in tx["legend"] + notes]
    return "\n".join(lines) + "\n"


def write_oracle_outputs(report: dict, out_dir: str | Path,
                         extra: dict[str, tuple[str, Path]] | None = None) -> dict[str, Path]:
    """hit_summary.csv, tier_summary.csv, metadata.json, details.json, report.md, report.zh.md
    (+ `extra` texts, e.g. the openanolis summary.csv), written as one set."""
    d = Path(out_dir)
    meta = {
        "mode": "oracle",
        "config_hash": report["config_hash"],
        "inputs": report["oracle"]["inputs"],
        "workload": report["workload"],
        "load": report.get("load_stats"),
        "scope": report["oracle"]["scope"],
        "method": report["oracle"]["method"],
        "buckets": report["oracle"]["buckets"],
        "tiers": report["oracle"]["tiers"],
        "units": {"hit_rate": "token-weighted fraction 0-1 (hit blocks x block_tokens capped at input tokens)",
                  "block_hit_rate": "fraction of block accesses", "capacity_gib": "GiB (1024^3 bytes)"},
    }
    if "openanolis" in report["oracle"]:
        meta["openanolis"] = report["oracle"]["openanolis"]
    # Every text is rendered before the first file is written, so a failure
    # while rendering leaves no partial set; the files are then written as one set.
    texts = {
        "hit_summary": (csv_text(hit_rows(report), HIT_COLUMNS), d / "hit_summary.csv"),
        "tier_summary": (csv_text(tier_rows(report), TIER_COLUMNS), d / "tier_summary.csv"),
        "metadata": (json_text(meta), d / "metadata.json"),
        "details": (json_text(report), d / "details.json"),
        "report_en": (markdown(report, "en"), d / "report.md"),
        "report_zh": (markdown(report, "zh"), d / "report.zh.md"),
        **(extra or {}),
    }
    return write_text_set(texts, "--output-dir")
