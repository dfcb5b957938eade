"""`run --requests-out FILE`: one row per request and run, matching the report (every mode), refused cleanly."""
import csv
import json

import numpy as np
import pytest

import main
from sim.config import load_config
from sim.modes.runner import run_mode
from sim.report.requests import _has_pyarrow
from sim.timing.step_cost import StepModel
from tests.conftest import ROOT, micro_workload

SMALL = ROOT / "tests" / "data" / "mooncake_small.jsonl"
SMALL_PD = ["--set", "model.name=llama-3-8b", "--set", "model.tp=1", "--set", "pd.gpus_per_rack=8"]
MODES = {
    "single": ["--policy", "lru,fifo"],
    "cluster": ["--preset", "smoke"],
    "pd": SMALL_PD,
}
TIERS = {"single": ("hbm", "dram", "ssd"), "cluster": ("hbm", "peer_hbm", "dram", "local_eic", "remote_eic", "ssd"),
         "pd": ("hbm", "dram", "eic")}
RUN_LABEL = {"single": "policy", "cluster": "policy", "pd": "deployment"}


def _read_csv(path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    cols = {}
    for k, name in enumerate(head):
        vals = [r[k] for r in body]
        if name in ("policy", "router", "deployment"):
            cols[name] = np.array(vals)
        elif name == "slo_met":
            assert set(vals) <= {"true", "false"}
            cols[name] = np.array([v == "true" for v in vals])
        else:
            cols[name] = np.array([float(v) if v else np.nan for v in vals])
    return cols


def _run(tmp_path, mode: str, suffix: str = ".csv", extra=()) -> tuple[dict, object]:
    out, rj = tmp_path / f"req{suffix}", tmp_path / "r.json"
    code = main.main(["run", "--mode", mode, "--trace", str(SMALL), *MODES[mode], "--no-plot", "--quiet",
                      "--report-json", str(rj), "--requests-out", str(out), *extra])
    assert code == 0
    return json.loads(rj.read_text()), out


@pytest.mark.parametrize("mode", list(MODES))
def test_rows_match_the_report(mode, tmp_path):
    rep, out = _run(tmp_path, mode)
    f = _read_csv(out)
    n = rep["workload"]["requests"]
    runs = rep["policies"]
    assert len(f["request_id"]) == n * len(runs)
    label = RUN_LABEL[mode]
    assert list(dict.fromkeys(f[label])) == [p["name"] for p in runs]
    for p in runs:
        m = p["metrics"]
        sel = f[label] == p["name"]
        assert (f["request_id"][sel] == np.arange(n)).all()
        ttft, e2e = f["ttft_ms"][sel], f["e2e_ms"][sel]
        served = np.isfinite(ttft)
        assert served.sum() == n - (rep.get("rejected") or {}).get("count", 0)
        assert (ttft[served] <= e2e[served]).all()
        # the report's percentiles come from the same per-request values
        p50, p99 = np.percentile(ttft[served], [50, 99])
        assert (p50, p99) == (m["ttft_ms"]["p50"], m["ttft_ms"]["p99"])
        assert np.percentile(e2e[served], 50) == m["e2e_ms"]["p50"]
        # the TTFT parts add up to TTFT; decode is the rest of E2E
        parts = [c for c in f if c.endswith("_ms") and c not in ("ttft_ms", "tpot_ms", "e2e_ms", "decode_ms")]
        assert np.allclose(sum(f[c][sel][served] for c in parts), ttft[served], rtol=1e-9, atol=1e-9)
        assert np.allclose(f["decode_ms"][sel][served] + ttft[served], e2e[served], rtol=1e-9)
        cached = sum(f[f"cached_{t}_tokens"][sel][served] for t in TIERS[mode])
        assert cached.sum() / f["input_tokens"][sel][served].sum() == pytest.approx(m["hit_rate"], rel=1e-12)
        assert f["slo_met"][sel].mean() == pytest.approx(m["slo_attainment"], rel=1e-12)
        assert (f["recomputed_tokens"][sel] >= 0).all()
    if mode == "pd":
        assert (f["prefill_replica"] >= 0).all()
        # a one-token request is done at its prefill replica: no decode replica (-1)
        pd = f["deployment"] == "pd"
        assert ((f["decode_replica"][pd] < 0) == (f["output_tokens"][pd] <= 1)).all()
        col = f["deployment"] == "colocated"
        assert (f["prefill_replica"][col] == f["decode_replica"][col]).all()
    else:
        assert (f["worker"] >= 0).all()


def test_hit_rate_only_writes_the_cache_columns(tmp_path):
    rep, out = _run(tmp_path, "single", extra=["--hit-rate-only"])
    f = _read_csv(out)
    assert "ttft_ms" not in f and "slo_met" not in f and "worker" in f and "arrival_s" in f
    for p in rep["policies"]:
        sel = f["policy"] == p["name"]
        cached = sum(f[f"cached_{t}_tokens"][sel] for t in TIERS["single"])
        assert cached.sum() / f["input_tokens"][sel].sum() == pytest.approx(p["metrics"]["hit_rate"], rel=1e-12)


def test_hand_computed_single_worker():
    """Two requests on one idle worker, the second reusing the first's 512 tokens: TTFT is one prefill
    iteration, each later token one decode iteration over the request's KV (the step model's own numbers)."""
    cfg = load_config(overrides=["model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=1"])
    first = list(range(32))  # 32 blocks x 16 tokens
    w = micro_workload([first, first + list(range(100, 132))], arrivals_s=[0.0, 100.0], outputs=[3, 3])
    tables: list = []
    run_mode(cfg, "single", workload=w, requests=tables)
    (t,) = tables
    c = t.columns
    st = StepModel.from_config(cfg)
    assert t.labels == {"policy": cfg.policies.eviction}
    assert c["cached_hbm_tokens"].tolist() == [0, 512] and c["worker"].tolist() == [0, 0]
    assert c["load_ms"].tolist() == [0.0, 0.0] and c["queue_ms"].tolist() == [0.0, 0.0]
    ttft = [st.prefill_s(512, 0), st.prefill_s(512, 512)]
    decode = [st.iteration_s([], 1, k) + st.iteration_s([], 1, k + 1) for k in (512, 1024)]
    assert c["ttft_ms"] == pytest.approx(np.array(ttft) * 1000, rel=1e-9)
    assert c["decode_ms"] == pytest.approx(np.array(decode) * 1000, rel=1e-9)
    assert c["tpot_ms"] == pytest.approx(np.array(decode) * 1000 / 2, rel=1e-9)
    assert c["e2e_ms"] == pytest.approx((np.array(ttft) + decode) * 1000, rel=1e-9)
    assert c["arrival_s"].tolist() == [0.0, 100.0] and c["slo_met"].tolist() == [True, True]


@pytest.mark.skipif(not _has_pyarrow(), reason="pyarrow not installed (test_parquet_without_pyarrow covers it)")
def test_parquet_has_the_csv_rows(tmp_path):
    import pyarrow.parquet as pq

    _, pq_out = _run(tmp_path, "cluster", ".parquet")
    _, csv_out = _run(tmp_path, "cluster", ".csv")
    t = pq.read_table(pq_out).to_pydict()
    f = _read_csv(csv_out)
    assert list(t) == list(f)
    for k, v in f.items():
        got = np.array([np.nan if x is None else x for x in t[k]]) if v.dtype.kind == "f" else np.array(t[k])
        assert np.array_equal(got, v, equal_nan=v.dtype.kind == "f"), k


@pytest.mark.skipif(_has_pyarrow(), reason="pyarrow is installed")
def test_parquet_without_pyarrow_is_refused(tmp_path, capsys):
    out = tmp_path / "r.parquet"
    assert main.main(["run", "--trace", str(SMALL), "--quiet", "--no-plot", "--requests-out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--requests-out" in err[0] and "pip install pyarrow" in err[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, words", [
    ("r.txt", "unsupported file type"),
    ("r", "unsupported file type"),
    ("a_file/r.csv", "Not a directory"),
    ("/proc/r.csv", "virtual filesystem"),
])
def test_bad_paths_refused_before_the_run(name, words, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    out = name if name.startswith("/") else str(tmp_path / name)
    rj = tmp_path / "r.json"
    code = main.main(["run", "--trace", str(SMALL), "--quiet", "--no-plot", "--report-json", str(rj),
                      "--requests-out", out])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: --requests-out:") and words in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no report, no temporary


def test_failed_set_leaves_no_requests_file(tmp_path, capsys, monkeypatch):
    """A later file of the set that cannot be written (the plot, on a full disk) takes the per-request
    file and the report with it: one output set."""
    import sim.report.plots

    def full_disk(report, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sim.report.plots, "plot_policy_comparison", full_disk)
    out, rj = tmp_path / "r.csv", tmp_path / "r.json"
    code = main.main(["run", "--trace", str(SMALL), "--quiet", "--requests-out", str(out), "--report-json", str(rj),
                      "--plot", str(tmp_path / "p.png")])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if not ln.startswith("warning: ")]
    assert code == 2 and len(err) == 1 and "--plot" in err[0] and "No space left" in err[0], err
    assert list(tmp_path.iterdir()) == []
