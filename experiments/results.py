"""A sweep's files: points.csv (+ points.parquet), points/<point_id>.json, sweep.json.

points.csv has one row per point: point_id, index, status, error, one column
per axis, seed, mode, workload, config_hash, the standard report metrics
(always present, empty when a mode does not measure them), wall_s, then every
other scalar metric the reports carry, sorted by name. It is rewritten whole
(atomically) after each point, so an interrupted sweep leaves a complete,
readable file that ``--resume`` continues from.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sim import io_safe
from sim.errors import InputError
from sim.io_safe import atomic_path, write_bytes_atomic

LEAD_COLUMNS = ["point_id", "index", "status", "error"]
POINT_COLUMNS = ["seed", "mode", "workload", "config_hash"]
STANDARD_METRICS = [
    "hit_rate", "block_hit_rate", "hbm_hit_rate", "dram_hit_rate", "ssd_hit_rate",
    "ttft_p50_ms", "ttft_p99_ms", "tpot_mean_ms", "slo_attainment", "throughput_tokens_s", "evictions",
]
DIST_KEYS = {"mean", "p50", "p90", "p99"}

POINTS_CSV = "points.csv"
POINTS_PARQUET = "points.parquet"
SWEEP_JSON = "sweep.json"
POINTS_DIR = "points"
CHECKSUMS_JSON = "checksums.json"  # point_id -> sha256 of points/<id>.json, checked by --resume
MAX_READ_BYTES = 64 * 1024 * 1024  # a sweep file larger than this is not one we wrote


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


# Unit suffixes of the naming scheme (docs/REPORT_SCHEMA.md), longest first.
UNIT_SUFFIXES = ("_hit_rate", "_attainment", "_blocks", "_tokens", "_bytes", "_share", "_req_s", "_gib", "_ms", "_s")
# Flat names of dict entries whose generic name would hide that they are the same quantity as a column
# of another output (pd-ratio CSV, router CSV).
FLAT_NAMES = {
    ("slo", "attainment"): "slo_attainment",
    ("slo", "ttft_attainment"): "ttft_attainment",
    ("slo", "tpot_attainment"): "tpot_attainment",
    ("network", "ttft_network_share"): "ttft_network_share",
}


def flat_name(key: str, sub: str) -> str:
    """Column of ``key.sub``: snake_case, the unit last (``capacity_blocks.dram`` -> ``capacity_dram_blocks``,
    ``gpu_utilization_share.prefill`` -> ``prefill_utilization_share``, ``prefetch.blocks`` ->
    ``prefetch_blocks``)."""
    if (key, sub) in FLAT_NAMES:
        return FLAT_NAMES[key, sub]
    if key == "gpu_utilization_share":  # pd's pools: the same name as the pd-ratio CSV
        return f"{sub}_utilization_share"
    if sub.startswith(key):  # already says what it is (prefetch.prefetched_blocks -> prefetched_blocks)
        return sub
    unit = next((u for u in UNIT_SUFFIXES if key.endswith(u)), "")
    if unit and not any(sub.endswith(u) for u in UNIT_SUFFIXES):
        return f"{key[: -len(unit)]}_{sub}{unit}"
    return f"{key.removesuffix(unit)}_{sub}" if unit else f"{key}_{sub}"


def flatten_metrics(m: dict) -> dict[str, Any]:
    """Report metrics -> flat columns (no dots: every column is a snake_case name with its unit).

    ``tiers.hbm.hit_rate`` -> ``hbm_hit_rate``; ``ttft_ms.p99`` -> ``ttft_p99_ms``;
    ``transfers.bytes`` -> ``transfer_bytes``; other dicts of scalars ->
    ``flat_name(key, sub)``; scalars keep their name; lists (occupancy curves) are left to
    the JSON report. A top-level scalar wins over a flattened entry of the same name (they hold
    the same value, e.g. pd's ``slo.attainment`` and ``slo_attainment``).
    """
    out: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    for k, v in m.items():
        if k == "tiers" and isinstance(v, dict):
            for tier, tv in v.items():
                if isinstance(tv, dict):
                    for sub in ("hit_rate", "block_hit_rate"):
                        if sub in tv and _scalar(tv[sub]):
                            out[f"{tier}_{sub}"] = tv[sub]
        elif k == "transfers" and isinstance(v, dict):
            out["transfer_bytes"] = v.get("bytes")
            out["transfer_count"] = v.get("count")
        elif isinstance(v, dict) and k.endswith("_ms") and v and set(v) <= DIST_KEYS:
            for s, x in v.items():
                out[f"{k[:-3]}_{s}_ms"] = x
        elif isinstance(v, dict):
            for sub, x in v.items():
                if _scalar(x):
                    nested[flat_name(k, str(sub))] = x
        elif _scalar(v):
            out[k] = v
    for name, x in nested.items():
        out.setdefault(name, x)
    return out


def cell(v: Any) -> Any:
    """How a value is written into the CSV (lists as JSON, None as empty)."""
    if v is None:
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return v


def typed(v: Any) -> Any:
    """A CSV string back to None / bool / int / float / str."""
    if not isinstance(v, str):
        return v
    if v == "":
        return None
    if v in ("True", "False"):
        return v == "True"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def columns(rows: Iterable[dict], axis_columns: list[str]) -> list[str]:
    rows = list(rows)
    fixed = list(dict.fromkeys(LEAD_COLUMNS + axis_columns + POINT_COLUMNS + STANDARD_METRICS + ["wall_s"]))
    extra = sorted({k for r in rows for k in r} - set(fixed))
    return fixed + extra


def write_points_csv(path: Path, rows: list[dict], axis_columns: list[str]) -> Path:
    """Write all rows (ordered by index) atomically: a crash never leaves half a file."""
    rows = sorted(rows, key=lambda r: int(r["index"]))
    cols = columns(rows, axis_columns)
    buf = io.StringIO(newline="")
    wr = csv.DictWriter(buf, fieldnames=cols)
    wr.writeheader()
    for r in rows:
        wr.writerow({c: cell(r.get(c)) for c in cols})
    return write_bytes_atomic(path, buf.getvalue().encode())


def read_text_file(path: Path, what: str) -> str:
    """A sweep file as text (at most MAX_READ_BYTES), or InputError naming the file and what is wrong."""
    return io_safe.read_text_file(path, what, MAX_READ_BYTES)


def parse_points_csv(text: str, where: str) -> list[dict[str, Any]]:
    """points.csv text -> rows; InputError when it is not the CSV a sweep writes."""
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise InputError(f"points.csv is not a valid CSV ({e})", where=where) from None
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    missing = [c for c in LEAD_COLUMNS if c not in header]
    if missing:
        raise InputError(f"points.csv lacks the column(s) {', '.join(missing)}: not a sweep's points.csv",
                         where=where)
    for i, r in enumerate(rows, start=2):
        if None in r or any(v is None for v in r.values()):  # too many / too few cells: a cut or edited row
            raise InputError(f"points.csv line {i} does not have the header's {len(header)} cells "
                             "(cut short or edited)", where=where)
        try:
            int(r["index"])
        except ValueError:
            raise InputError(f"points.csv line {i}: index {r['index']!r} is not an integer", where=where) from None
    return rows


def read_points_csv(path: Path) -> list[dict[str, Any]]:
    """Rows as CSV strings; dict[str, Any] because callers write typed values back in."""
    return parse_points_csv(read_text_file(path, "points.csv"), str(path))


def write_parquet(path: Path, rows: list[dict]) -> Path | None:
    """points.parquet with one typed column per CSV column; None when pyarrow is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    trows = [{k: typed(v) for k, v in r.items()} for r in rows]
    cols = list(trows[0]) if trows else []
    data = {}
    for c in cols:
        vals = [r.get(c) for r in trows]
        present = [v for v in vals if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            data[c] = pa.array(vals, pa.bool_())
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            data[c] = pa.array(vals, pa.int64())
        elif present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            data[c] = pa.array([None if v is None else float(v) for v in vals], pa.float64())
        else:
            data[c] = pa.array([None if v is None else str(v) for v in vals], pa.string())
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(data), tmp)
    return path


def json_bytes(doc: dict) -> bytes:
    return (json.dumps(doc, indent=1, default=str) + "\n").encode()


def write_json(path: Path, doc: dict) -> Path:
    return write_bytes_atomic(path, json_bytes(doc))
