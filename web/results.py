"""What the results page shows: JSON reports and sweep tables under a results directory.

Pure functions over files (the FastAPI app only routes to them). Paths given
by the browser are resolved inside the results directory; anything outside it
is refused.

The listing groups files by run: a folder holding sweep.json or points.csv is
one sweep run (its table first; the per-point reports under it collapsed into
a count and a list), any other folder with reports is one run. This works for
any layout (``results/<name>/``, ``results/<mode>-<timestamp>/``, nested
sweeps); ``results/latest``, a link to the newest run, is named, not listed twice.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from sim.errors import InputError
from sim.report.rows import policy_rows
from web.model_input import short

MAX_FILES = 2000            # files looked at per listing
MAX_REPORT_BYTES = 64 << 20  # a JSON larger than this is listed as too large, not parsed (~5x in memory)
MAX_SWEEP_ROWS = 100_000
SWEEP_TABLE = "points.csv"  # one row per sweep point (experiments/ sweep engine)
SWEEP_META = "sweep.json"   # the sweep's axes and metrics (experiments.results.SWEEP_JSON)
SWEEP_AUX = {SWEEP_META, "checksums.json"}  # a sweep's own JSON files: known, not reports
MAX_POINT_PATHS = 500       # point reports listed per sweep run (the count is always complete)
LATEST = "latest"           # results/latest -> the newest run folder


def _within(base: Path, p: Path) -> bool:
    """`p`, symlinks followed, is `base` (resolved) or under it."""
    try:
        r = p.resolve()
    except (OSError, ValueError, RuntimeError):  # NUL byte, symlink loop
        return False
    return r == base or base in r.parents


def _inside(root: Path, rel: str) -> Path:
    """`rel` resolved under `root`; InputError (field "path") if it escapes or does not exist."""
    base = root.resolve()
    if "\x00" in rel or not _within(base, base / rel):
        raise InputError("path is outside the results directory", where="path")
    p = (base / rel).resolve()
    if not p.exists():
        raise InputError(f"no such file {short(rel)!r}", where="path")
    return p


def _load_json(p: Path) -> Any:
    if p.stat().st_size > MAX_REPORT_BYTES:
        raise ValueError(f"larger than {MAX_REPORT_BYTES >> 20} MiB")
    return json.loads(p.read_text())


def is_report(d: Any) -> bool:
    """A kvsim report: a dict with a "policies" list of {"name", "metrics"} (docs/REPORT_SCHEMA.md)."""
    return (isinstance(d, dict) and isinstance(d.get("policies"), list)
            and all(isinstance(p, dict) and "name" in p and isinstance(p.get("metrics"), dict)
                    for p in d["policies"]))


def _sweep_dirs(base: Path, files: list[Path]) -> list[Path]:
    """Folders (relative) holding a sweep's points.csv or sweep.json, deepest first."""
    dirs = {p.parent.relative_to(base) for p in files if p.name in (SWEEP_TABLE, SWEEP_META)}
    return sorted(dirs, key=lambda d: -len(d.parts))


def _run_of(rel: Path, sweeps: list[Path]) -> tuple[Path, bool]:
    """(run folder, is a sweep) of a file: its innermost enclosing sweep folder, else its own folder."""
    for d in sweeps:
        if d == Path(".") or d in rel.parents:
            return d, True
    return rel.parent, False


def _latest(base: Path) -> str | None:
    link = base / LATEST
    try:
        if link.is_symlink() and _within(base.resolve(), link) and link.is_dir():
            return link.resolve().relative_to(base.resolve()).as_posix() or "."
    except (OSError, ValueError):
        pass
    return None


def list_results(root: str | Path) -> dict[str, Any]:
    """Reports (JSON, recursively) and sweeps (folders holding points.csv), also grouped by run:
    ``runs`` lists plain runs (newest first), then sweep runs (newest first)."""
    base = Path(root)
    out: dict[str, Any] = {"dir": str(base), "exists": base.is_dir(), "reports": [], "sweeps": [], "skipped": [],
                           "runs": [], "latest": None}
    if not base.is_dir():
        return out
    real = base.resolve()
    out["latest"] = _latest(base)
    files = sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in (".json", ".csv"))[:MAX_FILES]
    sweep_dirs = _sweep_dirs(base, files)
    runs: dict[str, dict[str, Any]] = {}

    def run(rel: Path) -> dict[str, Any]:
        d, is_sweep = _run_of(rel, sweep_dirs)
        key = d.as_posix()
        if key not in runs:
            runs[key] = {"dir": key, "kind": "sweep" if is_sweep else "run", "reports": [], "sweep": None,
                         "point_reports": 0, "point_paths": [], "has_sweep_json": (base / d / SWEEP_META).is_file(),
                         "mtime": 0.0, "latest": key == out["latest"]}
        return runs[key]

    for p in files:
        rel = p.relative_to(base).as_posix()
        if not _within(real, p):  # a symlink out of the results directory is not followed
            out["skipped"].append({"path": rel, "reason": "outside the results directory (symlink)"})
            continue
        r = run(Path(rel))
        r["mtime"] = max(r["mtime"], p.stat().st_mtime)
        if p.name == SWEEP_TABLE:
            try:
                table = read_sweep_table(p)
                entry = {"path": rel, "dir": p.parent.relative_to(base).as_posix() or ".",
                         "points": len(table["rows"]), "failed": table["failed"],
                         "columns": table["columns"], "mtime": p.stat().st_mtime}
                out["sweeps"].append(entry)
                if r["kind"] == "sweep" and Path(rel).parent.as_posix() == r["dir"]:
                    r["sweep"] = entry
            except (OSError, ValueError, csv.Error) as e:
                out["skipped"].append({"path": rel, "reason": short(e, 120)})
            continue
        if p.suffix != ".json":
            continue
        in_sweep_root = r["kind"] == "sweep" and Path(rel).parent.as_posix() == r["dir"]
        if in_sweep_root and p.name in SWEEP_AUX:
            continue  # the sweep's own metadata: recognised, not a report
        try:
            d = _load_json(p)
        except (OSError, ValueError) as e:
            out["skipped"].append({"path": rel, "reason": f"not readable JSON: {short(e, 120)}"})
            continue
        if not is_report(d):
            if r["kind"] == "sweep" and not in_sweep_root:
                r["point_reports"] += 1  # a failed point's record: counted with the points
                continue
            out["skipped"].append({"path": rel, "reason": "not a kvsim report (no policies list)"})
            continue
        if r["kind"] == "sweep" and not in_sweep_root:  # a point of the sweep: collapsed
            r["point_reports"] += 1
            if len(r["point_paths"]) < MAX_POINT_PATHS:
                r["point_paths"].append(rel)
            continue
        w = d.get("workload") or {}
        entry = {
            "path": rel, "mode": d.get("mode"), "workload": w.get("name"), "requests": w.get("requests"),
            "policies": [x["name"] for x in d["policies"]], "config_hash": d.get("config_hash"),
            "mtime": p.stat().st_mtime,
        }
        out["reports"].append(entry)
        r["reports"].append(entry)
    # reports first: plain runs, then sweeps; newest first within each
    out["runs"] = sorted(runs.values(), key=lambda r: (r["kind"] == "sweep", -r["mtime"], r["dir"]))
    out["runs"] = [r for r in out["runs"] if r["reports"] or r["sweep"] or r["point_reports"]]
    return out


def report_summary(root: str | Path, rel: str) -> dict[str, Any]:
    """The policy comparison of one report: one flat row per policy (sim.report.rows.policy_rows)."""
    p = _inside(Path(root), rel)
    try:
        d = _load_json(p)
    except (OSError, ValueError) as e:
        raise InputError(f"not readable JSON: {short(e, 120)}", where="path") from None
    if not is_report(d):
        raise InputError("not a kvsim report (no policies list)", where="path")
    w = d.get("workload") or {}
    return {"path": rel, "mode": d.get("mode"), "workload": w, "config_hash": d.get("config_hash"),
            "seed": d.get("seed"), "rows": _clean(policy_rows(d))}


def _num(v: str) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _clean(rows: list[dict]) -> list[dict]:
    """NaN/inf -> None so the JSON stays valid."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]


def read_sweep_table(p: Path) -> dict[str, Any]:
    """points.csv -> columns, rows (numbers parsed), numeric columns and a guess of x / y / series."""
    with p.open(newline="") as f:
        rd = csv.DictReader(f)
        if not rd.fieldnames:
            raise ValueError("empty CSV (no header)")
        cols = list(rd.fieldnames)
        raw = [r for _, r in zip(range(MAX_SWEEP_ROWS), rd, strict=False)]
    failed = 0
    rows = []
    for r in raw:
        if (r.get("error") or "").strip():  # the sweep records a failing point and goes on
            failed += 1
            continue
        rows.append(r)
    numeric = [c for c in cols if any((r.get(c) or "").strip() for r in rows)
               and all(_num(r[c]) is not None for r in rows if (r.get(c) or "").strip())]
    parsed = [{c: (_num(r[c]) if c in numeric else r.get(c)) if (r.get(c) or "").strip() else None for c in cols}
              for r in rows]
    return {"columns": cols, "numeric": numeric, "rows": parsed, "failed": failed,
            "guess": guess_axes(cols, numeric, parsed)}


def guess_axes(cols: list[str], numeric: list[str], rows: list[dict]) -> dict[str, str | None]:
    """Default chart axes: x = a varying numeric config key (dotted name), y = hit_rate, series = a
    varying text column (e.g. policies.eviction)."""
    def distinct(c):
        return len({r.get(c) for r in rows if r.get(c) is not None})

    metric_like = ("hit_rate", "ttft", "tpot", "e2e", "throughput", "slo", "wall", "evictions", "bytes", "seed")
    varying = [c for c in numeric if distinct(c) > 1]
    axes = [c for c in varying if "." in c] or [c for c in varying if not any(m in c for m in metric_like)]
    x = axes[0] if axes else (varying[0] if varying else None)
    ys = [c for c in numeric if c == "hit_rate"] or [c for c in numeric if "hit_rate" in c and c != x]
    y = ys[0] if ys else next((c for c in reversed(numeric) if c != x), None)
    texts = [c for c in cols if c not in numeric and 1 < distinct(c) <= 12 and c not in ("error", "config_hash")]
    return {"x": x, "y": y, "series": texts[0] if texts else None}


def sweep_table(root: str | Path, rel: str) -> dict[str, Any]:
    """The sweep chart's data: `rel` is the sweep directory or its points.csv."""
    p = _inside(Path(root), rel)
    if p.is_dir():
        p = p / SWEEP_TABLE
        if not p.exists():
            raise InputError(f"no {SWEEP_TABLE} in {short(rel)!r} (not a sweep directory, or the sweep has not run)",
                             where="path")
        if not _within(Path(root).resolve(), p):
            raise InputError("path is outside the results directory", where="path")
    try:
        t = read_sweep_table(p)
    except (OSError, ValueError, csv.Error) as e:
        raise InputError(f"cannot read {SWEEP_TABLE}: {short(e, 120)}", where="path") from None
    meta = sweep_meta(p.parent / SWEEP_META)
    if meta:
        t["guess"] = axes_from_meta(meta, t)
    return {"path": rel, "meta": meta, **t}


def sweep_meta(p: Path) -> dict[str, Any] | None:
    """name, axes (name, values, numeric) and metrics of a sweep.json; None if absent or not a sweep's."""
    try:
        d = _load_json(p)
    except (OSError, ValueError):
        return None
    if not (isinstance(d, dict) and isinstance(d.get("axes"), list) and isinstance(d.get("metrics"), list)):
        return None
    axes = [{"name": a["name"], "values": len(a["values"]) if isinstance(a.get("values"), list) else 0}
            for a in d["axes"] if isinstance(a, dict) and isinstance(a.get("name"), str)]
    return {"name": short(d.get("name", ""), 80), "axes": axes,
            "metrics": [m for m in d["metrics"] if isinstance(m, str)]}


def axes_from_meta(meta: dict[str, Any], table: dict[str, Any]) -> dict[str, str | None]:
    """A sweep's default chart: its first (varying) axis against its first metric, the next varying
    axis as the series; whatever sweep.json does not settle comes from guess_axes."""
    guess = dict(table["guess"])
    cols, numeric = table["columns"], table["numeric"]
    axes = [a for a in meta["axes"] if a["name"] in cols]
    varying = [a["name"] for a in axes if a["values"] > 1] or [a["name"] for a in axes]
    metrics = [m for m in meta["metrics"] if m in numeric]
    if varying:
        guess["x"] = varying[0]
    if metrics:
        guess["y"] = metrics[0]
    rest = [a for a in varying[1:] if a != guess["x"]]
    if rest:
        guess["series"] = rest[0]
    elif guess.get("series") == guess["x"]:
        guess["series"] = None
    return guess


__all__ = ["axes_from_meta", "guess_axes", "is_report", "list_results", "read_sweep_table", "report_summary",
           "sweep_meta", "sweep_table"]
