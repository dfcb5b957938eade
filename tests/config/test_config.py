"""Config layering, validation errors and the config hash."""
import re
import subprocess
import sys

import pytest

from sim.config import DEFAULT_CONFIG, Config, config_with, load_config
from sim.errors import InputError
from tests.conftest import ROOT


def test_default_config_loads_and_hash_is_stable():
    a, b = load_config(), load_config()
    assert a.hash() == b.hash()
    assert re.fullmatch(r"[0-9a-f]{12}", a.hash())
    assert load_config(overrides=["seed=7"]).hash() != a.hash()


def test_every_key_in_config_yaml_has_a_unit_comment():
    for n, line in enumerate(DEFAULT_CONFIG.read_text().splitlines(), 1):
        s = line.strip()
        if s.startswith("presets:"):
            break  # preset overlays repeat keys documented above
        if not s or s.startswith("#"):
            continue
        key, _, value = s.partition(":")
        if value.strip() == "" or value.strip().startswith("#"):
            continue  # a section header
        assert "#" in value, f"config.yaml:{n}: key {key!r} has no comment with its unit"


def _write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "yaml_text, expect",
    [
        ("hardware:\n  hbm:\n    capcity_gb: 3\n", r"hardware\.hbm\.capcity_gb: unknown key"),
        ("hardware:\n  hbm:\n    capacity_gib: -1\n", r"hardware\.hbm\.capacity_gib: .*greater than or equal to 0"),
        ("hardware:\n  dram:\n    bandwidth_gb_s: 0\n", r"hardware\.dram\.bandwidth_gb_s: .*greater than 0"),
        ("model:\n  tp: two\n", r"model\.tp: .*integer"),
        ("cluster:\n  gpus_per_rack: 60\n", r"gpus_per_rack=60 does not divide"),
        ("bogus_section: {}\n", r"bogus_section: unknown key"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, yaml_text, expect):
    p = _write(tmp_path, yaml_text)
    with pytest.raises(InputError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert str(p) in msg
    assert re.search(expect, msg), msg


def test_override_errors_name_the_flag():
    with pytest.raises(InputError, match=r"--set hardware.dram.bandwidth_gb_s=0"):
        load_config(overrides=["hardware.dram.bandwidth_gb_s=0"])
    with pytest.raises(InputError, match=r"^--set nope: unknown key$"):
        load_config(overrides=["nope.x=1"])
    with pytest.raises(InputError, match=r"^--set seeed: unknown key \(did you mean seed\?\)$"):
        load_config(overrides=["seeed=1"])
    with pytest.raises(InputError, match="KEY=VALUE"):
        load_config(overrides=["seed"])


def test_overrides_are_typed_by_schema():
    c = load_config(overrides=["hardware.hbm.capacity_gib=40", "cache.async_backup=true",
                               "policies.compare=[lru, arc]", "model.name=qwen3-32b"])
    assert c.hardware.hbm.capacity_gib == 40.0
    assert c.cache.async_backup is True
    assert c.policies.compare == ["lru", "arc"]
    assert c.model.name == "qwen3-32b"


def test_layer_order_file_preset_profile_set(tmp_path):
    cfg = _write(tmp_path, "seed: 1\npresets:\n  tiny:\n    seed: 2\n    synthetic: {requests: 10}\n")
    prof = _write(tmp_path, "hardware:\n  gpus_per_node: 4\n", "p.yaml")
    assert load_config(cfg).seed == 1
    c = load_config(cfg, preset="tiny")
    assert (c.seed, c.synthetic.requests) == (2, 10)
    c = load_config(cfg, preset="tiny", profile=prof, overrides=["hardware.gpus_per_node=2", "seed=3"])
    assert (c.seed, c.hardware.gpus_per_node, c.synthetic.requests) == (3, 2, 10)
    with pytest.raises(InputError, match="unknown preset 'nope'"):
        load_config(cfg, preset="nope")


def test_profile_rejects_unknown_section_and_key(tmp_path):
    bad = _write(tmp_path, "synthetic:\n  requests: 3\n", "p.yaml")
    with pytest.raises(InputError, match=r"p\.yaml: unknown section 'synthetic'"):
        load_config(profile=bad)
    bad = _write(tmp_path, "hardware:\n  hbm:\n    size: 3\n", "q.yaml")
    with pytest.raises(InputError, match=r"q\.yaml: hardware\.hbm\.size: unknown key"):
        load_config(profile=bad)


def test_shipped_presets_and_profiles_load():
    for preset in ("smoke", "dev", "prod-eval"):
        load_config(preset=preset)
    profiles = sorted((ROOT / "profiles").glob("*.yaml"))
    assert len(profiles) >= 2
    for p in profiles:
        load_config(profile=p)


def test_config_with_revalidates():
    c = config_with(Config(), {"hardware.hbm.capacity_gib": 3})
    assert c.hardware.hbm.capacity_gib == 3
    with pytest.raises(InputError):
        config_with(Config(), {"hardware.hbm.capacity_gib": -3})


def test_cli_bad_config_is_one_line_exit_2():
    r = subprocess.run(
        [sys.executable, "main.py", "run", "--quiet", "--no-plot", "--set", "hardware.ssd.bandwidth_gb_s=0"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "hardware.ssd.bandwidth_gb_s" in lines[0], r.stderr
