"""The learned policy's features streamed chunk by chunk from a carried per-block tracker equal the
whole-trace numpy computation (tests/learned/reference_features.py) bit for bit, for every chunking, on
CSR, parent-form (compacted) and dense synthetic workloads and on the Mooncake trace; the tracker's
state follows the blocks, not the accesses."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learned.features import FeatureStream, context_stream
from learned.tracker import PairIndex
from sim.config import Config
from sim.policies.base import AccessContext
from tests.conftest import ROOT
from tests.learned.reference_features import reference_features
from tests.learned.reference_online import access_features, reuse_labels, train_on_past
from trace.workload import Workload

MOONCAKE = ROOT.parent / "shared" / "traces" / "mooncake_conversation.jsonl"


def _bits(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(X, dtype=np.float32).view(np.uint32)


def _streamed(w: Workload, sizes) -> np.ndarray:
    """Rows of `w` in chunks whose sizes (in accesses) cycle through `sizes`, stacked."""
    fs = FeatureStream(w)
    parts, k = [], 0
    while fs.next_request < fs.n_requests:
        pos = fs.pos
        X = fs.take(fs.chunk_end(sizes[k % len(sizes)]))
        assert pos == sum(len(p) for p in parts)
        parts.append(X)
        k += 1
    return np.concatenate(parts) if parts else np.zeros((0, 11), dtype=np.float32)


def multi_turn(seed: int, n_req: int, p_known: float, p_empty: float = 0.0) -> Workload:
    """Conversations that resend their context plus new blocks, first turns that share a system prompt
    or a document, branches (two continuations of one turn), repeated blocks in a request, requests
    without blocks, known and unknown sessions, ties in arrival times."""
    rng = np.random.default_rng(seed)
    prompts = [list(range(10_000 * (k + 1), 10_000 * (k + 1) + int(rng.integers(1, 5)))) for k in range(3)]
    convs: list[list[int]] = []
    conv_sess: list[int] = []
    nxt = 1_000_000
    reqs, sess = [], []
    for _ in range(n_req):
        u = rng.random()
        if u < p_empty:
            reqs.append([])
            sess.append(int(rng.integers(0, 5)) if rng.random() < p_known else -1)
            continue
        if convs and u < 0.65:  # next turn (sometimes a branch of an earlier turn)
            c = int(rng.integers(len(convs)))
            base = convs[c] if rng.random() < 0.8 else convs[c][: int(rng.integers(1, len(convs[c]) + 1))]
            s = conv_sess[c]
        else:
            base = list(prompts[int(rng.integers(len(prompts)))]) if rng.random() < 0.7 else []
            c = len(convs)
            convs.append([])
            s = int(rng.integers(0, 40)) if rng.random() < p_known else -1
            conv_sess.append(s)
        new = list(range(nxt, nxt + int(rng.integers(0 if base else 1, 5))))
        nxt += len(new)
        row = base + new
        if row and rng.random() < 0.1:
            row = row + [row[int(rng.integers(len(row)))]]  # a block twice in one request
        convs[c] = row
        reqs.append(row)
        sess.append(s)
    arr = np.cumsum(rng.integers(0, 4, size=n_req)) * 7.5
    return Workload.from_requests(reqs, arrival_ms=arr, session_id=np.array(sess, dtype=np.int64), name="mt")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), n_req=st.integers(1, 60), p_known=st.sampled_from([0.0, 0.5, 1.0]),
       p_empty=st.sampled_from([0.0, 0.1]), sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4))
def test_every_chunking_equals_the_whole_trace_computation(seed, n_req, p_known, p_empty, sizes):
    w = multi_turn(seed, n_req, p_known, p_empty)
    ref = reference_features(AccessContext.from_workload(w))
    np.testing.assert_array_equal(_bits(_streamed(w, sizes)), _bits(ref))
    # the same lists held in parent form (re-parented / compressed): the same rows
    c = w.compacted()
    np.testing.assert_array_equal(_bits(_streamed(c, sizes)), _bits(ref))


def hashed(w: Workload, seed: int) -> Workload:
    """`w` with its block ids and known session ids replaced one to one by large random int64 values
    (stored ids as a loaded trace holds hashes: not dense, not in first-use order)."""
    rng = np.random.default_rng(seed)
    ids = w.block_ids
    uniq, inv = np.unique(ids, return_inverse=True)
    big = np.unique(rng.integers(2**40, 2**63 - 1, size=2 * len(uniq) + 8, dtype=np.int64))
    big = rng.permutation(big)[:len(uniq)]
    sess = w.session_id.copy()
    su, sinv = np.unique(sess[sess >= 0], return_inverse=True)
    sess[sess >= 0] = rng.permutation(np.arange(len(su), dtype=np.int64) * 7919 + 2**45)[sinv]
    return Workload(name=w.name, arrival_ms=w.arrival_ms, input_tokens=w.input_tokens,
                    output_tokens=w.output_tokens, session_id=sess, block_offsets=w.block_offsets,
                    block_ids=big[inv.reshape(-1)], block_tokens=w.block_tokens)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), n_req=st.integers(1, 60), p_known=st.sampled_from([0.0, 0.5, 1.0]),
       p_empty=st.sampled_from([0.0, 0.1]), sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4))
def test_hashed_stored_ids_give_the_same_rows(seed, n_req, p_known, p_empty, sizes):
    """Large random stored ids (and session ids) are renumbered once (PrefixBlocks.densified) before the
    tracker: the rows equal the reference's, in CSR and parent form, for every chunking."""
    w = multi_turn(seed, n_req, p_known, p_empty)
    h = hashed(w, seed)
    assert w.total_blocks == 0 or h.block_ids.min() >= 2**40
    ref = reference_features(AccessContext.from_workload(w))
    np.testing.assert_array_equal(_bits(reference_features(AccessContext.from_workload(h))), _bits(ref))
    np.testing.assert_array_equal(_bits(_streamed(h, sizes)), _bits(ref))
    c = h.compacted()
    np.testing.assert_array_equal(_bits(_streamed(c, sizes)), _bits(ref))


def test_synthetic_hashed_ids_equal_its_dense_ids_rows():
    """The generator's content hashes (stored, not in first-use order) and its dense ids describe the same
    lists: the same rows, which are the expanded reference's; the tracker is sized by the distinct ids."""
    from trace.prefix import numbered_in_order
    from trace.synthetic import generate

    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"requests": 400, "sessions": 40, "kind": "multi_turn"})
    wd, wh = generate(cfg.synthetic, 2), generate(cfg.synthetic, 2, hashed_ids=True)
    assert wd.prefix.dense and not wh.prefix.dense and not numbered_in_order(wh.prefix.ids_stored())
    fs = FeatureStream(wh)
    got = np.concatenate([X for _, X in fs.chunks(3000)])
    np.testing.assert_array_equal(_bits(got), _bits(np.concatenate([X for _, X in FeatureStream(wd).chunks(777)])))
    np.testing.assert_array_equal(_bits(got), _bits(reference_features(AccessContext.from_workload(wh.expanded()))))
    assert len(fs.tracker.freq) == wh.prefix.n_unique()


def test_tracker_refuses_ids_that_are_not_dense():
    from learned.tracker import Tracker

    t = Tracker(np.zeros(2), np.array([0, -1]), 3, 1)
    with pytest.raises(ValueError, match="dense"):
        t.update(np.array([0, 1, 2]), np.array([0, 3]))
    with pytest.raises(ValueError, match="session"):
        Tracker(np.zeros(2), np.array([0, 5]), 3, 1)


def test_dense_sessions_numbers_known_sessions_in_order_of_first_appearance():
    from learned.features import dense_sessions

    idx, n = dense_sessions(np.array([2**50, -1, 7, 2**50, -1, 3, 7], dtype=np.int64))
    assert idx.tolist() == [0, -1, 1, 0, -1, 2, 1] and n == 3
    idx, n = dense_sessions(np.full(3, -1, dtype=np.int64))
    assert idx.tolist() == [-1, -1, -1] and n == 0


def test_dense_synthetic_parent_form_equals_its_expanded_rows():
    from trace.synthetic import generate

    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"requests": 600, "sessions": 60, "kind": "multi_turn"})
    w = generate(cfg.synthetic, 1)
    assert w.compact and w.prefix.dense
    fs = FeatureStream(w)
    got = np.concatenate([X for _, X in fs.chunks(5000)])
    ref = reference_features(AccessContext.from_workload(w.expanded()))
    np.testing.assert_array_equal(_bits(got), _bits(ref))
    # the tracker holds the blocks (dense ids index its arrays), not the accesses
    n_unique = w.prefix.n_own()
    assert len(fs.tracker.freq) == n_unique  # sized once for dense ids
    # a block's first session and follower are inline: the pair sets hold the exceptions only
    assert len(fs.tracker.fan_pairs) + len(fs.tracker.sess_pairs) < n_unique < len(got)
    assert fs.tracker.nbytes() < 100 * n_unique


def test_hand_set_depths_replace_the_depth_column_only():
    from sim.policies.replay import context_for_keys

    ctx = context_for_keys([5, 6, 5, 7], depth=[3, 1, 4, 1])
    X = access_features(ctx)
    assert X[:, 0].tolist() == [3, 1, 4, 1]
    np.testing.assert_array_equal(_bits(X), _bits(reference_features(ctx)))
    with pytest.raises(ValueError, match="outside"):
        context_stream(ctx).take(99)


def test_pair_index_numbers_keys_in_insertion_order_through_growth():
    from learned.tracker import _find_or_add

    pi = PairIndex()
    keys = [(a, b) for a in range(60) for b in (-3, 0, 2**40)]
    for k, (a, b) in enumerate(keys):
        pi.reserve(1)
        assert tuple(_find_or_add(pi.table, pi.ka, pi.kb, pi.cnt, a, b)) == (k, True)
    for k, (a, b) in enumerate(keys):
        assert tuple(_find_or_add(pi.table, pi.ka, pi.kb, pi.cnt, a, b)) == (k, False)
    assert len(pi) == len(keys) and 10 * len(pi) <= 6 * len(pi.table)


@pytest.mark.skipif(not MOONCAKE.is_file(), reason="../shared/traces/mooncake_conversation.jsonl not present")
def test_mooncake_trace_streamed_equals_the_whole_trace_computation():
    from trace.formats import load_trace

    w, _ = load_trace(MOONCAKE)
    assert w.compact  # loaded in parent form (trace.reparent): 288,500 accesses of 512-token blocks
    ref = reference_features(AccessContext.from_workload(w))
    np.testing.assert_array_equal(_bits(_streamed(w, [16384, 777])), _bits(ref))
    np.testing.assert_array_equal(_bits(_streamed(w.expanded(), [50_000])), _bits(ref))



# ---------------------------------------------------------------- the policy with a model file

def _old_model_scoring(self):
    """Today's model path before streaming: the whole trace's features, then positions in fixed chunks."""
    X = self.__dict__.setdefault("_ref_X", reference_features(AccessContext.from_workload(self.stream.w)))
    start = self.scored
    hi = min(start + self.chunk, self.n)
    p = self.model.predict(X[start:hi])
    pri = np.arange(start, hi, dtype=np.float64) + (self.bonus * self.model.horizon) * p
    self.prio.frombytes(pri.tobytes())
    self.scored = hi


@pytest.fixture(scope="module")
def model():
    from learned.train import TrainParams, train_offline

    return train_offline(multi_turn(7, 400, 0.5), TrainParams())[0]


def test_streamed_scores_equal_the_whole_trace_path_and_build_no_access_arrays(model, monkeypatch):
    from learned.policy import Scorer

    w = multi_turn(8, 300, 0.5, 0.05)
    ctx = AccessContext.from_workload(w)
    sc = Scorer(ctx, model, chunk=37)
    sc.ensure(sc.n - 1)
    assert sc.predict_calls > 3 and sc.stats()["mode"] == "model"
    # no per-access array of the context was built (next_use, request, depth, session, arrival_ms)
    assert not {"next_use", "request", "depth", "session", "arrival_ms"} & set(vars(ctx))
    monkeypatch.setattr(Scorer, "_score_chunk", _old_model_scoring)
    old = Scorer(AccessContext.from_workload(w), model, chunk=50)
    old.ensure(old.n - 1)
    assert np.array_equal(np.frombuffer(sc.prio), np.frombuffer(old.prio))


def test_cli_model_run_report_identical_on_both_paths(model, tmp_path, monkeypatch):
    import json

    import learned.policy as learned_policy
    import main

    path = tmp_path / "m.txt"
    model.save(path)
    args = ["run", "--policy", "learned", "--model", str(path), "--set", "synthetic.requests=1500",
            "--set", "synthetic.sessions=150", "--set", "synthetic.kind=multi_turn",
            "--set", "hardware.hbm.capacity_gib=1", "--set", "hardware.dram.capacity_gib=2",
            "--set", "hardware.ssd.capacity_gib=0", "--hit-rate-only", "--no-plot", "--quiet", "--report-json"]
    reports = []
    for old in (False, True):
        learned_policy._SCORERS.clear()
        if old:
            monkeypatch.setattr(learned_policy.Scorer, "_score_chunk", _old_model_scoring)
        out = tmp_path / f"r{old}.json"
        assert main.main([*args, str(out)]) == 0
        rep = json.loads(out.read_text())
        for volatile in ("wall_s", "started_utc", "timing"):  # measured time, not results
            rep.pop(volatile)
        for m in [rep["metrics"]] + [p["metrics"] for p in rep["policies"]]:
            m.pop("sim_speed_req_s")
        reports.append(rep)
    assert reports[0] == reports[1]
    assert reports[0]["policies"][0]["metrics"]["hit_rate"] > 0


# ---------------------------------------------------------------- offline training streamed

@settings(max_examples=200, deadline=None)
@given(d=st.lists(st.integers(1, 2**40), min_size=1, max_size=50), q=st.floats(0.001, 1.0),
       split=st.integers(1, 4))
def test_gap_counts_quantile_is_numpys_to_the_bit(d, q, split):
    from learned.labels import GapCounts

    arr = np.array(d, dtype=np.int64)
    a, b = GapCounts(), GapCounts()
    parts = np.array_split(arr, split)
    for p in parts[:-1]:
        a.add(p.astype(np.float64))
    b.add(parts[-1])
    a.merge(b)
    assert a.quantile(q) == float(np.quantile(arr, q)) and len(a) == len(arr)


def _whole_trace_training(w, params, validation=0.2):
    """`learned train` before streaming: the whole trace's matrix and next uses."""
    from learned.train import auc

    ctx = AccessContext.from_workload(w)
    X, n, summary = reference_features(ctx), w.total_blocks, {}
    cut_req = int(len(w) * (1 - validation))
    cut = int(w.block_offsets[cut_req])
    early = train_on_past(ctx, X, cut, params)
    if early is not None:
        hpos, hy = reuse_labels(ctx, early.horizon)
        held = hpos >= cut
        summary["validation_auc"] = auc(hy[held], early.predict(X[hpos[held]]))
        summary["validation_rows"] = int(held.sum())
    return train_on_past(ctx, X, n, params, trained_on=w.name, block_tokens=w.block_tokens), summary


@pytest.mark.parametrize("seed,max_rows,horizon,chunk", [(3, 50_000, None, 1 << 18), (4, 700, None, 333),
                                                         (5, 50_000, 40, 97)])
def test_streamed_training_equals_the_whole_trace_training(seed, max_rows, horizon, chunk):
    from learned.train import TrainParams, train_offline

    w = multi_turn(seed, 1500, 0.5, 0.02)
    params = TrainParams(max_rows=max_rows, horizon=horizon)
    model, summary = train_offline(w, params, chunk=chunk)
    ref, ref_summary = _whole_trace_training(w, params)
    assert model.booster.model_to_string() == ref.booster.model_to_string()
    assert (model.horizon, model.meta["rows"], model.meta["positive_rate"]) == \
        (ref.horizon, ref.meta["rows"], ref.meta["positive_rate"])
    assert summary["validation_auc"] == ref_summary["validation_auc"] is not None
    assert summary["validation_rows"] == ref_summary["validation_rows"]
