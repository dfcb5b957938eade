"""`run` in every mode: the report's ``load`` block, the load class in the table title, one stderr warning for
an overloaded run and none for a light one; the cluster skew warning."""
import json

import pytest

import main
from sim.report.cluster import skew_warning

SMALL = ["--preset", "smoke", "--set", "synthetic.requests=150", "--no-plot"]
# (mode, extra flags): cluster runs round-robin so a light run is not skewed either
MODES = [("single", ["--policy", "lru"]), ("cluster", ["--router", "round_robin"]), ("pd", [])]


def _run(capsys, tmp_path, mode, extra, rate):
    out = tmp_path / "r.json"
    rc = main.main(["run", "--mode", mode, *SMALL, "--set", f"synthetic.rate_per_s={rate}", *extra,
                    "--report-json", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    return json.loads(out.read_text()), cap


@pytest.mark.parametrize("mode,extra", MODES)
def test_overloaded_run_is_classified_and_warns(capsys, tmp_path, mode, extra):
    rep, cap = _run(capsys, tmp_path, mode, extra, 2000)
    load = rep["load"]
    assert load["load_class"] == "overloaded" == rep["metrics"]["saturation"]["load_class"]
    assert load["offered_load_share"] > 1
    names = ["prefill", "decode"] if mode == "pd" else ["workers"]
    assert load["headline_pools"] == names
    for n in names:
        row = load["pools"][n]
        # the suggested pool size brings the offered load under 0.8, one fewer does not
        per_worker = row["offered_load_share"] * row["workers"]
        assert per_worker / row["workers_for_0_8_load"] <= 0.8 < per_worker / (row["workers_for_0_8_load"] - 1)
    assert load["workers_for_0_8_load"] == sum(load["pools"][n]["workers_for_0_8_load"] for n in names)
    warnings = [ln for ln in cap.err.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 1 and "overloaded run: offered load" in warnings[0]
    assert "load: overloaded, offered" in " ".join(cap.out.split())  # the table title (rich may wrap it)


@pytest.mark.parametrize("mode,extra", MODES)
def test_light_run_is_stable_and_silent(capsys, tmp_path, mode, extra):
    rep, cap = _run(capsys, tmp_path, mode, extra, 1)
    assert rep["load"]["load_class"] == "stable"
    assert rep["load"]["offered_load_share"] < 0.8
    assert "warning" not in cap.err
    assert "load: stable, offered" in " ".join(cap.out.split())


def test_hit_rate_only_run_has_offered_load_but_no_class(capsys, tmp_path):
    rep, cap = _run(capsys, tmp_path, "single", ["--policy", "lru", "--hit-rate-only"], 2000)
    assert rep["load"]["load_class"] is None and rep["load"]["offered_load_share"] > 1
    assert "saturation" not in rep["metrics"] and "warning" not in cap.err


def _skew(req_max, req_mean, count, used):
    s = {"requests": {"max": req_max, "mean": req_mean, "max_mean": req_max / req_mean}, "count": count,
         "used": used, "load": {"max_mean": None}}
    return {"worker": s, "rack": {**s, "requests": {"max": 1.0, "mean": 1.0, "max_mean": 1.0}}}


def test_skew_warning_threshold_by_hand():
    assert skew_warning(_skew(21, 10, 16, 16)) is not None    # 2.1x the mean
    assert skew_warning(_skew(20, 10, 16, 16)) is None        # exactly 2x: not above
    # the case: 2,000 requests on 5,120 workers, 103 used, max/mean 89.6 (max 35)
    msg = skew_warning(_skew(35, 2000 / 5120, 5120, 103))
    assert msg and "89.6x the mean over all 5,120 workers (103 used)" in msg
    # fewer requests than workers: one each is a perfect spread, two each still fine, three is skew
    assert skew_warning(_skew(2, 2000 / 5120, 5120, 1500)) is None
    assert skew_warning(_skew(3, 2000 / 5120, 5120, 1500)) is not None


def test_cluster_skew_warns_once_and_is_in_the_report(capsys, tmp_path):
    # prefix_aware piles the smoke workload's shared prefixes onto a few of the 16 workers
    rep, cap = _run(capsys, tmp_path, "cluster", ["--router", "prefix_aware"], 1)
    sk = rep["metrics"]["skew"]
    assert sk["worker"]["requests"]["max_mean"] > 2 and sk["warn_max_mean"] == 2
    assert sk["warning"] and sk["warning"] in cap.err
    assert [ln for ln in cap.err.splitlines() if "cluster skew" in ln] == [f"warning: cluster skew: {sk['warning']}"]
    rr, cap = _run(capsys, tmp_path, "cluster", ["--router", "round_robin"], 1)
    assert rr["metrics"]["skew"]["warning"] is None and "skew" not in cap.err
