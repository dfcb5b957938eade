"""The Belady-method bounds of a distinct parent form (sim.oracle.compact) equal those of the expanded arrays."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.oracle.access import accesses
from sim.oracle.bounds import BOUND_NAMES, compute_bounds, single_bound_tokens
from sim.oracle.calibrate import describe_trace, peak_load, popular_threshold
from sim.oracle.compact import (
    compact_accesses,
    compact_bound_tokens,
    compact_bounds,
    compact_ok,
    content_tokens,
    peak_reuse_load,
    popular_run_tokens,
)
from tests.conftest import distinct_parent_forms, micro_workload, multi_turn, prefix_workload


def _same(w, caps):
    c = compact_accesses(w)
    acc = accesses(w)
    # calibration's inputs: peak reuse load, content and popular-run tokens (describe_trace's sums)
    assert max(1, peak_reuse_load(c)) == peak_load(acc)
    desc = describe_trace(acc)
    n = acc.n_requests
    assert content_tokens(c) / max(1, acc.total_tokens()) == desc["content_hit_rate"]
    for thr in (1, 2, 3, popular_threshold(n)):
        assert popular_run_tokens(c, thr) == _popular_run_reference(acc, thr)
    for cap in caps:
        got, want = compact_bounds(c, cap), compute_bounds(acc, cap, "belady")
        assert got.tokens == want.tokens, cap
        assert got.block_hits == want.block_hits, cap
        assert (got.proven_optimal, got.notes, got.certificate) == (want.proven_optimal, want.notes,
                                                                    want.certificate), cap
        assert (got.requests, got.blocks, got.input_tokens) == (want.requests, want.blocks, want.input_tokens)
        for bound in BOUND_NAMES:  # one bound at a time, as planning asks
            assert compact_bound_tokens(c, cap, bound) == single_bound_tokens(acc, cap, bound, "belady"), bound


def _popular_run_reference(acc, threshold):
    import numpy as np

    from sim.oracle.access import leading_run

    _, inv, cnt = np.unique(acc.ids, return_inverse=True, return_counts=True)
    return int(acc.weight[leading_run(cnt[inv.reshape(-1)] >= threshold, acc)].sum())


@settings(max_examples=150, deadline=None)
@given(pb=distinct_parent_forms(), data=st.data())
def test_equal_to_the_per_access_bounds(pb, data):
    short = data.draw(st.lists(st.integers(0, 3), min_size=len(pb), max_size=len(pb)))
    _same(prefix_workload(pb, short), [0, 1, 2, 3, 5, 8, 1000])


def test_equal_on_the_multi_turn_generator():
    _, w, _ = multi_turn(600, 60)
    assert compact_ok(w)
    _same(w, [50, 2_000, 20_000])


def test_only_distinct_parent_forms_qualify():
    assert not compact_ok(micro_workload([[1, 2], [1, 3]]))


def test_plan_reads_the_parent_form_with_the_same_cards(monkeypatch, tmp_path):
    import sim.cli as cli
    import sim.oracle.analysis as analysis

    args = ["plan", "--method", "belady", "--buckets", "none", "--target-tps", "2000", "--baseline-per-card-tps",
            "100", "--set", "synthetic.requests=3000", "--set", "synthetic.sessions=300", "--set",
            "synthetic.block_tokens=16", "--quiet"]
    assert cli.main([*args, "--output-dir", str(tmp_path / "parent")]) == 0
    monkeypatch.setattr(analysis, "compact_ok", lambda w: False)  # the per-access path
    assert cli.main([*args, "--output-dir", str(tmp_path / "arrays")]) == 0
    for name in ("planning_strict_prefix.csv", "planning_lru.csv"):
        got = (tmp_path / "parent" / name).read_text()
        assert got == (tmp_path / "arrays" / name).read_text()
        assert len(got.splitlines()) == 2


def test_calibrate_reads_the_parent_form_with_the_same_fit(monkeypatch, tmp_path):
    import sim.cli as cli
    import sim.oracle.analysis as analysis

    args = ["calibrate", "--method", "belady", "--buckets", "none", "--kv-budget-gb", "40", "--points", "4",
            "--set", "synthetic.requests=2000", "--set", "synthetic.sessions=200", "--set",
            "synthetic.block_tokens=16", "--quiet"]
    assert cli.main([*args, "--output-dir", str(tmp_path / "parent")]) == 0
    monkeypatch.setattr(analysis, "compact_ok", lambda w: False)  # the per-access path (analysis.pool_source)
    assert cli.main([*args, "--output-dir", str(tmp_path / "arrays")]) == 0
    for name in ("recommended_heuristic_config.json", "calibration_residuals.csv", "calibration_trials.csv"):
        assert (tmp_path / "parent" / name).read_text() == (tmp_path / "arrays" / name).read_text(), name


def test_partial_buckets_read_the_parent_form_with_the_same_files(monkeypatch, tmp_path):
    """Length buckets that split the requests: each bucket's pool is a parent-form selection
    (trace.reparent.subset), bounded without per-access arrays; every file equals the per-access run's."""
    import json

    import sim.cli as cli
    import sim.oracle.analysis as analysis

    args = ["oracle", "--method", "belady", "--buckets", "2K,8K", "--kv-budget-gb", "40", "--set",
            "synthetic.requests=3000", "--set", "synthetic.sessions=300", "--set", "synthetic.block_tokens=16",
            "--quiet"]
    with monkeypatch.context() as m:
        m.setattr(analysis, "accesses", lambda *a, **k: pytest.fail("per-access arrays built"))
        assert cli.main([*args, "--output-dir", str(tmp_path / "parent")]) == 0
    monkeypatch.setattr(analysis, "compact_ok", lambda w: False)  # the per-access path
    assert cli.main([*args, "--output-dir", str(tmp_path / "arrays")]) == 0
    pools = json.loads((tmp_path / "parent" / "details.json").read_text())["oracle"]["pools"]
    assert [p["bucket"] for p in pools] == ["all", "0-2K", "2K-8K", "8K+"]
    assert 0 < pools[1]["requests"] < 3000 and 0 < pools[2]["requests"] < 3000
    _same_files(tmp_path / "parent", tmp_path / "arrays")


def _same_files(a, b):
    """Every output file of folder `a` equals b's (details.json: wall-clock fields aside)."""
    import json

    for f in sorted(a.iterdir()):
        got, want = f.read_text(), (b / f.name).read_text()
        if f.name == "details.json":
            got, want = (_no_wall(json.loads(t)) for t in (got, want))
        assert got == want, f.name


def _no_wall(d):
    if isinstance(d, dict):
        return {k: _no_wall(v) for k, v in d.items() if k not in ("wall_s", "timings_s", "seconds")}
    if isinstance(d, list):
        return [_no_wall(v) for v in d]
    return d


def _csr_scope(w):
    """apply_scope's keying of the expanded lists (the per-access path)."""
    from sim.oracle.buckets import apply_scope
    from trace.workload import Workload

    offs, ids = w.prefix_blocks().to_csr()
    plain = Workload(name=w.name, arrival_ms=w.arrival_ms, input_tokens=w.input_tokens,
                     output_tokens=w.output_tokens, session_id=w.session_id, block_offsets=offs, block_ids=ids,
                     block_tokens=w.block_tokens)
    return apply_scope(plain, "session")


@settings(max_examples=150, deadline=None)
@given(pb=distinct_parent_forms(), data=st.data())
def test_session_scope_keeps_a_distinct_parent_form_with_the_same_lists_and_bounds(pb, data):
    """--scope session on a distinct parent form (trace.reparent.scoped): the same lists as keying the
    expanded lists by (session, id), up to a renaming one to one, distinct, and the same bounds."""
    import numpy as np

    from sim.oracle.buckets import apply_scope

    n = len(pb)
    w = prefix_workload(pb, data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    w.session_id = np.array(data.draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n)), dtype=np.int64)
    got, want = apply_scope(w, "session"), _csr_scope(w)
    assert compact_ok(got)
    g_offs, g_ids = got.prefix_blocks().to_csr()
    assert np.array_equal(g_offs, want.block_offsets)
    pairs = set(zip(g_ids.tolist(), want.block_ids.tolist(), strict=True))
    assert len(pairs) == len(set(g_ids.tolist())) == len(set(want.block_ids.tolist()))  # a bijection
    _same(got, [0, 1, 2, 5, 1000])
    for cap in (1, 3, 1000):
        assert compact_bounds(compact_accesses(got), cap).tokens == compute_bounds(accesses(want), cap,
                                                                                    "belady").tokens


def test_session_scope_oracle_reads_the_parent_form_with_the_same_files(monkeypatch, tmp_path):

    import sim.cli as cli
    import sim.oracle.analysis as analysis
    import sim.oracle.buckets as buckets

    args = ["oracle", "--method", "belady", "--scope", "session", "--buckets", "2K,8K", "--kv-budget-gb", "40",
            "--set", "synthetic.requests=3000", "--set", "synthetic.sessions=300", "--set",
            "synthetic.block_tokens=16", "--quiet"]
    with monkeypatch.context() as m:
        m.setattr(analysis, "accesses", lambda *a, **k: pytest.fail("per-access arrays built"))
        assert cli.main([*args, "--output-dir", str(tmp_path / "parent")]) == 0
    monkeypatch.setattr(analysis, "compact_ok", lambda w: False)  # the per-access path
    monkeypatch.setattr(buckets, "scoped", lambda pb, g: None)  # apply_scope keys the expanded lists
    assert cli.main([*args, "--output-dir", str(tmp_path / "arrays")]) == 0
    _same_files(tmp_path / "parent", tmp_path / "arrays")
