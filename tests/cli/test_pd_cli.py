"""`python main.py run --mode pd` and `experiment pd-ratio`: outputs, bad input, parallel = sequential."""
import csv
import json

import pytest

import main
from experiments.pd_ratio import parse_ratios, run_pd_ratio
from sim.config import load_config
from sim.errors import InputError
from sim.report.rows import PD_COLUMNS
from tests.conftest import ROOT
from trace.formats import load_trace

SMALL = ROOT / "tests" / "data" / "mooncake_small.jsonl"
# a small PD deployment so the CLI runs stay fast: 2 racks x 8 GPUs of Llama-3-8B
SMALL_PD = ["--set", "model.name=llama-3-8b", "--set", "model.tp=1", "--set", "pd.gpus_per_rack=8"]


def test_run_mode_pd_writes_report_csv_and_plot(tmp_path, capsys):
    rj, rc, png = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "pd.png"
    code = main.main(["run", "--mode", "pd", "--trace", str(SMALL), *SMALL_PD, "--report-json", str(rj),
                      "--report-csv", str(rc), "--plot", str(png), "--router", "least_loaded"])
    out = capsys.readouterr().out
    assert code == 0
    assert "pd mode" in out and "colocated" in out and "mean TTFT" in out
    rep = json.loads(rj.read_text())
    assert rep["mode"] == "pd" and rep["config"]["pd"]["router"] == "least_loaded"
    assert rep["pd_layout"]["gpus"] == 16 and rep["pd_layout"]["prefill_replicas"] == 4
    m = rep["metrics"]
    for key in ("ttft_ms", "tpot_ms", "e2e_ms", "ttft_breakdown_ms", "slo", "goodput_req_s", "gpu_utilization_share",
                "kv_transfer", "preemptions", "hit_rate", "tiers", "transfers"):
        assert key in m, key
    assert set(m["ttft_breakdown_ms"]) >= {"queue", "prefill", "transfer", "load"}
    assert rep["colocated"]["kv_transfer"] is None and "comparison" in rep
    with rc.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == PD_COLUMNS and [r["deployment"] for r in rows] == ["pd", "colocated"]
    # PD's headline numbers, as in the report; no column is empty
    assert float(rows[0]["goodput_req_s"]) == m["goodput_req_s"]
    assert float(rows[0]["tpot_p99_ms"]) == m["tpot_ms"]["p99"]
    assert float(rows[0]["prefill_utilization_share"]) == m["gpu_utilization_share"]["prefill"]
    assert all(v != "" for r in rows for v in r.values())
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("args, where", [
    (["--policy", "lru,arc"], "--policy"),
    (["--hit-rate-only"], "--hit-rate-only"),
    (["--set", "pd.router=nope"], "pd.router"),
    (["--set", "pd.decode_router=nope"], "pd.decode_router"),
    (["--set", "pd.gpus_per_rack=12"], "pd.gpus_per_rack"),
    (["--set", "pd.kv_capacity_gib=0.001"], "pd.kv_capacity_gib"),
    (["--set", "pd.transfer=teleport"], "pd.transfer"),
])
def test_bad_input_is_one_line_exit_2(args, where, capsys):
    rc = main.main(["run", "--mode", "pd", "--trace", str(SMALL), *SMALL_PD, "--no-plot", "--quiet", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error:") and where in err[0], err


def test_experiment_pd_ratio_cli(tmp_path):
    out = tmp_path / "exp"
    rc = main.main(["experiment", "pd-ratio", "--trace", str(SMALL), *SMALL_PD, "--ratios", "1:1,1:3", "--out",
                    str(out), "--workers", "1", "--quiet"])
    assert rc == 0
    res = json.loads((out / "pd_ratio.json").read_text())
    assert [r["ratio"] for r in res["rows"]] == ["1:1", "1:3"]
    assert [(r["prefill_replicas"], r["decode_replicas"]) for r in res["rows"]] == [(8, 8), (4, 12)]
    assert res["colocated"]["ratio"] == "colocated" and res["best_ratio"] in ("1:1", "1:3")
    assert (out / "pd_ratio.png").exists() and len((out / "pd_ratio.csv").read_text().splitlines()) == 4
    assert main.main(["experiment", "pd-ratio", "--trace", str(SMALL), "--ratios", "1-3", "--quiet"]) == 2


def test_parse_ratios():
    assert parse_ratios(None) == [(1, d) for d in range(1, 8)]
    assert parse_ratios("1:1, 2:5") == [(1, 1), (2, 5)]
    for bad in ("1:0", "x:1", "3"):
        with pytest.raises(InputError):
            parse_ratios(bad)


def test_parallel_ratio_sweep_equals_sequential():
    cfg = load_config(overrides=[a for a in SMALL_PD if a != "--set"])
    w, _ = load_trace(SMALL)
    a = run_pd_ratio(cfg, w, ratios=[(1, 1), (1, 2)], baseline=False, workers=1)
    b = run_pd_ratio(cfg, w, ratios=[(1, 1), (1, 2)], baseline=False, workers=2)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(a["rows"]) == strip(b["rows"])
