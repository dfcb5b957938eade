"""sim.timing.confidence: the report's latency confidence, on small hand-made validation tables."""
from __future__ import annotations

import csv

import pytest

from sim.config import load_config
from sim.config.gpus import gpu_spec
from sim.config.models import model_spec
from sim.timing.confidence import MATCHES, confidence, not_applicable
from sim.timing.step_cost import StepModel, step_params
from sim.timing.validation import COLUMNS, error_pct
from tests.conftest import ROOT

RUN = ["model.name=llama-3-70b", "hardware.gpu=h100-sxm", "model.tp=2"]


def _row(id_: str, gpu: str, model: str, tp: int, prompt: int, measured: float) -> dict:
    return {"id": id_, "source_url": "https://example.org/x", "source_table": "t", "engine": "e", "gpu": gpu,
            "model": model, "weight_dtype": "fp16", "kv_dtype": "fp16", "compute_dtype": "fp16", "tp": tp, "pp": 1,
            "metric": "prefill_ms", "prompt_tokens": prompt, "cached_tokens": 0, "batch": 1, "context": 0,
            "output_tokens": "", "concurrency": 1, "measured_ms": measured, "split": "validation", "quote": "q",
            "notes": ""}


def _write(path, rows) -> str:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return str(path)


def _prefill_ms(cfg, gpu: str, model: str, tp: int, prompt: int) -> float:
    """By hand: one prefill iteration of the point's deployment with the run's efficiencies."""
    m = StepModel(model_spec(model), gpu_spec(gpu), step_params(cfg.compute), tp=tp)
    return m.iteration_s([(prompt, 0)]) * 1e3


def test_nearest_points_are_ranked_and_predicted_with_the_runs_parameters(tmp_path):
    cfg = load_config(overrides=[*RUN, "compute.iteration_overhead_ms=2"])
    rows = [
        _row("a100-other", "a100-80g", "llama-2-7b", 1, 512, 10.0),        # unrelated: left out
        _row("model-a100", "a100-80g", "llama-3.1-70b", 2, 512, 100.0),     # same architecture, other GPU
        _row("gpu-only", "h100-sxm", "llama-2-7b", 1, 512, 10.0),
        _row("own-tp8", "h100-sxm", "llama-3.1-70b", 8, 512, 30.0),
        _row("own-tp4", "h100-sxm", "llama-3.1-70b", 4, 512, 40.0),
        _row("own-tp2", "h100-sxm", "llama-3-70b", 2, 512, 60.0),
    ]
    c = confidence(cfg, _write(tmp_path / "t.csv", rows))
    got = [(r["id"], r["match"]) for r in c["nearest_points"]]
    assert got == [("own-tp2", "gpu+model+tp"), ("own-tp4", "gpu+model"), ("own-tp8", "gpu+model"),
                   ("gpu-only", "gpu"), ("model-a100", "model")]
    assert [m for _, m in got[:1]] == [MATCHES[0]]
    for r in c["nearest_points"]:
        want = _prefill_ms(cfg, r["gpu"], r["model"], r["tp"], 512)
        assert r["predicted_ms"] == pytest.approx(want, rel=1e-12)
        assert r["error_pct"] == pytest.approx(error_pct(want, r["measured_ms"]), rel=1e-12)
    # the run's overhead (2 ms, not the default) is in every prediction: one iteration each
    base_cfg = load_config(overrides=RUN)
    base = confidence(base_cfg, _write(tmp_path / "t.csv", rows))
    extra = 2.0 - base_cfg.compute.iteration_overhead_ms
    for a, b in zip(c["nearest_points"], base["nearest_points"], strict=True):
        assert a["predicted_ms"] - b["predicted_ms"] == pytest.approx(extra, rel=1e-9)
    assert c["params"]["iteration_overhead_ms"] == 2.0
    assert c["calibration"]["source"] == "set in the config (not a calibration)"
    assert base["calibration"]["source"] == "shipped defaults"


def _own_points(cfg, tmp_path, factor_tp2: float, factor_tp4: float) -> str:
    rows = [_row(f"own-{tp}", "h100-sxm", "llama-3-70b", tp, 1024,
                 f * _prefill_ms(cfg, "h100-sxm", "llama-3-70b", tp, 1024))
            for tp, f in ((2, factor_tp2), (4, factor_tp4))]
    return _write(tmp_path / "own.csv", rows)


def test_levels(tmp_path):
    cfg = load_config(overrides=RUN)
    # measured 10% above / below the prediction: |error| ~9-11%, within 15% median and 35% each
    c = confidence(cfg, _own_points(cfg, tmp_path, 1.1, 0.9))
    assert c["level"] == "validated"
    # errors (p - 1.1 p) / 1.1 p = -9.09% and (p - 0.9 p) / 0.9 p = +11.11%: median of the two |errors|
    assert c["median_abs_error_pct"] == pytest.approx((100 * 0.1 / 1.1 + 100 * 0.1 / 0.9) / 2, rel=1e-9)
    # the summary quotes the points the level was decided on: median 10.1%, max 11.1%
    assert c["summary"].startswith("validated - 2 published point(s) of this GPU and model: median error 10%, "
                                   "max 11% (targets 15% / 35%)")
    # one point 50% off: over the 35% bound -> extrapolated
    assert confidence(cfg, _own_points(cfg, tmp_path, 1.1, 2.0))["level"] == "extrapolated"
    # a calibration made for this GPU outranks the points
    cal = load_config(overrides=[*RUN, "compute.calibration=my fit", "compute.calibrated_for.gpu=h100-sxm"])
    c = confidence(cal, _own_points(cfg, tmp_path, 1.1, 2.0))
    assert c["level"] == "calibrated" and c["calibration"]["label"] == "my fit"
    # a label without calibrated_for is not a checked calibration
    assert confidence(load_config(overrides=[*RUN, "compute.calibration=x"]),
                      _own_points(cfg, tmp_path, 1.1, 0.9))["level"] == "validated"


def test_no_points_for_this_gpu_or_model(tmp_path):
    cfg = load_config(overrides=RUN)
    c = confidence(cfg, _write(tmp_path / "t.csv", [_row("x", "a100-80g", "llama-2-7b", 1, 128, 10.0)]))
    assert c["level"] == "extrapolated" and c["nearest_points"] == [] and c["median_abs_error_pct"] is None
    assert "no published points for this GPU or model" in c["summary"]


def test_missing_table_is_said_not_raised(tmp_path):
    c = confidence(load_config(overrides=RUN), tmp_path / "absent.csv")
    assert c["level"] == "extrapolated" and c["nearest_points"] == []
    assert c["note"].startswith("no published points available")
    assert "no published points available" in c["summary"]


def test_shipped_table_default_config():
    c = confidence(load_config(), ROOT / "tests" / "validation" / "published.csv")
    assert 1 <= len(c["nearest_points"]) <= 5
    assert c["nearest_points"][0]["match"] == "gpu+model+tp"  # Llama-3.1-70B TP2 on H100 (same architecture)
    assert c["level"] in ("validated", "extrapolated")


def test_not_applicable():
    c = not_applicable()
    assert c["level"] == "not applicable" and c["summary"].startswith("not applicable")
