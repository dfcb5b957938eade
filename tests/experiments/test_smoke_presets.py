"""The smoke presets show what the full runs show, in seconds: policies differ in the smoke policy
comparison, and the smoke network-variance sweep has tail events wherever tail_prob > 0."""
import csv
import json

import pytest

import main
from tests.conftest import MOONCAKE


def test_smoke_compare_policies_differ(capsys, tmp_path):
    out = tmp_path / "r.json"
    assert main.main(["run", "--preset", "smoke", "--compare", "--no-plot", "--quiet", "--report-json", str(out)]) == 0
    capsys.readouterr()
    rep = json.loads(out.read_text())
    m = {p["name"]: p["metrics"] for p in rep["policies"]}
    assert len(m) == 8
    # prompts outgrow HBM: every policy evicts, and they do not all evict the same blocks
    assert all(v["evictions"] > 0 for v in m.values())
    rows = {(round(v["hit_rate"], 4), round(v["tiers"]["hbm"]["hit_rate"], 4), v["evictions"]) for v in m.values()}
    assert len(rows) >= 5
    # as in the full run: FIFO loses hits, Belady keeps the most in HBM with the fewest evictions
    assert m["fifo"]["hit_rate"] < m["lru"]["hit_rate"] - 0.05
    hbm = {k: v["tiers"]["hbm"]["hit_rate"] for k, v in m.items()}
    assert hbm["belady"] == max(hbm.values()) > hbm["lfu"]
    assert m["belady"]["evictions"] == min(v["evictions"] for v in m.values())
    assert rep["load"]["load_class"] == "stable"  # a smoke run is not a queueing study


@pytest.mark.skipif(not MOONCAKE.exists(), reason="needs ../shared/traces/mooncake_conversation.jsonl")
def test_smoke_network_variance_sweep_has_tail_events(capsys, tmp_path):
    out = tmp_path / "nv"
    assert main.main(["sweep", "experiments/specs/network_variance.yaml", "--preset", "smoke", "--out", str(out),
                      "--workers", "1"]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader((out / "points.csv").open()))
    assert len(rows) == 4
    for r in rows:
        tail = float(r["network_tail_events"])
        assert (tail > 0) == (float(r["network.tail_prob"]) > 0), r
