"""docs/REPORT_SCHEMA.md documents every key the golden outputs contain.

Key paths are collected from the pinned golden outputs (tests/golden/data):
every report.json / details.json key, the oracle's metadata.json, the calc and
trace-stats JSON, and every CSV header. Paths are normalised the way the doc
writes them: list elements as ``[]``, name-keyed dicts as a placeholder
(``metrics.tiers.<tier>.hit_rate``), ``{mean,p50,p90,p99}`` distributions as
one key, ``policies[].metrics`` / ``routers[].metrics`` / PD's ``colocated``
as ``metrics``, and ``config.<section>`` (whose keys config.yaml documents).

A report key is documented when a table row's first cell holds it in
backticks and the row's ``modes`` cell names the report's mode (or ``all``);
keys of other outputs must sit in the section whose heading names the output.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.golden.cases import WALL_KEYS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "REPORT_SCHEMA.md"
GOLDEN = ROOT / "tests" / "golden" / "data"
CONFIG_YAML = ROOT / "config.yaml"

DIST_KEYS = ({"mean", "p50", "p90", "p99"}, {"mean", "p50", "p95", "max"})
DEPLOYMENTS = {"pd", "colocated"}  # PD's comparison.<metric> = {pd, colocated}
# containers holding the keys of `metrics`
ALIASES = {"policies[].metrics": "metrics", "routers[].metrics": "metrics", "colocated": "metrics"}
# dicts keyed by names: normalised path -> placeholder
_BOUNDS = "oracle.pools[].tiers[].bounds"
NAMED = {
    "metrics.tiers": "<tier>",
    "metrics.tier_io": "<tier>",
    "confidence.params": "<param>",
    "metrics.transfers.by_link_bytes": "<link>",
    "metrics.transfers.by_move_blocks": "<move>",
    "metrics.hit_rate_by_location": "<location>",
    "metrics.network.bytes_by_class": "<class>",
    "metrics.network.transfers_by_class": "<class>",
    "metrics.network.link_busy_s": "<class>",
    "metrics.pools": "<pool>",
    "metrics.gpu_utilization_share": "<pool>",
    "load.pools": "<pool>",
    "metrics.kv_transfer.by_locality": "<locality>",
    "topology.links": "<class>",
    "load_stats.rejected": "<reason>",
    "load.rejected": "<reason>",
    **{f"{_BOUNDS}.{k}": "<bound>" for k in ("hit_rate", "block_hit_rate", "block_hits", "tokens")},
}
# golden stdout cases -> the doc section (heading substring) that documents them
STDOUT_SECTIONS = {"calc_kv": "calc kv", "calc_hit_rate": "calc hit-rate", "calc_reuse": "calc reuse",
                   "trace_stats": "trace stats"}
FILE_SECTIONS = {"metadata.json": "metadata.json", "hit_summary.csv": "hit_summary.csv",
                 "tier_summary.csv": "tier_summary.csv", "summary.csv": "openanolis: summary.csv"}
REPORT_CSV_SECTIONS = {"cluster": "one row per router"}  # other modes: one row per policy
SKIPPED_FILES = {"exit_code", "report.md", "report.zh.md"}


def _name(n: str) -> str:
    """Free-form names written with a placeholder in the doc."""
    return re.sub(r"^HBM\+.+ per machine$", "HBM+<size> per machine", n)


def collect(obj: Any, path: str = "", paths: set[str] | None = None,
            names: dict[str, set[str]] | None = None, config: set[str] | None = None) -> tuple[set, dict, set]:
    """(normalised key paths, {placeholder: names seen}, config leaf key names) of a JSON value."""
    paths = set() if paths is None else paths
    names = defaultdict(set) if names is None else names
    config = set() if config is None else config
    if path in ALIASES:
        paths.add(path)
        path = ALIASES[path]
    if path == "config" and isinstance(obj, dict):
        for k, v in obj.items():
            paths.add(f"config.{k}")
            _config_leaves(k, v, config)
        return paths, names, config
    if isinstance(obj, dict):
        keys = set(obj)
        if obj and (keys in DIST_KEYS or keys == DEPLOYMENTS):
            paths.add(path)
        elif path in NAMED:
            ph = NAMED[path]
            for k, v in obj.items():
                names[ph].add(_name(k))
                collect(v, f"{path}.{ph}", paths, names, config)
        elif not obj:
            paths.add(path)
        else:
            for k, v in obj.items():
                collect(v, f"{path}.{k}" if path else k, paths, names, config)
    elif isinstance(obj, list):
        paths.add(path)
        for v in obj:
            if isinstance(v, dict):
                collect(v, path + "[]", paths, names, config)
    else:
        paths.add(path)
    return paths, names, config


def _config_leaves(key: str, v: Any, out: set[str]) -> None:
    out.add(key)
    if isinstance(v, dict):
        for k, x in v.items():
            _config_leaves(k, x, out)


def doc_rows(text: str) -> list[tuple[str, str, set[str] | None]]:
    """(section heading, backticked key, modes or None) of every table row's first cell."""
    rows = []
    section, header = "", None
    for line in text.splitlines():
        if line.startswith("## "):
            section, header = line[3:].strip(), None
            continue
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if set(cells[0]) <= set("-: "):
            continue
        modes = None
        if "modes" in header and header.index("modes") < len(cells):
            modes = set(re.findall(r"[a-z]+", cells[header.index("modes")].lower()))
        for key in re.findall(r"`([^`]+)`", cells[0]):
            rows.append((section, key, modes))
    return rows


class Index:
    def __init__(self, text: str) -> None:
        self.text = text
        self.rows = doc_rows(text)

    def report_key(self, key: str, mode: str) -> bool:
        return any(k == key and m is not None and (mode in m or "all" in m) for _, k, m in self.rows)

    def section_key(self, key: str, marker: str) -> bool:
        return any(k == key and marker in s for s, k, _ in self.rows)

    def any_key(self, key: str) -> bool:
        return any(k == key for _, k, _ in self.rows)

    def mentions(self, name: str) -> bool:
        return f"`{name}`" in self.text


def undocumented(index: Index, golden_dir: Path = GOLDEN) -> tuple[list[str], dict[str, set[str]], set[str]]:
    """(["case/file: key (where)"] not documented, placeholder names seen, config key names seen)."""
    missing: list[str] = []
    names: dict[str, set[str]] = defaultdict(set)
    config: set[str] = set()
    for f in sorted(golden_dir.glob("*.json")):
        case = f.stem
        data = json.loads(f.read_text())
        mode = (data.get("report.json") or {}).get("mode", "single")
        for fname, content in data.items():
            if fname in SKIPPED_FILES:
                continue
            if fname.endswith(".csv"):
                marker = FILE_SECTIONS.get(fname) or REPORT_CSV_SECTIONS.get(mode, "one row per policy")
                cols = list(content[0]) if content else []
                missing += [f"{case}/{fname}: column {c!r} (section '{marker}')" for c in cols
                            if not index.section_key(c, marker)]
                continue
            paths, _, _ = collect(content, "", set(), names, config)
            if fname in ("report.json", "details.json"):
                m = "oracle" if fname == "details.json" else content["mode"]
                missing += [f"{case}/{fname}: {p} (modes: {m})" for p in sorted(paths) if not index.report_key(p, m)]
            else:
                marker = STDOUT_SECTIONS[case] if fname == "stdout" else FILE_SECTIONS[fname]
                missing += [f"{case}/{fname}: {p} (section '{marker}')" for p in sorted(paths)
                            if not index.section_key(p, marker)]
    return sorted(set(missing)), names, config


def _index() -> Index:
    return Index(DOC.read_text(encoding="utf-8"))


def test_every_golden_key_is_documented():
    missing, _, _ = undocumented(_index())
    assert not missing, f"{len(missing)} keys missing from {DOC.name}:\n" + "\n".join(missing)


def test_every_name_of_a_named_dict_is_documented():
    index = _index()
    _, names, _ = undocumented(index)
    missing = [f"{ph}: `{n}`" for ph, ns in sorted(names.items()) for n in sorted(ns) if not index.mentions(n)]
    assert not missing, "names not mentioned (in backticks) in the doc:\n" + "\n".join(missing)


def test_wall_clock_keys_are_documented():
    index = _index()
    assert not [k for k in sorted(WALL_KEYS) if not index.any_key(k) and not any(
        k2.endswith("." + k) for _, k2, _ in index.rows)]
    assert "wall-clock" in index.text


def test_config_keys_are_documented_in_config_yaml():
    _, _, config = undocumented(_index())
    yaml_text = CONFIG_YAML.read_text()
    missing = sorted(k for k in config if not re.search(rf"^\s*{re.escape(k)}:", yaml_text, re.M))
    assert not missing, f"config keys without a line in config.yaml: {missing}"


def test_the_check_names_an_undocumented_key():
    text = DOC.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `metrics.evictions`"))
    missing, _, _ = undocumented(Index(text.replace(row + "\n", "")))
    assert any(m.endswith(": metrics.evictions (modes: single)") for m in missing)
