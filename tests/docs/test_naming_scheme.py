"""One naming scheme (docs/REPORT_SCHEMA.md "Naming scheme"): no renamed name is written any more, flat
columns have no dots and carry their unit, and each mode's report.csv has its own columns."""
from __future__ import annotations

import json
import re
from pathlib import Path

from experiments.results import flat_name, flatten_metrics
from sim.report.rows import PD_COLUMNS, POLICY_COLUMNS, ROUTER_COLUMNS, report_rows

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "REPORT_SCHEMA.md").read_text()
GOLDEN = ROOT / "tests" / "golden" / "data"


def _renamed_old_names() -> set[str]:
    """Every output name in the old -> new table (config keys excluded: still accepted; the generic
    ``<key>.<sub>`` row is about sweep columns, whose JSON paths keep their dots)."""
    section = DOC.split("### Renamed names (old -> new)", 1)[1].split("\n## ", 1)[0]
    old = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`") or "config key" in cells[2] or "<key>" in cells[0]:
            continue
        old |= {n.replace(".<pool>", "") for n in re.findall(r"`([^`]+)`", cells[0])}
    return old


def _keys(obj, out: set[str], path: str = "") -> set[str]:
    """Every key path (list indices and name-keyed pool dicts dropped) and every leaf name."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = path if k in ("prefill", "decode", "colocated") else f"{path}.{k}" if path else str(k)
            out.add(p)
            out.add(str(k))
            _keys(v, out, p)
    elif isinstance(obj, list):
        for v in obj:
            _keys(v, out, path)
    return out


def _used(name: str, seen: set[str]) -> bool:
    return any(s == name or s.endswith("." + name) for s in seen)


def test_no_golden_output_uses_a_renamed_name():
    old = _renamed_old_names()
    assert {"metrics.requests_per_s", "LRU_hit_rate", "strict-prefix_opt_hit_rate", "net_share", "moved_bytes"} <= old
    old -= {"ssd_hit_rate", "block_hit_rate", "load_mean_ms", "tpot_mean_ms", "transfer_bytes"}  # pd CSV only
    seen: set[str] = set()
    labels: set[str] = set()
    for f in GOLDEN.glob("*.json"):
        case = json.loads(f.read_text())
        for name, out in case.items():
            if name.endswith(".md") or name == "exit_code":
                continue
            _keys(out, seen)
            if isinstance(out, dict):
                labels |= {p.get("name") for p in out.get("policies", []) if isinstance(p, dict)}
    used = sorted(n for n in old if _used(n, seen))
    assert not used, used
    assert _used("metrics.sim_speed_req_s", seen) is False  # wall-clock: not pinned (WALL_KEYS)
    assert _used("lru_hit_rate", seen) and _used("metrics.gpu_utilization_share", seen)
    assert not {"strict-prefix_opt", "LRU"} & labels
    assert {"strict_prefix_opt", "lru"} <= labels  # the oracle goldens name the bounds the new way


def test_flat_names_put_the_unit_last_and_have_no_dots():
    cases = {("capacity_blocks", "dram"): "capacity_dram_blocks",
             ("prefetch", "blocks"): "prefetch_blocks",
             ("prefetch", "prefetched_blocks"): "prefetched_blocks",
             ("prefetch", "prefetch_used_blocks"): "prefetch_used_blocks",
             ("network", "ttft_network_share"): "ttft_network_share",
             ("gpu_utilization_share", "decode"): "decode_utilization_share",
             ("ttft_breakdown_ms", "queue_share"): "ttft_breakdown_queue_share",
             ("kv_transfer", "flow_s"): "kv_transfer_flow_s",
             ("slo", "attainment"): "slo_attainment"}
    for (k, s), want in cases.items():
        assert flat_name(k, s) == want
    m = {"hit_rate": 0.5, "slo_attainment": 0.25, "slo": {"attainment": 0.25, "ttft_ms": 200.0},
         "capacity_blocks": {"dram": 7}, "ttft_ms": {"mean": 1.0, "p50": 1.0, "p90": 2.0, "p99": 3.0},
         "occupancy": [[0.0, 1]]}
    flat = flatten_metrics(m)
    assert flat == {"hit_rate": 0.5, "slo_attainment": 0.25, "slo_ttft_ms": 200.0, "capacity_dram_blocks": 7,
                    "ttft_mean_ms": 1.0, "ttft_p50_ms": 1.0, "ttft_p90_ms": 2.0, "ttft_p99_ms": 3.0}
    assert not any("." in c for c in flat)


def _pd_report() -> dict:
    def dep(name: str, util: dict, kv: dict | None) -> dict:
        return {"name": name, "metrics": {
            "hit_rate": 0.4, "tiers": {"hbm": {"hit_rate": 0.3}, "dram": {"hit_rate": 0.1}, "eic": {"hit_rate": 0.0}},
            "ttft_ms": {"p50": 10.0, "p99": 90.0}, "tpot_ms": {"p50": 5.0, "p99": 9.5}, "e2e_ms": {"p50": 400.0},
            "slo_attainment": 0.75, "slo": {"ttft_attainment": 0.8, "tpot_attainment": 0.9},
            "goodput_req_s": 3.5, "throughput_req_s": 4.0, "gpu_utilization_share": util,
            "preemptions": {"count": 2}, "kv_transfer": kv, "evictions": 11}}
    return {"mode": "pd", "config_hash": "abc", "eviction_policy": "lru",
            "policies": [dep("pd", {"prefill": 0.6, "decode": 0.2}, {"bytes": 1024}),
                         dep("colocated", {"colocated": 0.5}, None)]}


def test_pd_csv_has_pd_headline_columns_and_no_empty_ones():
    cols, rows = report_rows(_pd_report())
    assert cols == PD_COLUMNS and [list(r) for r in rows] == [PD_COLUMNS, PD_COLUMNS]
    pd, col = rows
    assert (pd["goodput_req_s"], pd["tpot_p99_ms"], pd["prefill_utilization_share"],
            pd["decode_utilization_share"], pd["kv_transfer_bytes"]) == (3.5, 9.5, 0.6, 0.2, 1024)
    assert (col["prefill_utilization_share"], col["decode_utilization_share"],
            col["kv_transfer_bytes"]) == (0.5, 0.5, 0)
    assert all(v is not None for r in rows for v in r.values())
    assert "ssd_hit_rate" not in PD_COLUMNS


def test_every_csv_column_is_snake_case():
    for cols in (POLICY_COLUMNS, ROUTER_COLUMNS, PD_COLUMNS):
        assert all(re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", c) for c in cols), cols
