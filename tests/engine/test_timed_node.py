"""The compiled timed single-node replay (sim.engine.timed_node, driven by sim.engine.timed_run) against SimPy's
(sim.modes.single ``_run_timed``): every per-request column, the clock, busy times, bytes per link, recomputes,
preemptions, the iteration histogram and the occupancy samples equal, across the settings it covers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.engine.timed_run as timed_run
import sim.modes.single as single
from sim.config import load_config
from sim.modes.common import prepare_workload
from trace.synthetic import generate

COLUMNS = ("worker", "hit_blocks", "hit_tokens", "queue_s", "load_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s",
           "recomputed_tokens")
FIGURES = ("sim_time_s", "busy_s", "io", "iteration_ms", "preemptions")


def _run(sets: list[str], compiled: bool, n: int = 600, takes: bool | None = None):
    """Replay n requests timed with the compiled event model allowed or not; `takes`: whether it must run
    (default: when allowed)."""
    cfg = load_config(overrides=[f"synthetic.requests={n}", f"synthetic.sessions={max(1, n // 10)}",
                                 "synthetic.block_tokens=16", *sets])
    w, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    used = []
    real = timed_run.run

    def spy(*a, **k):
        used.append(True)
        return real(*a, **k)

    old = single.COMPILED_EVENTS, timed_run.run
    single.COMPILED_EVENTS, timed_run.run = compiled, spy
    try:
        res = single.run_single(cfg, w, "lru", ctx=ctx, timing=True)
    finally:
        single.COMPILED_EVENTS, timed_run.run = old
    assert bool(used) == (compiled if takes is None else takes)  # the path asked for ran
    return res


def _same(a, b) -> list[str]:
    bad = [c for c in COLUMNS if not np.array_equal(getattr(a, c), getattr(b, c),
                                                    equal_nan=getattr(a, c).dtype.kind == "f")]
    bad += [f for f in FIGURES if getattr(a, f) != getattr(b, f)]
    if a.cache.occupancy != b.cache.occupancy:
        bad.append("occupancy")
    return bad


CASES = {
    "defaults": [],
    # overloaded: decode memory runs out, requests are preempted and recomputed
    "preempt_recompute": ["synthetic.rate_per_s=40", "hardware.hbm.capacity_gib=0.3"],
    "preempt_swap": ["synthetic.rate_per_s=40", "hardware.hbm.capacity_gib=0.3", "compute.preemption=swap"],
    # most of the prefix comes from DRAM and SSD: loads, their links, the ready time
    "loads_no_overlap": ["hardware.hbm.capacity_gib=0.1", "hardware.dram.capacity_gib=0.5",
                         "cache.load_overlap=none"],
    "loads_always": ["hardware.hbm.capacity_gib=0.1", "hardware.dram.capacity_gib=0.5", "cache.load_policy=always",
                     "network.contention=false", "hardware.dram.latency_us=0"],
    # a slow SSD: the load-or-recompute choice recomputes
    "recompute_slow_ssd": ["hardware.ssd.bandwidth_gb_s=0.05", "hardware.hbm.capacity_gib=0.1",
                           "hardware.dram.capacity_gib=0.5"],
    "mixed_round_robin": ["synthetic.kind=mixed", "cluster.router=round_robin"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_compiled_timed_replay_equals_simpys(case):
    a, b = _run(CASES[case], False), _run(CASES[case], True)
    assert _same(a, b) == []
    if case.startswith("preempt"):
        assert b.preemptions > 0
    if case.startswith("loads"):
        assert b.io["tier_io"]["dram"]["read_bytes"] > 0 and b.io["tier_io"]["ssd"]["read_bytes"] > 0
    if case == "recompute_slow_ssd":
        assert b.io["recomputed_prefixes"] > 0


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10 ** 6), rate=st.sampled_from([2.0, 10.0, 40.0]), hbm=st.sampled_from([0.1, 0.3, 1.0]))
def test_random_workloads_replay_the_same_on_both(seed, rate, hbm):
    sets = [f"seed={seed}", f"synthetic.rate_per_s={rate}", f"hardware.hbm.capacity_gib={hbm}"]
    assert _same(_run(sets, False, 300), _run(sets, True, 300)) == []


def test_tables_that_grow_and_streamed_rows_give_the_same_rows(monkeypatch):
    """Tiny first tables (every one grows several times), a pause every 7 arrivals and 50-request row blocks
    streamed past the exact-quantile limit: the blocks handed over are SimPy's, row for row."""
    for name, v in (("FIRST_ROWS", 4), ("FIRST_REQUESTS", 2), ("FIRST_EVENTS", 8), ("FIRST_JOBS", 2),
                    ("PAUSE_EVERY", 7)):
        monkeypatch.setattr(timed_run, name, v)
    import sim.modes.result_rows as rr
    import sim.report.single as report_single

    monkeypatch.setattr(rr, "ROW_BLOCK", 50)
    got: dict[bool, list] = {False: [], True: []}
    real_add = report_single.SingleTotals.add
    sets = ["report.exact_quantiles_max_requests=100", "synthetic.rate_per_s=40", "hardware.hbm.capacity_gib=0.3"]
    for compiled in (False, True):
        def add(self, b, _k=compiled):
            got[_k].append((b.lo, {c: getattr(b, c).copy() for c in COLUMNS}))
            real_add(self, b)

        monkeypatch.setattr(report_single.SingleTotals, "add", add)
        res = _run(sets, compiled, 400)
        assert res.ttft_s is None and res.most_blocks >= 1  # streamed
        assert [f for f in FIGURES if f != "busy_s" and getattr(res, f) is None] == []
    assert [lo for lo, _ in got[True]] == [lo for lo, _ in got[False]] == list(range(0, 400, 50))
    for (_, x), (_, y) in zip(got[False], got[True], strict=True):
        for c in COLUMNS:
            assert np.array_equal(x[c], y[c], equal_nan=x[c].dtype.kind == "f"), c


@pytest.mark.parametrize("sets", [["hardware.host_bridge_gb_s=64"], ["cache.write_policy=write_through"],
                                  ["pd.coalesce_decode=false"]])
def test_settings_it_does_not_cover_run_on_simpy(sets):
    cfg = load_config(overrides=sets)
    assert timed_run.refusal(cfg) is not None
    res = _run(sets, True, 100, takes=False)
    assert np.isfinite(res.ttft_s).all()
