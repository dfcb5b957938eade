"""The oracle / plan / estimate / calibrate / audit subcommands as a user runs them."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import main as cli
from tests.conftest import DATA

MOON = str(DATA / "mooncake_small.jsonl")
BAIL = str(DATA / "bailian_synth.jsonl")


def rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_oracle_writes_every_output(tmp_path, capsys):
    out = tmp_path / "o"
    rc = cli.main(["oracle", "--trace", MOON, "--trace-format", "mooncake", "--model", "llama-3-8b",
                   "--kv-budget-gb", "2", "--output-dir", str(out), "--quiet", "--set", "model.kv_dtype=fp16"])
    assert rc == 0
    for name in ("hit_summary.csv", "tier_summary.csv", "metadata.json", "details.json", "report.md",
                 "report.zh.md"):
        assert (out / name).is_file(), name
    hs = rows(out / "hit_summary.csv")
    header = list(hs[0])
    assert header[0] == "bucket" and hs[0]["bucket"] == "all"
    for word in ("content", "relaxed", "strict_prefix_opt", "lru"):
        assert any(word in h and h.endswith("_hit_rate") for h in header), word
    assert [r["bucket"] for r in hs] == ["all", "0-32K", "32K-64K", "64K-128K", "128K+"]
    a = hs[0]
    vals = [float(a[c]) for c in ("content_hit_rate", "relaxed_hit_rate", "strict_prefix_opt_hit_rate",
                                  "lru_hit_rate")]
    assert vals == sorted(vals, reverse=True)
    # llama-3-8b fp16: 131,072 B/token -> 512-token blocks of 64 MiB: 2 GiB = 32 blocks.
    assert a["capacity_blocks"] == "32" and float(a["capacity_gib"]) == 2.0
    assert a["bottleneck"] in ("capacity", "policy", "none")
    ts = rows(out / "tier_summary.csv")
    assert list(ts[0])[:2] == ["bucket", "tier"] and {r["tier"] for r in ts} >= {"HBM", "HBM+1T per machine"}
    det = json.loads((out / "details.json").read_text())
    assert det["mode"] == "oracle" and det["metrics"]["hit_rate"] == pytest.approx(vals[2], abs=1e-6)
    assert {"config_hash", "seed", "workload", "wall_s", "policies"} <= set(det)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["load"]["loaded"] > 0 and "rejected" in meta["load"]
    assert "严格前缀最优" in (out / "report.zh.md").read_text(encoding="utf-8")


def test_oracle_bailian_cards_and_session_scope(tmp_path):
    out = tmp_path / "b"
    rc = cli.main(["oracle", "--trace", BAIL, "--model", "llama-3-8b", "--gpu", "h100-sxm", "--cards", "1", "--tp", "1",
                   "--buckets", "1K", "--scope", "session", "--tiers", "", "--output-dir", str(out), "--quiet"])
    assert rc == 0
    hs = rows(out / "hit_summary.csv")
    assert [r["bucket"] for r in hs] == ["all", "0-1K", "1K+"]
    assert all(r["strict_prefix_proven_optimal"] == "True" for r in hs)
    assert len(rows(out / "tier_summary.csv")) == 3


@pytest.mark.parametrize("argv, msg", [
    (["--model", "llama-3-8b"], "--kv-budget-gb"),
    (["--model", "llama-3-8b", "--kv-budget-gb", "2", "--buckets", "64K,32K"], "increase"),
    (["--model", "llama-3-8b", "--kv-budget-gb", "1,2"], "buckets"),
    (["--model", "nope-7b", "--kv-budget-gb", "2"], "unknown model"),
])
def test_oracle_bad_input_exits_2(tmp_path, capsys, argv, msg):
    rc = cli.main(["oracle", "--trace", MOON, "--output-dir", str(tmp_path), "--quiet", *argv])
    assert rc == 2
    assert msg in capsys.readouterr().err


def test_plan_writes_both_tables(tmp_path):
    out = tmp_path / "p"
    rc = cli.main(["plan", "--trace", BAIL, "--model", "llama-3-8b", "--gpu", "h100-sxm", "--target-tps",
                   "50000", "--baseline-per-card-tps", "4000", "--buckets", "none", "--output-dir", str(out),
                   "--quiet"])
    assert rc == 0
    s, lru = rows(out / "planning_strict_prefix.csv"), rows(out / "planning_lru.csv")
    assert s[0]["bucket"] == "all" and int(s[0]["cards"]) <= int(lru[0]["cards"]) <= 13
    assert float(s[0]["total_tps"]) >= 50000


def test_estimate_json_and_from_calibration(tmp_path, capsys):
    rc = cli.main(["estimate", "--model", "llama-3-8b", "--kv-budget-gb", "1", "--sessions", "10",
                   "--shared-prefix-tokens", "1000", "--new-tokens-per-turn", "100", "--turns", "3",
                   "--policy-efficiency", "lru_like", "--json", "--tiers", ""])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["params"]["policy_efficiency"] == 0.6
    assert res["tiers"][0]["hit_rate_optimum"] == pytest.approx(1100 / 1200)  # 1 GiB holds everything
    out = tmp_path / "c"
    rc = cli.main(["calibrate", "--trace", BAIL, "--model", "llama-3-8b", "--kv-budget-gb", "0.05",
                   "--buckets", "none", "--points", "4", "--output-dir", str(out), "--quiet"])
    assert rc == 0
    cal = json.loads((out / "calibrated_config.json").read_text())
    assert cal["pools"]["all"]["residual"]["optimum_rmse"] < 0.1
    assert (out / "recommended_heuristic_config.json").is_file()
    capsys.readouterr()
    rc = cli.main(["estimate", "--from-json", str(out / "recommended_heuristic_config.json"), "--model",
                   "llama-3-8b", "--kv-budget-gb", "0.05", "--json", "--tiers", ""])
    assert rc == 0
    est = json.loads(capsys.readouterr().out)
    pt = [p for p in cal["pools"]["all"]["points"]]
    assert est["params"] == cal["pools"]["all"]["params"]
    assert any(abs(p["estimate_optimum"] - est["tiers"][0]["hit_rate_optimum"]) < 0.05 for p in pt)


def test_audit_ok_and_disagreement_exit_code(tmp_path, monkeypatch):
    out = tmp_path / "a"
    argv = ["audit", "--trace", BAIL, "--buckets", "none", "--sample", "40", "--small", "3",
            "--output-dir", str(out), "--quiet"]
    assert cli.main(argv) == 0
    rep = json.loads((out / "audit_report.json").read_text())
    assert rep["ok"] and rep["checks"] > 20 and not rep["disagreements"]

    import sim.oracle.audit as audit
    real = audit.compute_bounds

    def broken(acc, C, method="exact"):
        b = real(acc, C, method)
        b.tokens["lru"] += 1  # a planted bug must be caught
        return b

    monkeypatch.setattr(audit, "compute_bounds", broken)
    assert cli.main(argv) == 1
    rep = json.loads((out / "audit_report.json").read_text())
    assert any("LRU tokens" in d for d in rep["disagreements"])
