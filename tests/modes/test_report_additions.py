"""Every timed mode's report carries the same latency-reading keys: iteration_ms, recomputed prefixes,
tier_io, the TTFT split queue vs service, and the top-level confidence; the run CLI prints them in lines
under its table."""
from __future__ import annotations

import numpy as np
import pytest

from sim.cli.tables import run_notes
from sim.config import load_config
from sim.modes.runner import run_mode

SETS = ["synthetic.requests=120", "hardware.hbm.capacity_gib=0.3"]


@pytest.fixture(scope="module")
def reports() -> dict:
    cfg = load_config(preset="smoke", overrides=SETS)
    return {mode: run_mode(cfg, mode) for mode in ("single", "cluster", "pd")}


def _check_split(bd: dict, parts: tuple[str, ...], waiting: tuple[str, ...]) -> None:
    assert set(bd["mean_share"]) == set(parts)
    assert sum(bd["mean_share"].values()) == pytest.approx(1.0, rel=1e-9)  # the parts add up to TTFT
    assert bd["queue_share"] == pytest.approx(sum(bd["mean_share"][k] for k in waiting), rel=1e-12)
    assert bd["queue_share"] + bd["service_share"] == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("mode", ["single", "cluster", "pd"])
def test_every_timed_mode_has_the_keys(reports, mode):
    rep = reports[mode]
    for run in rep["policies"]:
        m = run["metrics"]
        it = m["iteration_ms"]
        assert set(it) == {"p50", "p90", "p99", "mean"} and 0 < it["p50"] <= it["p90"] <= it["p99"]
        assert isinstance(m["recomputed_prefixes"], int) and isinstance(m["recomputed_tokens"], int)
        for io in m["tier_io"].values():
            assert set(io) == {"read_bytes", "write_bytes"} and min(io.values()) >= 0
        if mode == "pd":
            _check_split(m["ttft_breakdown_ms"], ("load", "queue", "prefill", "decode_wait", "transfer"),
                         ("queue", "decode_wait"))
            for pool in m["pools"].values():
                assert pool["iteration_ms"]["p50"] > 0
        else:
            _check_split(m["ttft_breakdown_ms"], ("load", "queue", "prefill"), ("queue",))
            for part in ("load", "queue", "prefill"):
                assert m["ttft_breakdown_ms"][part] == m[f"{part}_ms"]
    conf = rep["confidence"]
    assert conf["level"] in ("calibrated", "validated", "extrapolated") and conf["params"]
    assert conf["summary"] in "\n".join(run_notes(rep))


def test_cluster_tiers_and_pd_pools(reports):
    assert set(reports["cluster"]["metrics"]["tier_io"]) == {"hbm", "dram", "eic", "ssd"}
    pools = reports["pd"]["metrics"]["pools"]
    assert set(pools) == {"prefill", "decode"}
    assert set(reports["pd"]["colocated"]["pools"]) == {"colocated"}


def test_run_notes_lines(reports):
    single = run_notes(reports["single"])
    assert len(single) == 2 and single[0].startswith(reports["single"]["policies"][0]["name"] + ": iteration p50 ")
    assert "recomputed prefixes" in single[0] and "% queue / " in single[0]
    assert single[1].startswith("Latency confidence: ")
    pd = run_notes(reports["pd"])
    assert pd[0].startswith("pd: iteration p50 prefill ") and pd[1].startswith("colocated: iteration p50 ")


def test_hit_rate_only_confidence_not_applicable():
    cfg = load_config(preset="smoke", overrides=SETS)
    rep = run_mode(cfg, "single", timing=False)
    assert rep["confidence"]["level"] == "not applicable"
    assert "ttft_breakdown_ms" not in rep["metrics"] and "iteration_ms" not in rep["metrics"]
    assert run_notes(rep) == ["Latency confidence: " + rep["confidence"]["summary"]]
    assert np.isfinite(rep["metrics"]["hit_rate"])


@pytest.mark.parametrize("timing", [False, True])
def test_latency_columns_cost_memory_only_when_the_replay_writes_them(timing):
    """A hit-rate-only run's per-request latencies are one read-only NaN view (no 8 bytes a request
    each: 0.45 GiB at 10M requests), and a write to one fails; a timed run's are filled arrays."""
    from sim.modes.cluster import run_cluster
    from sim.modes.single import run_single
    from tests.conftest import micro_workload as _workload
    from tests.modes.test_cluster import _cfg as cluster_cfg
    from tests.modes.test_single_node import _cfg as single_cfg

    w = _workload([[1, 2, 3], [1, 2, 4], [5, 6]], sessions=[0, 0, 1])
    single = run_single(single_cfg(8), w, "lru", timing=timing)
    cluster = run_cluster(cluster_cfg(), w, "lru", "round_robin", timing=timing)
    cols = [(single, k) for k in ("load_s", "queue_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s")]
    cols += [(cluster, k) for k in ("net_s", "queue_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s")]
    for res, k in cols:
        col = getattr(res, k)
        assert col.shape == (3,)
        if timing:
            assert col.flags.writeable and np.isfinite(col).all(), k
        else:
            assert col.strides == (0,) and np.isnan(col).all(), k
            with pytest.raises(ValueError, match="read-only"):
                col[0] = 1.0
