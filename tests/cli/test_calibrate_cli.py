"""`calibrate timing` and `calibrate estimator` (a bare `calibrate` still means estimator) as a user runs them."""
from __future__ import annotations

import json

import pytest

import main
from sim.cli import oracle
from tests.conftest import DATA
from tests.timing.test_calibrate import synthetic_csv


def test_bare_calibrate_still_means_estimator(monkeypatch):
    seen = []
    monkeypatch.setattr(oracle, "cmd_calibrate", lambda args: seen.append(args) or 0)
    assert main.main(["calibrate", "--trace", "t.jsonl", "--points", "3"]) == 0
    assert main.main(["calibrate", "estimator", "--trace", "t.jsonl"]) == 0
    assert [(a.calibrate_what, a.trace, a.points) for a in seen] == [("estimator", "t.jsonl", 3),
                                                                    ("estimator", "t.jsonl", 6)]


def test_calibrate_help_lists_both(capsys):
    with pytest.raises(SystemExit):
        main.main(["calibrate", "--help"])
    out = capsys.readouterr().out
    assert "estimator" in out and "timing" in out


def test_calibrate_timing_writes_an_overlay_run_accepts(tmp_path, capsys):
    synthetic_csv(tmp_path / "p.csv", tps=(1,))
    out = tmp_path / "cal.yaml"
    assert main.main(["calibrate", "timing", "--points", str(tmp_path / "p.csv"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "timing residuals (13 points)" in text and "median |err|" in text and "-> 0.00%" in text
    prof = out.read_text()
    assert "gemm_efficiency: 0.62   # fitted" in prof and 'calibrated_for: {gpu: "h100-sxm"' in prof
    assert not list(tmp_path.glob(".cal.yaml.*"))  # no temp file left behind

    def tpot(extra):
        rj = tmp_path / f"r{len(extra)}.json"
        rc = main.main(["run", "--trace", str(DATA / "mooncake_small.jsonl"), "--limit", "60", "--policy", "lru",
                        "--set", "model.name=llama-2-7b", "--set", "model.tp=1", "--no-plot", "--quiet",
                        "--report-json", str(rj), *extra])
        assert rc == 0
        return json.loads(rj.read_text())["metrics"]["tpot_ms"]["mean"]

    assert tpot(["--profile", str(out)]) != pytest.approx(tpot([]), rel=1e-3)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_calibrate_timing_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys):
    synthetic_csv(tmp_path / "p.csv", tps=(1,))
    out = tmp_path / "cal.yaml"
    cases = [
        (["--points", str(tmp_path / "missing.csv")], "missing.csv: points file not found"),
        (["--points", str(tmp_path / "p.csv"), "--out", str(tmp_path / "no" / "x.yaml")], "--out"),
        (["--points", str(DATA / "vllm_bench_c1.json"), "--model", "llama-2-7b", "--tp", "1"], "pass --gpu"),
        (["--points", str(DATA / "vllm_bench_c1.json"), "--gpu", "h100", "--model", "llama-9", "--tp", "1"],
         "unknown model 'llama-9'"),
        (["--points", str(tmp_path / "p.csv"), "--fit", "mfu"], "--fit: unknown parameter"),
        (["--points", str(tmp_path / "p.csv"), "--gpu", "a100"], "no points left"),
    ]
    for extra, msg in cases:
        argv = ["calibrate", "timing", *extra]
        if "--out" not in extra:
            argv += ["--out", str(out)]
        assert main.main(argv) == 2, extra
        assert msg in _one_error_line(capsys)
        assert not out.exists() and not list(tmp_path.glob(".cal.yaml.*"))


def test_profile_fitted_for_another_gpu_is_refused_by_run(tmp_path, capsys):
    synthetic_csv(tmp_path / "p.csv", tps=(1,))
    out = tmp_path / "cal.yaml"
    assert main.main(["calibrate", "timing", "--points", str(tmp_path / "p.csv"), "--out", str(out), "--quiet"]) == 0
    rj = tmp_path / "r.json"
    rc = main.main(["run", "--trace", str(DATA / "mooncake_small.jsonl"), "--limit", "5", "--profile", str(out),
                    "--set", "hardware.gpu=a100", "--no-plot", "--quiet", "--report-json", str(rj)])
    assert rc == 2 and not rj.exists()
    line = _one_error_line(capsys)
    assert "cal.yaml: compute.calibrated_for" in line and "hardware.gpu=h100-sxm" in line and "a100-80g" in line
