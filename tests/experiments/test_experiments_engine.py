"""Sweep engine on the local backend: end to end, failures, resume after a crash, CLI."""
import csv
import json
from pathlib import Path

import pytest
import yaml

import main
from experiments.engine import expand, run_sweep
from experiments.metrics import WALL_CLOCK_COLUMNS
from experiments.spec import load_spec
from sim.errors import InputError
from sim.modes.runner import run_mode
from trace.source import workload_from_config

# one worker, HBM only: a single LRU cache, so hit rate cannot drop as it grows
BASE = {"set": {"model.name": "llama-3-8b", "model.tp": 1, "hardware.gpus_per_node": 1,
                "hardware.dram.capacity_gib": 0, "hardware.ssd.capacity_gib": 0}}
TINY = {"synthetic": {"kind": "multi_turn", "requests": 150, "sessions": 15}}


def _write(tmp_path, body, name="sweep.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


def _four_point(tmp_path) -> Path:
    return _write(tmp_path, {"name": "four", "base": BASE, "workload": TINY, "timing": False,
                             "metrics": ["hit_rate"],
                             "axes": {"policies.eviction": ["lru", "fifo"], "kv_capacity_tokens": [2000, 8000]}})


def _rows(d: Path) -> list[dict]:
    with (d / "points.csv").open() as f:
        return list(csv.DictReader(f))


def _sim_columns(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in WALL_CLOCK_COLUMNS}


def test_four_point_sweep_end_to_end(tmp_path):
    out = tmp_path / "res"
    sweep = load_spec(_four_point(tmp_path))
    res = run_sweep(sweep, out_dir=out, workers=2)
    assert (res.total, res.ran, res.reused, res.failed) == (4, 4, 0, 0)
    rows = _rows(out)
    assert [(r["policies.eviction"], r["kv_capacity_tokens"]) for r in rows] == \
        [("lru", "2000"), ("lru", "8000"), ("fifo", "2000"), ("fifo", "8000")]
    for col in ("point_id", "seed", "config_hash", "status", "error", "hit_rate", "block_hit_rate", "hbm_hit_rate",
                "ttft_p50_ms", "ttft_p99_ms", "tpot_mean_ms", "slo_attainment", "throughput_tokens_s", "evictions"):
        assert col in rows[0], col
    assert all(r["status"] == "ok" and r["seed"] == "42" for r in rows)
    for r in rows:  # the full report of every point, with its sweep coordinates
        rep = json.loads((out / "points" / f"{r['point_id']}.json").read_text())
        assert rep["config_hash"] == r["config_hash"] and rep["sweep"]["axes"]["policies.eviction"] == \
            r["policies.eviction"]
        assert float(r["hit_rate"]) == rep["metrics"]["hit_rate"]
    # LRU in one cache: more capacity never hurts; both policies see the same prefix reuse
    assert float(rows[1]["hit_rate"]) >= float(rows[0]["hit_rate"]) > 0
    # a point equals the same run made directly (the sweep passes the config through untouched)
    p = expand(sweep)[1]
    w, _ = workload_from_config(p.config)
    direct = run_mode(p.config, "single", workload=w, policies=["lru"], timing=False)
    assert direct["metrics"]["hit_rate"] == float(rows[1]["hit_rate"])
    assert direct["config_hash"] == rows[1]["config_hash"]
    # one workload: each worker process built it at most once
    assert res.workload_loads and all(v == 1 for v in res.workload_loads.values())
    meta = json.loads((out / "sweep.json").read_text())
    assert len(meta["points"]) == 4 and "finished" in meta


def test_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    # 8 tokens hold no 16-token block: that point fails with the simulator's message
    spec = _write(tmp_path, {"base": BASE, "workload": TINY, "timing": False,
                             "axes": {"kv_capacity_tokens": [8, 4000]}})
    res = run_sweep(load_spec(spec), out_dir=tmp_path / "r", workers=2)
    assert (res.ran, res.failed) == (2, 1)
    bad, good = _rows(tmp_path / "r")
    assert bad["status"] == "failed" and "holds no 16-token block" in bad["error"] and bad["hit_rate"] == ""
    assert good["status"] == "ok" and float(good["hit_rate"]) > 0
    doc = json.loads((tmp_path / "r" / "points" / f"{bad['point_id']}.json").read_text())
    assert "Traceback" in doc["traceback"] and doc["config_hash"] == bad["config_hash"]


def test_resume_after_a_crash_runs_only_the_rest(tmp_path):
    out = tmp_path / "res"
    spec = _four_point(tmp_path)

    class Crash(KeyboardInterrupt):
        pass

    def crash_after_two(st):
        if st.done >= 2:
            raise Crash

    with pytest.raises(Crash):
        run_sweep(load_spec(spec), out_dir=out, workers=1, progress=crash_after_two)
    first = {r["point_id"]: r for r in _rows(out)}
    assert len(first) == 2 and all(r["status"] == "ok" for r in first.values())
    assert "interrupted" in json.loads((out / "sweep.json").read_text())
    mtimes = {pid: (out / "points" / f"{pid}.json").stat().st_mtime_ns for pid in first}

    with pytest.raises(InputError, match="--resume"):  # never silently mixes two runs
        run_sweep(load_spec(spec), out_dir=out, workers=1)
    res = run_sweep(load_spec(spec), out_dir=out, workers=2, resume=True)
    assert (res.total, res.reused, res.ran, res.failed) == (4, 2, 2, 0)
    assert {pid: (out / "points" / f"{pid}.json").stat().st_mtime_ns for pid in first} == mtimes
    rows = _rows(out)
    assert len(rows) == 4 and [int(r["index"]) for r in rows] == [0, 1, 2, 3]
    # the resumed result equals an uninterrupted sweep
    fresh = run_sweep(load_spec(spec), out_dir=tmp_path / "fresh", workers=2)
    assert fresh.ran == 4
    assert [_sim_columns(r) for r in rows] == [_sim_columns(r) for r in _rows(tmp_path / "fresh")]


def test_resume_from_a_partial_points_csv_and_rerun_failures(tmp_path):
    out = tmp_path / "res"
    spec = _four_point(tmp_path)
    run_sweep(load_spec(spec), out_dir=out, workers=2)
    rows = _rows(out)
    # points.csv cut to two rows, one of them edited to "failed": it is not trusted; the four
    # verified point files are reused and points.csv is rebuilt from them
    rows[1]["status"], rows[1]["error"] = "failed", "simulated"
    with (out / "points.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[:2])
    res = run_sweep(load_spec(spec), out_dir=out, workers=2, resume=True)
    assert (res.reused, res.ran, res.failed) == (4, 0, 0)
    assert any("disagreed" in n for n in res.notes)
    assert [r["status"] for r in _rows(out)] == ["ok"] * 4
    # a failed point's file is not reused: it runs again
    pid = rows[2]["point_id"]
    doc = json.loads((out / "points" / f"{pid}.json").read_text())
    doc["sweep"]["status"] = "failed"
    data = (json.dumps(doc) + "\n").encode()
    (out / "points" / f"{pid}.json").write_bytes(data)
    sums = json.loads((out / "checksums.json").read_text())
    sums["points"][pid] = __import__("hashlib").sha256(data).hexdigest()
    (out / "checksums.json").write_text(json.dumps(sums))
    res = run_sweep(load_spec(spec), out_dir=out, workers=2, resume=True)
    assert (res.reused, res.ran, res.failed, res.damaged) == (3, 1, 0, 0)
    # a changed base config invalidates finished points (their config hash no longer matches)
    body = yaml.safe_load(spec.read_text())
    body["base"]["set"]["hardware.ssd.capacity_gib"] = 1
    res = run_sweep(load_spec(_write(tmp_path, body, "changed.yaml")), out_dir=out, workers=2, resume=True)
    assert (res.reused, res.ran) == (0, 4) and any("dropped" in n for n in res.notes)


@pytest.mark.slow
def test_single_lru_matches_the_oracle_lru_bound(tmp_path):
    # same capacity arithmetic in both modes: the single-node LRU replay of one HBM pool is the oracle's LRU
    spec = _write(tmp_path, {"base": BASE, "workload": TINY, "timing": False,
                             "axes": {"method": {"zip": {"mode": ["single", "oracle"]}, "labels": ["lru", "oracle"]},
                                      "kv_capacity_tokens": [1000, 4000]}})
    res = run_sweep(load_spec(spec), out_dir=tmp_path / "r", workers=2)
    assert res.failed == 0
    rows = {(r["method"], r["kv_capacity_tokens"]): r for r in _rows(tmp_path / "r")}
    for cap in ("1000", "4000"):
        lru, orc = rows[("lru", cap)], rows[("oracle", cap)]
        assert float(orc["lru_hit_rate"]) == pytest.approx(float(lru["hit_rate"]), abs=1e-12)
        assert float(lru["hit_rate"]) <= float(orc["hit_rate"]) <= float(orc["content_hit_rate"])
        assert orc["mode"] == "oracle" and orc["capacity_pool_blocks"] == str(int(cap) // 16)


def test_cli_sweep_plot_and_errors(tmp_path, capsys):
    spec = _four_point(tmp_path)
    out = tmp_path / "cli"
    assert main.main(["sweep", str(spec), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    assert (out / "points.csv").exists() and (out / "plots" / "hit_rate.png").exists()
    assert main.main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main.main(["sweep", str(spec), "--out", str(out), "--resume", "--quiet", "--no-plot"]) == 0
    assert main.main(["plot", str(out)]) == 0
    assert "hit_rate.png" in capsys.readouterr().out
    bad = _write(tmp_path, {"mode": "no_such_mode"}, "bad.yaml")
    assert main.main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "mode 'no_such_mode' is not available" in err and "bad.yaml" in err and "Traceback" not in err
    assert main.main(["plot", str(tmp_path)]) == 2
    assert "not a sweep directory" in capsys.readouterr().err
    assert main.main(["sweep", str(spec), "--out", str(tmp_path / "x"), "--workers", "0"]) == 2


def test_parquet_copy_of_points_csv(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="points.parquet is written only when pyarrow is installed")
    out = tmp_path / "res"
    res = run_sweep(load_spec(_four_point(tmp_path)), out_dir=out, workers=2)
    t = pq.read_table(res.paths["parquet"])
    rows = _rows(out)
    assert t.num_rows == 4 and t.schema.field("hit_rate").type == "double"
    assert t.column("hit_rate").to_pylist() == [float(r["hit_rate"]) for r in rows]
    assert t.column("policies.eviction").to_pylist() == ["lru", "lru", "fifo", "fifo"]
