"""Sweep results are the same on Ray as locally; plots are written for line and bar layouts."""
import csv
from pathlib import Path

import pytest
import yaml

from experiments.engine import run_sweep
from experiments.metrics import WALL_CLOCK_COLUMNS
from experiments.plots import _human, plot_sweep
from experiments.spec import load_spec
from sim.errors import InputError

BASE = {"set": {"model.name": "llama-3-8b", "model.tp": 1, "hardware.gpus_per_node": 2,
                "hardware.dram.capacity_gib": 0.05, "hardware.ssd.capacity_gib": 0}}
TINY = {"synthetic": {"kind": "multi_turn", "requests": 120, "sessions": 12}}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(tmp_path, body, name="s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


def _rows(d: Path) -> list[dict]:
    with (d / "points.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in csv.DictReader(f)]


def test_ray_backend_gives_the_local_results(tmp_path):
    pytest.importorskip("ray", reason="ray is an optional extra (pip install 'ray>=2.9')")
    # timed runs with two seeds: the whole simulation (routing, timing, synthetic draws) must agree
    spec = _write(tmp_path, {"base": BASE, "workload": TINY, "timing": True, "seeds": [1, 2],
                             "axes": {"policies.eviction": ["lru", "s3fifo"]}})
    local = run_sweep(load_spec(spec), out_dir=tmp_path / "local", workers=2)
    ray_res = run_sweep(load_spec(spec), out_dir=tmp_path / "ray", workers=2, backend="ray")
    assert local.failed == ray_res.failed == 0 and ray_res.ran == 4
    a, b = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert a == b
    assert a[0]["ttft_p99_ms"] != "" and a[0]["hit_rate"] != a[1]["hit_rate"]  # seeds differ, timing ran


def test_ray_backend_missing_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    spec = _write(tmp_path, {"base": BASE, "workload": TINY, "timing": False, "axes": {"policies.eviction": ["lru"]}})
    with pytest.raises(InputError, match=r"pip install 'ray>=2.9'"):
        run_sweep(load_spec(spec), out_dir=tmp_path / "r", backend="ray")


def test_plots_lines_bars_and_skips(tmp_path):
    spec = _write(tmp_path, {"name": "p", "base": BASE, "workload": TINY, "timing": True,
                             "metrics": ["hit_rate", "ttft_p99_ms", "goodput_req_s"],
                             "axes": {"policies.eviction": ["lru", "fifo"],
                                      "hardware.hbm.capacity_gib": {"values": [0.05, 0.5], "log": True}},
                             "plots": [{"y": ["hit_rate"], "x": "hardware.hbm.capacity_gib",
                                        "series": "policies.eviction"},
                                       {"name": "bars", "y": ["hit_rate", "hbm_hit_rate"],
                                        "x": "policies.eviction", "series": "hardware.hbm.capacity_gib"},
                                       {"y": ["goodput_req_s"]}]})
    out = tmp_path / "r"
    run_sweep(load_spec(spec), out_dir=out, workers=2)
    paths, notes = plot_sweep(out)
    assert sorted(p.name for p in paths) == ["bars.png", "hit_rate.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000
    # a metric no point reports (single mode has no goodput) is named, not drawn empty
    assert len(notes) == 1 and "goodput_req_s" in notes[0]


def test_default_plots_one_per_metric(tmp_path):
    spec = _write(tmp_path, {"name": "d", "base": BASE, "workload": TINY, "timing": False,
                             "metrics": ["hit_rate", "evictions"], "axes": {"policies.eviction": ["lru", "arc"]}})
    run_sweep(load_spec(spec), out_dir=tmp_path / "r", workers=1)
    paths, notes = plot_sweep(tmp_path / "r")
    # the tiny workload evicts nothing: an all-zero plot is not drawn, a note says so
    assert [p.name for p in paths] == ["hit_rate.png"]
    assert notes == ["evictions: 0 at every finished point, nothing to draw"]


def test_tick_labels_are_compact():
    assert [_human(v) for v in (0.25, 4096, 10_000, 31622.78, 1e8, 2.5e12)] == \
        ["0.25", "4.1k", "10k", "31.6k", "100M", "2.5T"]
    assert [_human(v, binary=True) for v in (4096, 131072, 2**20)] == ["4K", "128K", "1M"]
