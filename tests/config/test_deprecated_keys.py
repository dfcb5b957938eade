"""Config keys renamed to the naming scheme (`*_gb` -> `*_gib`) still work, with one notice per key per run."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experiments.spec import load_spec
from sim.config import load_config, schema

ROOT = Path(__file__).resolve().parents[2]
NOTICE = "warning: hardware.hbm.capacity_gb is deprecated; use hardware.hbm.capacity_gib (same value, GiB)"


@pytest.fixture(autouse=True)
def _fresh_run(monkeypatch):
    monkeypatch.setattr(schema, "_warned", set())  # each test is one "run"


def _notices(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if "deprecated" in ln]


def test_every_deprecated_key_maps_to_a_current_key():
    cfg = load_config().model_dump()
    for old, new in schema.DEPRECATED.items():
        node = cfg
        for part in new.split("."):
            node = node[part]
        assert old.rsplit(".", 1)[0] == new.rsplit(".", 1)[0]  # only the last part changes (see _merge)
        assert old.endswith("_gb") and new.endswith("_gib")


def _write(tmp_path, name: str, data: dict) -> Path:
    f = tmp_path / name
    f.write_text(yaml.safe_dump(data))
    return f


def test_old_names_in_file_profile_and_set_give_the_same_config_and_one_line_each(tmp_path, capsys):
    def files(sfx: str) -> tuple[Path, Path]:
        cfg = _write(tmp_path, f"c{sfx}.yaml", {
            "hardware": {"hbm": {f"capacity{sfx}": 2.5}, f"runtime_reserve{sfx}": 3.0},
            "presets": {"p": {"hardware": {"hbm": {f"capacity{sfx}": 4.0}}}}})
        return cfg, _write(tmp_path, f"p{sfx}.yaml", {"hardware": {"dram": {f"capacity{sfx}": 7.0}}})

    sets = ["pd.kv_capacity{}=1.5", "hardware.hbm.capacity{}=6"]
    cfg_old, prof_old = files("_gb")
    old = [load_config(cfg_old, preset="p", profile=prof_old, overrides=[s.format("_gb") for s in sets])
           for _ in range(2)]  # two loads in one run: still one line per key
    lines = _notices(capsys)
    cfg_new, prof_new = files("_gib")
    new = load_config(cfg_new, preset="p", profile=prof_new, overrides=[s.format("_gib") for s in sets])
    assert old[0].hardware.hbm.capacity_gib == 6.0 and old[0].hardware.runtime_reserve_gib == 3.0
    assert old[0].hardware.dram.capacity_gib == 7.0 and old[0].pd.kv_capacity_gib == 1.5
    assert old[0].hash() == old[1].hash() == new.hash()
    assert sorted(lines) == sorted([
        NOTICE,
        "warning: hardware.runtime_reserve_gb is deprecated; use hardware.runtime_reserve_gib (same value, GiB)",
        "warning: hardware.dram.capacity_gb is deprecated; use hardware.dram.capacity_gib (same value, GiB)",
        "warning: pd.kv_capacity_gb is deprecated; use pd.kv_capacity_gib (same value, GiB)"])
    assert _notices(capsys) == []  # the new names print nothing


def test_sweep_spec_with_old_axis_set_and_plot_keys(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({
        "mode": "single", "timing": False,
        "base": {"set": {"hardware.dram.capacity_gb": 0}},
        "axes": {"hardware.hbm.capacity_gb": [1, 2]},
        "metrics": ["hit_rate"],
        "plots": [{"y": ["hit_rate"], "x": "hardware.hbm.capacity_gb"}]}))
    sw = load_spec(spec)
    assert [a.name for a in sw.axes] == ["hardware.hbm.capacity_gib"]
    assert sw.base_config().hardware.dram.capacity_gib == 0
    assert sw.spec.plots[0].x == "hardware.hbm.capacity_gib"
    assert len(_notices(capsys)) == 2


def test_the_repo_itself_uses_no_deprecated_key(capsys):
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    for preset in [None, *raw.get("presets", {})]:
        load_config(preset=preset)
    for prof in sorted((ROOT / "profiles").glob("*.yaml")):
        load_config(profile=prof)
    for spec in sorted((ROOT / "experiments" / "specs").glob("*.yaml")):
        load_spec(spec)
    assert _notices(capsys) == []
