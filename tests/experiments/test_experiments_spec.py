"""Sweep specs: schema errors name the key and the file, axes expand as written, standard specs load."""
from pathlib import Path

import pytest
import yaml

from experiments.axes import parse_axis
from experiments.engine import expand
from experiments.spec import load_spec
from sim.errors import InputError
from tests.conftest import ROOT as REPO

SPECS = REPO / "experiments" / "specs"
BASE = {"set": {"model.name": "llama-3-8b", "model.tp": 1, "hardware.gpus_per_node": 1,
                "hardware.dram.capacity_gib": 0, "hardware.ssd.capacity_gib": 0}}


def _spec(tmp_path, body: dict | str, name="s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(body if isinstance(body, str) else yaml.safe_dump(body, sort_keys=False))
    return p


def _err(path, preset=None) -> str:
    with pytest.raises(InputError) as ei:
        load_spec(path, preset)
    return str(ei.value)


def test_unknown_top_level_key_names_key_file_and_line(tmp_path):
    p = _spec(tmp_path, "name: x\nmode: single\naxis:\n  policies.eviction: [lru]\n")
    msg = _err(p)
    assert "unknown key 'axis'" in msg and f"{p}:3" in msg


def test_unknown_nested_keys_name_their_path(tmp_path):
    msg = _err(_spec(tmp_path, {"base": {"conf": "config.yaml"}}))
    assert "unknown key 'conf' in base" in msg and "s.yaml:2" in msg
    msg = _err(_spec(tmp_path, {"workloads": {"a": {"tracee": "x.jsonl"}}}))
    assert "unknown key 'tracee' in workloads.a" in msg
    msg = _err(_spec(tmp_path, {"workload": {"synthetic": {"requets": 10}}}))
    assert "unknown synthetic key 'requets'" in msg and "s.yaml:3" in msg


def test_unknown_axis_and_set_keys_are_errors_with_a_suggestion(tmp_path):
    msg = _err(_spec(tmp_path, {"axes": {"hardware.hbm.capacty_gb": [1, 2]}}))
    assert "unknown axis key 'hardware.hbm.capacty_gb'" in msg
    assert "did you mean 'hardware.hbm.capacity_gib'" in msg and "s.yaml" in msg
    msg = _err(_spec(tmp_path, {"base": {"set": {"model.nam": "x"}}}))
    assert "unknown config key 'model.nam'" in msg
    msg = _err(_spec(tmp_path, {"axes": {"hardware.hbm.capacity_gib": {"start": 1, "stop": 4, "nun": 3}}}))
    assert "unknown range key 'nun'" in msg


def test_unknown_key_in_a_preset_overlay_is_an_error_even_unused(tmp_path):
    p = _spec(tmp_path, {"name": "x", "presets": {"smoke": {"workload": {"limt": 3}}}})
    msg = _err(p)
    assert "presets.smoke" in msg and "unknown key 'limt'" in msg


def test_unknown_metric_and_bad_plot_axis(tmp_path):
    assert "unknown metric 'hitrate'" in _err(_spec(tmp_path, {"metrics": ["hitrate"]}))
    msg = _err(_spec(tmp_path, {"axes": {"policies.eviction": ["lru"]},
                                "plots": [{"y": ["hit_rate"], "x": "capacity"}]}))
    assert "'capacity' is not an axis" in msg


def test_unregistered_mode_fails_naming_the_mode(tmp_path):
    msg = _err(_spec(tmp_path, {"mode": "warp_drive"}))
    assert "mode 'warp_drive' is not available" in msg and "single" in msg and "oracle" in msg
    msg = _err(_spec(tmp_path, {"axes": {"m": {"zip": {"mode": ["single", "warp_drive"]}}}}))
    assert "'warp_drive'" in msg


def test_bad_axis_value_fails_before_running(tmp_path):
    p = _spec(tmp_path, {"base": BASE, "axes": {"hardware.hbm.capacity_gib": [1, -2]}})
    s = load_spec(p)
    with pytest.raises(InputError) as ei:
        expand(s)
    assert "hardware.hbm.capacity_gib" in str(ei.value) and "s.yaml" in str(ei.value)


def test_ranges_lists_and_zip_expand_as_written():
    w = "spec.yaml:1"
    ax = parse_axis("kv_capacity_tokens", {"start": "1.0e4", "stop": 1e8, "num": 5, "log": True, "integer": True}, w)
    assert ax.values == [10_000, 100_000, 1_000_000, 10_000_000, 100_000_000] and ax.log
    ax = parse_axis("pd.decode_ratio", {"start": 1, "stop": 7, "step": 2}, w)
    assert ax.values == [1, 3, 5, 7] and not ax.log
    ax = parse_axis("network.jitter_cv", {"start": 0.0, "stop": 0.5, "num": 6}, w)
    assert ax.values == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]  # no 0.30000000000000004
    ax = parse_axis("hardware.hbm.capacity_gib", [1, 4, 16, 64], w)
    assert ax.log  # a list written as a geometric grid is plotted on a log axis
    assert not parse_axis("hardware.hbm.capacity_gib", [1, 2, 3], w).log
    ax = parse_axis("method", {"zip": {"mode": ["single", "oracle"], "policies.eviction": ["lru", "lru"]},
                               "labels": ["LRU", "optimum"]}, w)
    assert ax.values == ["LRU", "optimum"] and ax.assigns[1] == {"mode": "oracle", "policies.eviction": "lru"}
    with pytest.raises(InputError, match="differ in length"):
        parse_axis("m", {"zip": {"mode": ["single"], "policies.eviction": ["lru", "arc"]}}, w)
    with pytest.raises(InputError, match="repeats a value"):
        parse_axis("policies.eviction", ["lru", "lru"], w)
    with pytest.raises(InputError, match="cannot be an axis"):
        parse_axis("seed", [1, 2], w)


def test_product_zip_seeds_and_stable_ids(tmp_path):
    body = {"base": BASE, "workload": {"synthetic": {"requests": 50}}, "repeats": 2,
            "axes": {"policies.eviction": ["lru", "arc", "fifo"], "hardware.hbm.capacity_gib": [1, 2, 4]}}
    s = load_spec(_spec(tmp_path, body))
    pts = expand(s)
    assert len(pts) == 3 * 3 * 2
    assert [p.seed for p in pts[:2]] == [42, 43]  # base seed + repeat
    assert len({p.point_id for p in pts}) == len(pts)
    assert [p.point_id for p in pts] == [p.point_id for p in expand(load_spec(_spec(tmp_path, body, "t.yaml")))]
    assert pts[0].config.policies.eviction == "lru" and pts[0].config.hardware.hbm.capacity_gib == 1
    body["combine"] = "zip"
    body["seeds"] = [7]
    del body["repeats"]
    pts = expand(load_spec(_spec(tmp_path, body, "z.yaml")))
    assert [(p.axes["policies.eviction"], p.axes["hardware.hbm.capacity_gib"], p.seed) for p in pts] == \
        [("lru", 1, 7), ("arc", 2, 7), ("fifo", 4, 7)]


def test_derived_capacity_gives_floor_tokens_over_block(tmp_path):
    from sim.modes.common import NodeSetup

    body = {"base": BASE, "axes": {"kv_capacity_tokens": [1000, 16000, 100_000_000]}}
    for p, tokens in zip(expand(load_spec(_spec(tmp_path, body))), [1000, 16000, 100_000_000], strict=True):
        setup = NodeSetup.from_config(p.config, 16)
        assert setup.hbm_blocks == tokens // 16  # 62, 1000 (exact multiple), 6.25M


def test_preset_overlay_and_config_preset_fallback(tmp_path):
    body = {"base": BASE, "workload": {"synthetic": {"requests": 500}},
            "axes": {"hardware.hbm.capacity_gib": [1, 2, 4]},
            "presets": {"smoke": {"workload": {"synthetic": {"requests": 50}},
                                  "axes": {"hardware.hbm.capacity_gib": [1]}}}}
    p = _spec(tmp_path, body)
    s = load_spec(p, "smoke")
    pts = expand(s)
    assert len(pts) == 1 and pts[0].config.synthetic.requests == 50
    # a preset the spec does not define falls back to the config's preset of that name
    s = load_spec(p, "dev")
    assert s.spec.base.preset == "dev" and len(expand(s)) == 3
    assert "unknown preset 'nope'" in _err(p, "nope")


def test_several_workloads_need_a_workload_axis(tmp_path):
    wl = {"a": {"synthetic": {"requests": 10}}, "b": {"synthetic": {"requests": 20}}}
    assert "no axis sets `workload`" in _err(_spec(tmp_path, {"workloads": wl}))
    assert "workload 'c' is not defined" in _err(_spec(tmp_path, {"workloads": wl, "axes": {"workload": ["a", "c"]}}))


def test_standard_specs_load_with_and_without_smoke():
    from sim.modes.runner import MODES

    names = sorted(p.stem for p in SPECS.glob("*.yaml"))
    assert names == ["capacity_curve", "context", "network_variance", "pd_ratio", "policies", "profiles"]
    for name in names:
        for preset in (None, "smoke"):
            spec_mode = yaml.safe_load((SPECS / f"{name}.yaml").read_text()).get("mode", "single")
            if spec_mode not in MODES and spec_mode != "oracle":
                with pytest.raises(InputError, match=f"mode '{spec_mode}' is not available"):
                    load_spec(SPECS / f"{name}.yaml", preset)
                continue
            s = load_spec(SPECS / f"{name}.yaml", preset)
            n = len(expand(s))
            assert n >= 3, name
            if preset == "smoke":
                assert n <= 40, f"{name}: the smoke variant must stay small ({n} points)"


def test_policies_and_profiles_studies_cover_every_policy_and_profile():
    import sim.policies  # noqa: F401
    from sim.policies.base import REGISTRY

    s = load_spec(SPECS / "policies.yaml")
    pol = next(a for a in s.axes if a.name == "policies.eviction")
    assert sorted(pol.values) == sorted(REGISTRY)
    s = load_spec(SPECS / "profiles.yaml")
    profs = sorted(a["profile"] for ax in s.axes for a in ax.assigns)
    assert profs == sorted(f"profiles/{p.name}" for p in (REPO / "profiles").glob("*.yaml"))
