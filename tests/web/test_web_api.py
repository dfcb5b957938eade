"""Web API (FastAPI TestClient): same numbers as the library, 422 naming the field, results listing."""
import csv
import json
import warnings
from dataclasses import replace

import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed (pip install fastapi)")
pytest.importorskip("httpx", reason="httpx is not installed (the FastAPI TestClient needs it)")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx2 is not ours to fix
    from fastapi.testclient import TestClient

from sim.analytic import calc_hit_rate, reuse_breakeven  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.modes.runner import run_mode  # noqa: E402
from sim.report.schema import write_json  # noqa: E402
from sim.timing.step_cost import step_params  # noqa: E402
from trace.formats import load_trace  # noqa: E402
from web.app import create_app  # noqa: E402
from web.results import guess_axes, list_results  # noqa: E402

FIXTURE = "tests/data/mooncake_small.jsonl"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """A results tree: one real report, one sweep table, one non-report JSON, one broken file."""
    root = tmp_path_factory.mktemp("results")
    w, _ = load_trace(FIXTURE)
    cfg = load_config(overrides=["hardware.hbm.capacity_gib=0.25"])
    rep = run_mode(cfg, "single", workload=w, policies=["lru", "belady"], timing=True)
    write_json(rep, root / "run1" / "report.json")
    sweep = root / "sweeps" / "cap"
    sweep.mkdir(parents=True)
    with (sweep / "points.csv").open("w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["hardware.hbm.capacity_gib", "policies.eviction", "seed", "hit_rate", "error"])
        for cap in (0.1, 0.2):
            for pol in ("lru", "belady"):
                c = load_config(overrides=[f"hardware.hbm.capacity_gib={cap}"])
                r = run_mode(c, "single", workload=w, policies=[pol], timing=False)
                wr.writerow([cap, pol, c.seed, r["metrics"]["hit_rate"], ""])
        wr.writerow([0.4, "lru", 42, "", "InputError: boom"])
    (root / "sweeps" / "cap" / "spec.json").write_text(json.dumps({"axes": {"x": [1]}}))
    (root / "broken.json").write_text("{not json")
    return root


@pytest.fixture(scope="module")
def client(results_dir):
    return TestClient(create_app(results_dir))


def test_page_and_script_are_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "<svg id=\"sens-chart\"" in r.text and "cdn" not in r.text.lower()
    js = client.get("/app.js")
    assert js.status_code == 200 and "function lineChart" in js.text
    assert "http" not in js.text.replace("http://www.w3.org/2000/svg", "")  # no remote resources


def test_hit_rate_equals_the_library(client):
    body = {"model": "llama-3-8b", "gpus": "4", "arrival_rate": "3.5", "turns": "6", "interval_s": "45",
            "kv_dtype": "fp8", "target_hit_rate": 0.6, "vary": "arrival_rate", "points": 9}
    r = client.post("/api/hit-rate", json=body)
    assert r.status_code == 200, r.text
    want = calc_hit_rate({"model": "llama-3-8b", "gpus": 4, "arrival_rate": 3.5, "turns": 6, "interval_s": 45,
                          "kv_dtype": "fp8"}, target_hit_rate=0.6, vary="arrival_rate", points=9)
    assert r.json() == json.loads(json.dumps(want))


@pytest.mark.parametrize("bad, field", [
    ({"arrival_rate": -1}, "arrival_rate"), ({"turns": ""}, "turns"), ({"gpus": "many"}, "gpus"),
    ({"interval_s": 1e12}, "interval_s"), ({"model": ""}, "model"), ({"model": "gpt-9"}, "model"),
    ({"gpus": 6, "tp": 4}, "gpus"), ({"model": "llama-3-70b", "gpus": 1}, "gpus"),
    ({"target_hit_rate": 2}, "target_hit_rate"), ({"vary": "colour"}, "vary"), ({"speed": 1}, "speed"),
])
def test_bad_input_is_422_naming_the_field(client, bad, field):
    r = client.post("/api/hit-rate", json=bad)
    assert r.status_code == 422
    locs = [d["loc"] for d in r.json()["detail"]]
    assert ["body", field] in locs, locs
    assert all(d["msg"] for d in r.json()["detail"])


def test_reuse_endpoint(client):
    r = client.post("/api/reuse", json={"model": "llama-3-70b", "gpus": 8, "prefix_tokens": 4096, "link_gb_s": 10})
    assert r.status_code == 200
    assert r.json() == json.loads(json.dumps(reuse_breakeven("llama-3-70b", "h100-sxm", gpus=8, prefix_tokens=4096,
                                                             link_gb_s=10)))
    r = client.post("/api/reuse", json={"prefix_tokens": 4096, "gemm_efficiency": 1.0})
    full = reuse_breakeven("llama-3-70b", "h100-sxm", gpus=8, prefix_tokens=4096,
                           params=replace(step_params(), gemm_efficiency=1.0))
    assert r.json()["recompute_ms"] == pytest.approx(full["recompute_ms"]) and full["gemm_efficiency"] == 1.0
    assert r.json()["recompute_ms"] < client.post("/api/reuse", json={"prefix_tokens": 4096}).json()["recompute_ms"]
    r = client.post("/api/reuse", json={"mfu": 0.5})  # the old field is gone
    assert r.status_code == 422
    r = client.post("/api/reuse", json={"prefix_tokens": -5})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "prefix_tokens"]


def test_results_listing(client, results_dir):
    d = client.get("/api/results").json()
    assert [r["path"] for r in d["reports"]] == ["run1/report.json"]
    assert d["reports"][0]["policies"] == ["lru", "belady"]
    assert [s["path"] for s in d["sweeps"]] == ["sweeps/cap/points.csv"]
    assert d["sweeps"][0]["points"] == 4 and d["sweeps"][0]["failed"] == 1
    skipped = {s["path"] for s in d["skipped"]}
    assert skipped == {"broken.json", "sweeps/cap/spec.json"}


def test_report_summary_is_policy_rows(client, results_dir):
    rep = json.loads((results_dir / "run1" / "report.json").read_text())
    d = client.get("/api/results/report", params={"path": "run1/report.json"}).json()
    assert [r["policy"] for r in d["rows"]] == ["lru", "belady"]
    for row, p in zip(d["rows"], rep["policies"], strict=True):
        assert row["hit_rate"] == p["metrics"]["hit_rate"]
        assert row["ttft_p50_ms"] == p["metrics"]["ttft_ms"]["p50"]


def test_sweep_table_and_axis_guess(client):
    d = client.get("/api/results/sweep", params={"path": "sweeps/cap"}).json()
    assert len(d["rows"]) == 4 and d["failed"] == 1
    assert d["guess"] == {"x": "hardware.hbm.capacity_gib", "y": "hit_rate", "series": "policies.eviction"}
    assert all(isinstance(r["hit_rate"], float) for r in d["rows"])


def test_results_paths_are_confined_and_checked(client):
    for path, code in (("../../etc/passwd", 422), ("run1/nope.json", 422), ("broken.json", 422), ("run1", 422)):
        r = client.get("/api/results/report", params={"path": path})
        assert r.status_code == code and r.json()["detail"][0]["loc"] == ["query", "path"]
    r = client.get("/api/results/sweep", params={"path": "run1"})
    assert r.status_code == 422 and "points.csv" in r.json()["detail"][0]["msg"]


def test_missing_results_dir_is_not_an_error(tmp_path):
    d = list_results(tmp_path / "nowhere")
    assert d["exists"] is False and d["reports"] == [] and d["sweeps"] == []


def test_axis_guess_without_dotted_keys():
    rows = [{"capacity": c, "policy": p, "hit_rate": 0.1 * c} for c in (1, 2) for p in ("a", "b")]
    assert guess_axes(["capacity", "policy", "hit_rate"], ["capacity", "hit_rate"], rows) == {
        "x": "capacity", "y": "hit_rate", "series": "policy"}
