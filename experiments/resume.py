"""What ``sweep --resume`` may reuse: point files that pass every check, nothing else.

A point is reused only when ``points/<id>.json`` hashes to the checksum
recorded in ``checksums.json`` when it was written, parses, has the shape a
finished point has (its own id, status ok, the config hash the spec gives it
now, a metrics mapping). Anything else (truncated, random bytes, empty,
edited, unrecorded because the sweep died between the two writes) runs again
and is named in a note. ``points.csv`` is never trusted: its rows are rebuilt
from the reused point files, and rows that disagree with them are reported.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments import results as R
from sim.errors import InputError


@dataclass
class Reuse:
    rows: dict[str, dict] = field(default_factory=dict)  # point_id -> row rebuilt from its point file
    checksums: dict[str, str] = field(default_factory=dict)  # of the reused point files
    damaged: dict[str, str] = field(default_factory=dict)  # point_id -> what is wrong with its file
    notes: list[str] = field(default_factory=list)


def load_checksums(out: Path) -> tuple[dict[str, str], str | None]:
    """checksums.json -> {point_id: sha256}, or ({}, why it cannot be used)."""
    p = out / R.CHECKSUMS_JSON
    if not p.exists():
        return {}, f"{R.CHECKSUMS_JSON} is missing"
    try:
        doc = json.loads(R.read_text_file(p, R.CHECKSUMS_JSON))
    except (InputError, ValueError) as e:
        return {}, f"{R.CHECKSUMS_JSON} is unreadable ({str(e)[:80]})"
    pts = doc.get("points") if isinstance(doc, dict) else None
    if not isinstance(pts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in pts.items()):
        return {}, f"{R.CHECKSUMS_JSON} does not map point ids to checksums"
    return pts, None


def check_point_file(path: Path, point_id: str, config_hash: str, expected_sha: str | None) -> tuple[dict | None, str]:
    """(the point's document, "") when reusable, else (None or the doc, why not).

    "failed" and "changed" (config hash) are ordinary re-runs; any other reason is damage."""
    try:
        if path.stat().st_size > R.MAX_READ_BYTES:
            return None, "larger than any point file"
        data = path.read_bytes()
    except OSError as e:
        return None, f"unreadable ({e.strerror or e})"
    if not data:
        return None, "empty"
    if expected_sha is None:
        return None, "no checksum recorded (written by an interrupted or older run)"
    if R.sha256(data) != expected_sha:
        return None, "checksum mismatch (cut short, overwritten or edited)"
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "not valid JSON"
    meta = doc.get("sweep") if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or meta.get("point_id") != point_id:
        return None, "not this point's file (sweep.point_id differs or is missing)"
    if meta.get("status") != "ok":
        return doc, "failed"
    if doc.get("config_hash") != config_hash or meta.get("config_hash") != config_hash:
        return doc, "changed"
    if not isinstance(doc.get("metrics"), dict):
        return None, "no metrics mapping"
    return doc, ""


def _csv_rows(out: Path) -> tuple[list[dict[str, Any]] | None, str | None]:
    p = out / R.POINTS_CSV
    if not p.exists():
        return None, None
    try:
        return R.read_points_csv(p), None
    except InputError as e:
        return None, str(e).removeprefix(f"{e.where}: ") if e.where else str(e)


def remove_stale_temporaries(out: Path) -> list[str]:
    """Delete temporaries a killed run left (atomic writes name them `.<name>.<random>.tmp<suffix>`)."""
    stale = [f for d in (out, out / R.POINTS_DIR) if d.is_dir() for f in d.glob(".*.tmp*") if f.is_file()]
    for f in stale:
        f.unlink(missing_ok=True)
    return [f"removed {len(stale)} unfinished temporary file(s) left by an interrupted run"] if stale else []


def find_reusable(points: list, out: Path, make_row: Callable[[Any, dict], dict]) -> Reuse:
    """Check every point of the spec against its file; `make_row(point, result)` builds its CSV row."""
    res = Reuse()
    sums, why = load_checksums(out)
    if why and (out / R.POINTS_DIR).is_dir() and any((out / R.POINTS_DIR).glob("*.json")):
        res.notes.append(f"{why}: no point file can be verified, every point runs again")
    for p in points:
        f = out / R.POINTS_DIR / f"{p.point_id}.json"
        if not f.exists():
            continue
        doc, reason = check_point_file(f, p.point_id, p.config_hash, sums.get(p.point_id))
        if reason in ("failed", "changed"):
            continue
        if reason:
            res.damaged[p.point_id] = reason
            continue
        assert doc is not None
        res.rows[p.point_id] = make_row(p, {"status": "ok", "report": doc, "wall_s": doc["sweep"].get("wall_s")})
        res.checksums[p.point_id] = sums[p.point_id]
    rows, csv_err = _csv_rows(out)
    if csv_err:
        res.notes.append(f"points.csv ignored ({csv_err}); rebuilt from the point files")
    elif rows is not None:
        hashes = {p.point_id: p.config_hash for p in points}
        stale = sum(1 for r in rows if hashes.get(r.get("point_id", "")) != r.get("config_hash"))
        if stale:
            res.notes.append(f"{stale} row(s) of the previous points.csv are not points of this spec (or their "
                             f"config changed) and were dropped; their JSON files are kept")
        differ = []
        for r in rows:
            good = res.rows.get(r.get("point_id", ""))
            if good and any(str(R.cell(good.get(c))) != (r.get(c) or "") for c in good if c != "index"):
                differ.append(r["point_id"])
        if differ:
            res.notes.append(f"{len(differ)} row(s) of points.csv disagreed with their verified point files "
                             f"({', '.join(differ[:5])}{', ...' if len(differ) > 5 else ''}); points.csv was "
                             "rebuilt from the point files")
    if res.damaged:
        shown = "; ".join(f"{k}: {v}" for k, v in list(res.damaged.items())[:5])
        more = f"; {len(res.damaged) - 5} more" if len(res.damaged) > 5 else ""
        res.notes.append(f"{len(res.damaged)} damaged point file(s) run again ({shown}{more})")
    return res
