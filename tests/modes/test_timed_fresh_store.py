"""The timed single-node replay's compiled per-request calls (sim.engine.timed_ops) give the results of
the plain path, in particular the fresh store: own blocks put without looking unless a later turn of the
session stored first (taint tracking). Arrivals are made so dense that later turns reach their first
token before earlier ones, so the taint matters."""
from __future__ import annotations

import numpy as np
import pytest

from sim.config import Config
from sim.engine import timed_ops
from sim.modes.common import prepare_workload
from sim.modes.single import run_single
from trace.synthetic import generate

FIELDS = ("worker", "hit_blocks", "hit_tokens", "queue_s", "load_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s",
          "recomputed_tokens")


def _cfg(engine: str = "auto", **synth) -> Config:
    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={
        "kind": "multi_turn", "requests": 240, "sessions": 12, "turn_interval_s": 0.0, "rate_per_s": 400.0,
        "new_tokens_mean": 300, "output_tokens_mean": 60, **synth})
    # a small HBM and DRAM: stores evict, so a wrong "fresh" put would show in the traffic and hits
    cfg.hardware = cfg.hardware.model_copy(update={
        "dram": cfg.hardware.dram.model_copy(update={"capacity_gib": 0.25})})
    cfg.cache = cfg.cache.model_copy(update={"engine": engine})
    return cfg


def _run(cfg: Config, distinct: bool = True, write_through: bool = False, policy: str = "lru"):
    if write_through:
        cfg.cache = cfg.cache.model_copy(update={"write_policy": "write_through"})
    w = generate(cfg.synthetic, cfg.seed)
    pw, ctx = prepare_workload(cfg, w)
    assert pw.prefix_blocks().distinct  # the synthetic generator's ids are distinct: the shortcut applies
    if not distinct:
        pw.prefix_blocks().distinct = False  # no shortcut (fetch's nor store's)
    return run_single(cfg, pw, policy, ctx=ctx, timing=True), pw


def _same(a, b) -> None:
    for f in FIELDS:
        x, y = np.asarray(getattr(a, f)), np.asarray(getattr(b, f))
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f
    assert a.cache.traffic == b.cache.traffic
    assert a.sim_time_s == b.sim_time_s
    assert a.io == b.io


@pytest.mark.parametrize(("policy", "write_through"), [
    ("lru", False), ("lru", True), ("fifo", False), ("arc", False), ("s3fifo", False), ("selective_write", False),
    ("lfu", False), ("belady", False),
])
def test_fresh_store_equals_plain_store_when_later_turns_store_first(policy, write_through):
    fast, pw = _run(_cfg(), write_through=write_through, policy=policy)
    # the case the taint exists for happened: turns whose first token (their store) came before their parent's
    first = pw.arrival_ms / 1000.0 + fast.ttft_s
    parent = pw.prefix_blocks().parent
    has = parent >= 0
    assert np.count_nonzero(first[has] < first[parent[has]]) > 0
    plain, _ = _run(_cfg(), distinct=False, write_through=write_through, policy=policy)
    _same(fast, plain)
    # and the readable reference engine (sim.cache.node, the Python per-request path) agrees
    ref, _ = _run(_cfg("python"), write_through=write_through, policy=policy)
    _same(fast, ref)


def test_taint_marks_ancestors_once():
    # parent chains 0 <- 1 <- 2 <- 3 and 1 <- 4; stores in the order 3, 4, 1, 0, 2
    parent = np.array([-1, 0, 1, 2, 1], dtype=np.int64)
    state = timed_ops.request_state(5)
    assert timed_ops.mark_stored(parent, state, 3) is False
    assert state.tolist() == [timed_ops.TAINTED] * 3 + [timed_ops.STORED, 0]
    assert timed_ops.mark_stored(parent, state, 4) is False  # its parent was marked already
    got = [timed_ops.mark_stored(parent, state, i) for i in (1, 0, 2)]
    assert got == [True, True, True]
    assert state.tolist() == [timed_ops.STORED] * 5
    fresh = timed_ops.request_state(2)
    assert timed_ops.mark_stored(np.array([-1, 0], dtype=np.int64), fresh, 0) is False  # parent first: no taint
    assert timed_ops.mark_stored(np.array([-1, 0], dtype=np.int64), fresh, 1) is False
