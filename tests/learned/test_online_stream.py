"""The learned policy's online mode streamed (learned.online) equals the whole-trace computation it
replaced (tests/learned/reference_online.py) bit for bit: the same retraining points, horizons, training
rows and labels, models, trainings log and priorities, on random multi-turn workloads, on a workload
whose horizon grows (a later training reads rows before an earlier one's window) and on the Mooncake
trace; it builds no per-access array of the context and holds only the rows a training still reads."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import learned.train as train_mod
from learned.online import OnlineStream, retrain_points
from learned.policy import Scorer
from learned.train import TrainParams
from sim.policies.base import AccessContext
from tests.learned.reference_online import reference_online
from tests.learned.test_feature_stream import MOONCAKE, multi_turn
from trace.workload import Workload


class _Fits:
    """Records every `learned.train.fit` call: its rows, labels, horizon, meta and the model's text."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple] = []
        real = train_mod.fit

        def fit(X, y, horizon, params, **meta):
            m = real(X, y, horizon, params, **meta)
            X32 = np.ascontiguousarray(X, dtype=np.float32)
            self.calls.append((X32.view(np.uint32).tobytes(), np.asarray(y).tobytes(), int(horizon),
                               meta.get("trained_upto"), m.booster.model_to_string()))
            return m

        mp.setattr(train_mod, "fit", fit)


def _streamed(w: Workload, every: int, min_acc: int, params: TrainParams, chunk: int, bonus: float = 1.0):
    ctx = AccessContext.from_workload(w)
    sc = Scorer(ctx, None, retrain_every=every, retrain_min_accesses=min_acc, bonus=bonus, params=params,
                chunk=chunk)
    if sc.n:
        sc.ensure(sc.n - 1)
    assert not {"next_use", "request", "depth", "session", "arrival_ms"} & set(vars(ctx))  # no per-access array
    return sc


def _check_equal(w: Workload, every: int, min_acc: int, params: TrainParams, chunk: int,
                 bonus: float = 1.0) -> Scorer:
    with pytest.MonkeyPatch.context() as mp:
        ref_fits = _Fits(mp)
        prio, log, models = reference_online(AccessContext.from_workload(w), every, min_acc, bonus, params, chunk)
    with pytest.MonkeyPatch.context() as mp:
        new_fits = _Fits(mp)
        sc = _streamed(w, every, min_acc, params, chunk, bonus)
    assert new_fits.calls == ref_fits.calls  # same rows, labels, horizons, points and models
    got = np.frombuffer(sc.prio, dtype=np.float64)
    np.testing.assert_array_equal(got.view(np.uint64), prio.view(np.uint64))
    assert [{k: v for k, v in e.items() if k != "s"} for e in sc.trainer.log] == log
    assert sc.trainer.trainings == len(models)
    if models:
        assert sc.model.booster.model_to_string() == models[-1].booster.model_to_string()
    return sc


FAST = dict(rounds=4, num_leaves=7, min_data_in_leaf=20)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 100_000), n_req=st.integers(150, 400), p_known=st.sampled_from([0.0, 0.5, 1.0]),
       p_empty=st.sampled_from([0.0, 0.1]), every=st.integers(10, 80), min_acc=st.sampled_from([0, 300]),
       max_rows=st.sampled_from([500, 700, 5000]), fixed=st.sampled_from([None, 40]),
       chunk=st.sampled_from([1, 97, 16384]))
def test_streamed_online_equals_the_whole_trace_path(seed, n_req, p_known, p_empty, every, min_acc, max_rows,
                                                      fixed, chunk):
    w = multi_turn(seed, n_req, p_known, p_empty)
    params = TrainParams(max_rows=max_rows, horizon=fixed, **FAST)
    _check_equal(w, every, min_acc, params, chunk, bonus=0.5 + seed % 3)


def growing_horizon() -> Workload:
    """One block a request: 3,000 accesses cycling over 10 blocks, then 9,000 cycling over 1,500 new blocks,
    every 4th access a block never seen again (so labels of both classes): the reuse distance jumps from
    about 13 to about 2,000 accesses, and the horizon with it."""
    keys = [(k % 10 if k < 3000 else 100 + k % 1500) if k % 4 else 10**6 + k for k in range(12_000)]
    return Workload.from_requests([[k] for k in keys], arrival_ms=np.arange(len(keys), dtype=np.float64))


def test_a_growing_horizon_keeps_the_rows_a_later_training_reads():
    w = growing_horizon()
    params = TrainParams(max_rows=600, **FAST)
    sc = _check_equal(w, 500, 0, params, 256)
    tr = sc.trainer
    hs = [h for h in tr.horizons if h is not None]
    assert hs[0] < 50 and max(hs) > 1500  # 1.5 x the 0.9 quantile of the distances seen so far
    lows = [tr._window(k)[0] for k in range(len(tr.points))]
    # some training reads rows below an earlier training's window: the current horizon bounds nothing
    assert any(lows[j] < lows[i] for i in range(len(lows)) for j in range(i + 1, len(lows)))
    assert tr.trainings >= 3


def test_rows_held_are_those_a_training_still_reads():
    w = growing_horizon()
    params = TrainParams(max_rows=600, **FAST)
    ctx = AccessContext.from_workload(w)
    from learned.features import context_stream

    tr = OnlineStream(lambda: context_stream(ctx), 500, 0, params)
    peak = 0
    while tr.fs.pos < tr.fs.n:
        tr.next_chunk(256)
        k = tr._k
        if k < len(tr.points):
            # held: from the lowest row a remaining training reads to the stream's position
            assert tr.rows.lo + tr.rows.n == tr.fs.pos and tr.rows.lo >= tr.keep_from[k]
            assert tr.rows.n <= tr.fs.pos - tr.keep_from[k]
        else:
            assert tr.rows.n == 0
        peak = max(peak, tr.rows.n)
    assert 600 <= peak < w.total_blocks // 2  # never the whole trace


def test_retrain_points_by_hand():
    # requests of 3, 0, 2, 4, 1, 0, 5 blocks: offsets 0 3 3 5 9 10 10 15
    offs = np.array([0, 3, 3, 5, 9, 10, 10, 15])
    # every 2 requests: request 2 at 3, request 4 at 9, request 6 (empty) -> request 6's blocks at 10
    assert retrain_points(offs, 2, 0) == [(3, 2), (9, 4), (10, 6)]
    # every request from request 1 (empty: its position is request 2's first access)
    assert retrain_points(offs, 1, 0) == [(3, 2), (5, 3), (9, 4), (10, 6)]
    # at least 6 accesses since the previous attempt (the first from 0): 3 is skipped, 9 kept, 10 skipped
    assert retrain_points(offs, 2, 6) == [(9, 4)]
    assert retrain_points(offs, 7, 0) == [] and retrain_points(np.array([0]), 1, 0) == []


@pytest.mark.skipif(not MOONCAKE.is_file(), reason="../shared/traces/mooncake_conversation.jsonl not present")
def test_mooncake_streamed_online_equals_the_whole_trace_path():
    from trace.formats import load_trace

    w, _ = load_trace(MOONCAKE)
    sc = _check_equal(w, 2000, 20_000, TrainParams(rounds=8), 16384)
    assert sc.trainer.trainings >= 5


def test_a_random_workload_retrains_several_times_and_equals_the_reference():
    sc = _check_equal(multi_turn(0, 300, 0.5, 0.1), 30, 0, TrainParams(max_rows=700, **FAST), 97)
    assert sc.trainer.trainings >= 4 and len(set(sc.trainer.horizons)) >= 3  # measured: 5 trainings
