"""Web API: friendly messages, the custom architecture, the secondary figures, results grouped by run."""
import csv
import json
import warnings

import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed (pip install fastapi)")
pytest.importorskip("httpx", reason="httpx is not installed (the FastAPI TestClient needs it)")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from sim.analytic import calc_hit_rate  # noqa: E402
from web.app import create_app  # noqa: E402
from web.results import list_results, sweep_table  # noqa: E402

ARCH_8B = {"layers": 32, "kv_heads": 8, "head_dim": 128, "params_b": 8.030261248, "attention_heads": 32,
           "hidden_size": 4096, "vocab_size": 128256, "max_context": 8192}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return TestClient(create_app(tmp_path_factory.mktemp("empty")))


def _errors(r) -> dict:
    assert r.status_code == 422, r.text
    return {".".join(d["loc"][1:]): d["msg"] for d in r.json()["detail"]}


@pytest.mark.parametrize("body, field, msg", [
    ({"gpus": ""}, "gpus", "GPUs must be a whole number between 1 and 1,000,000"),
    ({"gpus": "4.5"}, "gpus", "GPUs must be a whole number between 1 and 1,000,000"),
    ({"arrival_rate": -2}, "arrival_rate", "Arrival rate (conversations/s) must be a number above 0 and up to 100,000"),
    ({"turns": 0}, "turns", "Turns must be a number between 1 and 1,000"),
    ({"target_hit_rate": 2}, "target_hit_rate", "Target hit rate must be a number above 0 and up to 1"),
    ({"tp": "x"}, "tp", "TP must be a whole number between 1 and 1,024"),
    ({"kv_dtype": "fp9"}, "kv_dtype", "KV dtype must be one of 'fp32', 'fp16', 'bf16', 'fp8' or 'int4'"),
    ({"speed": 1}, "speed", "'speed' is not an input here"),
    ({"architecture": {**ARCH_8B, "layers": 20000}}, "architecture.layers",
     "Layers must be a whole number between 1 and 10,000"),
    ({"architecture": {**ARCH_8B, "head_dim": "wide"}}, "architecture.head_dim",
     "Head dim must be a whole number between 1 and 100,000"),
    ({"architecture": {k: v for k, v in ARCH_8B.items() if k != "params_b"}}, "architecture.params_b",
     "Parameters (billions) is required"),
    ({"architecture": {**ARCH_8B, "kv_heads": 6}}, "architecture.kv_heads",
     "Attention heads (32) must be a multiple of the KV heads (6)"),
    ({"architecture": {**ARCH_8B, "params_b": 0.1}}, "architecture.params_b",
     "Parameters must exceed the embedding table (vocabulary x hidden size = 0.525 billion)"),
])
def test_friendly_messages(client, body, field, msg):
    assert _errors(client.post("/api/hit-rate", json=body)) == {field: msg}


def test_reuse_messages_use_the_reuse_bounds(client):
    assert _errors(client.post("/api/reuse", json={"gpus": 0})) == {"gpus": "GPUs must be a whole number between 1 "
                                                                            "and 1,024"}


def test_custom_architecture_gives_the_preset_numbers(client):
    preset = client.post("/api/hit-rate", json={"model": "llama-3-8b", "target_hit_rate": 0.5}).json()
    custom = client.post("/api/hit-rate", json={"model": "ignored", "architecture": {**ARCH_8B, "name": "mine"},
                                                "target_hit_rate": 0.5}).json()
    assert custom["model"] == "mine"
    assert {k: v for k, v in custom.items() if k not in ("model", "inputs")} == \
        {k: v for k, v in preset.items() if k not in ("model", "inputs")}
    r1 = client.post("/api/reuse", json={"model": "llama-3-8b", "prefix_tokens": 4096}).json()
    r2 = client.post("/api/reuse", json={"architecture": ARCH_8B, "prefix_tokens": 4096}).json()
    assert {k: v for k, v in r1.items() if k != "model"} == {k: v for k, v in r2.items() if k != "model"}
    # derived defaults: hidden = heads x head dim, heads = KV heads; KV bytes = 2 x layers x kv x dim x 2
    small = client.post("/api/hit-rate", json={"architecture": {"layers": 2, "kv_heads": 4, "head_dim": 64,
                                                                "params_b": 0.5}, "gpus": 1}).json()
    assert small["kv_bytes_per_token"] == 2 * 2 * 4 * 64 * 2
    assert small["weights_gib_per_gpu"] == pytest.approx(0.5e9 * 2 / 2**30)
    # presets offered to the form's "fill from the preset" round-trip to the same spec
    arch = client.get("/api/presets").json()["architectures"]["llama-3-8b"]
    again = client.post("/api/hit-rate", json={"architecture": arch, "target_hit_rate": 0.5}).json()
    assert again["hit_rate"] == preset["hit_rate"] and again["weights_gib_per_gpu"] == preset["weights_gib_per_gpu"]


def test_secondary_figures_are_the_library_ones(client):
    r = client.post("/api/hit-rate", json={"model": "llama-3-8b", "gpus": 1, "arrival_rate": 2, "turns": 4,
                                           "interval_s": 10, "prompt_tokens": 100, "response_tokens": 50,
                                           "kv_budget_gb": 4, "vary": None}).json()
    assert r["request_rate_req_s"] == 8 and r["prompt_tokens_s"] == 2600
    assert r["hit_tokens_s"] == pytest.approx(1500)
    assert r["cache_utilization_share"] == pytest.approx(26_000 / 32_768)
    assert r == json.loads(json.dumps(calc_hit_rate({"model": "llama-3-8b", "gpus": 1, "arrival_rate": 2, "turns": 4,
                                                     "interval_s": 10, "prompt_tokens": 100, "response_tokens": 50,
                                                     "kv_budget_gb": 4})))


REPORT = {"mode": "single", "workload": {"name": "w", "requests": 10},
          "policies": [{"name": "lru", "metrics": {"hit_rate": 0.5}}]}


def _sweep(d, n_points, metrics, axes):
    (d / "points").mkdir(parents=True)
    (d / "sweep.json").write_text(json.dumps({"name": d.name, "metrics": metrics, "plots": [], "axes": axes}))
    (d / "checksums.json").write_text("{}")
    with (d / "points.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["point_id", "error", "cap", "policy", "seed", "evictions", "hit_rate"])
        for i in range(n_points):
            w.writerow([f"p{i}", "", 1 + i % 3, "lru" if i % 2 else "arc", 42, 100 - i, 0.01 * i])
            (d / "points" / f"p{i}.json").write_text(json.dumps(REPORT))
    (d / "points" / "failed.json").write_text(json.dumps({"status": "error"}))  # a failed point's record


@pytest.mark.parametrize("layout", ["named", "timestamped"])
def test_results_grouped_by_run_reports_first(tmp_path, layout):
    root = tmp_path / "results"
    run_dir = root / ("policies" if layout == "named" else "single-20250101-120000")
    run_dir.mkdir(parents=True)
    (run_dir / "report.json").write_text(json.dumps(REPORT))
    sw = root / ("sweeps/cap" if layout == "named" else "sweep-20250101-100000")
    axes = [{"name": "cap", "values": [1, 2, 3], "numeric": True},
            {"name": "policy", "values": ["lru", "arc"], "numeric": False}]
    _sweep(sw, 120, ["evictions", "hit_rate"], axes)
    if layout == "timestamped":
        (root / "latest").symlink_to(run_dir.name, target_is_directory=True)
    d = list_results(root)
    # the 120 point reports are not listed as reports: one report, in its run, before the sweep
    assert [r["path"] for r in d["reports"]] == [f"{run_dir.relative_to(root).as_posix()}/report.json"]
    assert [r["kind"] for r in d["runs"]] == ["run", "sweep"]
    run, sweep = d["runs"]
    assert run["dir"] == run_dir.relative_to(root).as_posix() and len(run["reports"]) == 1
    assert run["latest"] is (layout == "timestamped") and sweep["latest"] is False
    assert sweep["dir"] == sw.relative_to(root).as_posix() and sweep["reports"] == []
    assert sweep["sweep"]["points"] == 120 and sweep["has_sweep_json"] is True
    assert sweep["point_reports"] == 121 and len(sweep["point_paths"]) == 120
    assert d["skipped"] == []  # sweep.json, checksums.json and the failed point's record are recognised
    # the chart's default: first axis x first metric of sweep.json (not the column guess, hit_rate)
    t = sweep_table(root, sweep["dir"])
    assert t["guess"] == {"x": "cap", "y": "evictions", "series": "policy"}
    assert t["meta"]["name"] == sw.name and t["meta"]["metrics"] == ["evictions", "hit_rate"]


def test_sweep_without_sweep_json_keeps_the_guess(tmp_path):
    sw = tmp_path / "s"
    _sweep(sw, 4, [], [])
    (sw / "sweep.json").unlink()
    t = sweep_table(tmp_path, "s")
    assert t["meta"] is None and t["guess"]["y"] == "hit_rate" and t["guess"]["x"] == "cap"
    assert [r["kind"] for r in list_results(tmp_path)["runs"]] == ["sweep"]
