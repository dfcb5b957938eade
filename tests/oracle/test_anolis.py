"""openanolis kvcache-calculator interoperability: config mapping, refusals, files, trace rows."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.errors import InputError
from sim.oracle.anolis import all_pool, gb_to_gib, load_anolis
from tests.conftest import DATA
from trace.formats import load_trace, sniff_format

BUCKET = DATA / "anolis_bucket_config.json"
AGENT = DATA / "anolis_agent_config.json"
TRACE = DATA / "anolis_trace.jsonl"


def _csv(p: Path) -> list[dict]:
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def _write(tmp_path: Path, doc: dict, name: str = "cfg.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_gb_is_1e9_bytes():
    assert gb_to_gib(40) == 37.25290298461914
    assert gb_to_gib(1024) * (1 << 30) == pytest.approx(1024e9)


def test_bucket_config_mapping():
    c = load_anolis(BUCKET)
    assert c.kind == "bucket_analysis" and c.scope == "global" and c.block_tokens == 16 and c.alpha == 0.8
    assert [(p.bucket.lo, p.bucket.hi) for p in c.pools] == [(0, 64), (64, None)]
    d = c.pools[0].deployment
    assert (d.cards, d.gpus_per_node, d.machines, d.tp, d.kv_dtype) == (2, 2, 1, 1, "fp16")
    assert d.kv_gib_per_card == 37.25290298461914  # hbm_kv_gb_per_card 40 (GB = 1e9 bytes)
    assert c.pools[0].tiers[1].label == "HBM+1T per Machine"
    assert c.pools[0].tiers[1].extra_bytes_per_machine == 1000 * 10**9
    assert (c.pools[0].target_tps, c.pools[0].baseline_per_card_tps) == (400.0, 100.0)
    # KV bytes per token: 2 x kv_cache_layer_count 4 x 2 heads x 64 x 2 bytes = 2048
    from sim.config.kv_sizes import kv_bytes_per_token_total
    assert kv_bytes_per_token_total(c.model, "fp16") == 2048
    allp = all_pool(c)
    assert (allp.cards, allp.machines, allp.kv_gib_per_card) == (4, 2, d.kv_gib_per_card)


def test_agent_config_mapping_gpu_memory():
    c = load_anolis(AGENT)
    assert c.kind == "multi_agent"
    h = c.heuristic
    assert (h["concurrent_sessions"], h["shared_prefix_tokens"], h["new_tokens_per_turn"],
            h["turns_per_session"], h["curve"], h["zipf_s"], h["policy_efficiency"]) == \
        (64, 4096, 512, 4, "zipf_harmonic", 1.3, 0.6)
    # population: 4096 blocks x 16 tokens over one session's context (mean history 768 + 512 new)
    assert h["population"] == pytest.approx(4096 * 16 / (768 + 512))
    # gpu_memory_gb_per_card 96 - weights 1e9 params x 2 B / tp 1 (2 GB) - reserve 4 GB = 90 GB
    assert c.pools[0].deployment.kv_gib_per_card == pytest.approx(90e9 / 2**30)


@pytest.mark.parametrize("edit, key", [
    (lambda d: d["model_profile"].update(foo=1), "model_profile.foo: unknown key"),
    (lambda d: d["bucket_deployments"][1].update(hbm_kv_gb_per_machine=1),
     "bucket_deployments[1].hbm_kv_gb_per_machine"),
    (lambda d: d["bucket_deployments"][0].pop("accelerator_count"), "bucket_deployments[0].accelerator_count: missing"),
    (lambda d: d["bucket_deployments"][0]["extra_capacity_tiers"][0].update(size=1),
     "bucket_deployments[0].extra_capacity_tiers[0].size: unknown key"),
    (lambda d: d.update(include_output_kvcache=True), "include_output_kvcache"),
    (lambda d: d.update(window=3), "window: unknown key"),
    (lambda d: d["model_profile"].pop("n_layers"), "model_profile.n_layers: missing key"),
])
def test_bad_bucket_config_one_line(tmp_path, edit, key):
    doc = json.loads(BUCKET.read_text())
    edit(doc)
    p = _write(tmp_path, doc)
    with pytest.raises(InputError) as e:
        load_anolis(p)
    assert key in str(e.value) and str(p) in str(e.value.where) and "\n" not in str(e.value)


def test_bad_agent_config_refused(tmp_path):
    doc = json.loads(AGENT.read_text())
    doc["heuristic_multi_agent"]["policy_efficiency"]["strict_prefix_upper_bound"] = 0.9
    with pytest.raises(InputError, match="strict_prefix_upper_bound"):
        load_anolis(_write(tmp_path, doc))


def test_cli_refusal_exit_2(tmp_path, capsys):
    doc = json.loads(BUCKET.read_text())
    doc["model_profile"]["bogus"] = 1
    p = _write(tmp_path, doc)
    rc = main(["oracle", "--trace", str(TRACE), "--from-json", str(p), "--output-dir", str(tmp_path / "o"),
               "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "model_profile.bogus" in err[0] and str(p) in err[0]
    assert not (tmp_path / "o").exists()
    rc = main(["oracle", "--trace", str(TRACE), "--from-json", str(BUCKET), "--cards", "4",
               "--output-dir", str(tmp_path / "o"), "--quiet"])
    assert rc == 2 and "--cards" in capsys.readouterr().err


def test_wrong_config_kind_refused(tmp_path, capsys):
    rc = main(["estimate", "--from-json", str(BUCKET)])
    assert rc == 2 and "not an openanolis multi-agent config" in capsys.readouterr().err
    rc = main(["oracle", "--trace", str(TRACE), "--from-json", str(AGENT), "--output-dir", str(tmp_path / "o")])
    assert rc == 2 and "not an openanolis bucket-analysis config" in capsys.readouterr().err


def test_anolis_trace_rows():
    assert sniff_format(TRACE) == "anolis"
    w, st = load_trace(TRACE)
    assert list(w.session_id) == [0, 1, 0, 1, 2]  # c1 -> c1b, c2 -> c2b, c3
    assert list(w.turn) == [0, 0, 1, 1, 0]
    assert list(w.input_tokens) == [48, 40, 80, 64, 33] and list(w.output_tokens) == [10, 8, 12, 5, 0]
    assert w.arrival_ms[4] - w.arrival_ms[0] == 4500.0  # ISO times, ms
    ids = [list(w.block_ids[w.block_offsets[i]:w.block_offsets[i + 1]]) for i in range(len(w))]
    assert ids[0][:2] == ids[1][:2] == ids[4][:2]  # the shared "s0,s1" prefix, string or list form
    assert ids[2][:3] == ids[0] and ids[3][:3] == ids[1]
    assert any("8 distinct hash ids" in n for n in st.notes)


def test_oracle_from_json_files(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["oracle", "--trace", str(TRACE), "--from-json", str(BUCKET), "--output-dir", str(out),
                 "--quiet"]) == 0
    hit = {r["bucket"]: r for r in _csv(out / "hit_summary.csv")}
    summ = {r["Bucket"]: r for r in _csv(out / "summary.csv")}
    assert list(summ) == ["all", "0-64", "64+"]
    for b, r in summ.items():
        assert r["HBM Strict-Prefix Hit Rate"] == hit[b]["strict_prefix_opt_hit_rate"]
        assert r["HBM LRU Hit Rate"] == hit[b]["lru_hit_rate"]
        assert r["Content Upper Bound Hit Rate"] == hit[b]["content_hit_rate"]
    # 2 cards x 40 GB per bucket; all = both buckets
    assert summ["0-64"]["HBM KVCache Total (GB)"] == "80.0" and summ["all"]["HBM KVCache Total (GB)"] == "160.0"
    assert hit["0-64"]["capacity_gib"] == str(round(2 * gb_to_gib(40), 3))
    # planning: TPS gain 1 / (1 - alpha h), min cards meet the bucket's own target
    r = summ["0-64"]
    h = float(r["HBM Strict-Prefix Hit Rate"])
    assert float(r["HBM Strict-Prefix TPS Gain"]) == pytest.approx(1 / (1 - 0.8 * h), abs=1e-5)
    assert r["Target Total TPS"] == "400.0" and int(r["HBM Strict-Prefix Min Cards for Target Total TPS"]) >= 1
    tiers = _csv(out / "tier_summary.csv")
    t0 = [t for t in tiers if t["bucket"] == "0-64"]
    assert t0[0]["strict_prefix_opt_gain_vs_previous_tier_share"] == ""
    assert float(t0[1]["strict_prefix_opt_gain_vs_previous_tier_share"]) == pytest.approx(
        float(t0[1]["strict_prefix_opt_hit_rate"]) - float(t0[0]["strict_prefix_opt_hit_rate"]), abs=2e-6)
    assert summ["0-64"]["HBM+1T per Machine Strict-Prefix Hit Rate"] == t0[1]["strict_prefix_opt_hit_rate"]
    meta = json.loads((out / "metadata.json").read_text())
    assert "10^9" in meta["openanolis"]["units"] and meta["openanolis"]["kind"] == "bucket_analysis"


def test_plan_and_calibrate_from_json(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["plan", "--trace", str(TRACE), "--from-json", str(BUCKET), "--output-dir", str(out),
                 "--quiet"]) == 0
    rows = {r["bucket"]: r for r in _csv(out / "planning_strict_prefix.csv")}
    assert rows["0-64"]["target_tps"] == "400.0" and rows["all"]["target_tps"] == "800.0"
    assert all(r["feasible"] == "True" for r in rows.values())
    out = tmp_path / "c"
    assert main(["calibrate", "estimator", "--trace", str(TRACE), "--from-json", str(BUCKET),
                 "--output-dir", str(out), "--quiet"]) == 0
    trials = _csv(out / "calibration_trials.csv")
    cal = json.loads((out / "calibrated_config.json").read_text())
    for pool, fitted in cal["pools"].items():
        mine = [t for t in trials if t["bucket"] == pool]
        curve = [t for t in mine if t["stage"] == "curve"]
        sessions = len(np.unique(np.round(np.geomspace(1, 1e5, 41))))  # calibrate's session grid (39 values)
        assert len(curve) == 3 * sessions * 24  # shared shares x sessions x (linear + 8 betas + 15 zipf)
        assert len(mine) - len(curve) == 41  # policy_efficiency 0, 0.025, ..., 1
        best = min(float(t["rmse_strict"]) for t in curve)
        assert best <= fitted["residual"]["optimum_rmse"] + 1e-9
        assert sum(t["best"] == "True" for t in mine) == 2


def test_estimate_from_json_files(tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["estimate", "--from-json", str(AGENT), "--output-dir", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for f in ("heuristic_summary.csv", "heuristic_tier_summary.csv", "heuristic_report.en.md",
              "heuristic_report.zh.md", "estimate.json", "planning_estimate.csv"):
        assert (out / f).exists(), f
    s = _csv(out / "heuristic_summary.csv")[0]
    hbm = res["tiers"][0]
    assert s["Scenario"] == "1x2" and float(s["HBM Strict-Prefix Hit Rate (Estimate)"]) == hbm["hit_rate_optimum"]
    t = _csv(out / "heuristic_tier_summary.csv")
    assert [r["Capacity Tier"] for r in t] == ["HBM", "HBM+1T per Machine"]
    assert float(t[1]["Strict-Prefix Gain vs Previous Tier"]) == pytest.approx(
        res["tiers"][1]["hit_rate_optimum"] - hbm["hit_rate_optimum"])
    assert float(t[0]["KVCache Total (GB)"]) == pytest.approx(2 * 90, abs=0.02)
    en = (out / "heuristic_report.en.md").read_text()
    zh = (out / "heuristic_report.zh.md").read_text()
    assert "## Formulas" in en and "## Uncertainty bounds" in en and "10^9" in en
    assert "## 公式" in zh and "## 不确定性边界" in zh


def test_anolis_trace_bad_row(tmp_path):
    lines = TRACE.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["timestamp"] = "yesterday"
    p = tmp_path / "t.jsonl"
    p.write_text("\n".join([lines[0], json.dumps(bad), *lines[2:]]) + "\n")
    w, st = load_trace(p, "anolis")
    assert len(w) == 4 and sum(st.rejected.values()) == 1
    with pytest.raises(InputError, match="line 2.*neither a number nor ISO-8601"):
        load_trace(p, "anolis", strict=True)
