"""Re-parenting (trace.reparent): traces sharing prefixes across sessions become distinct parent forms with
the same block lists, and every consumer of the distinct form (Belady's steps, the replays' fresh store,
the oracle on the parent form) gives the results of the per-access path."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import Config
from sim.engine.layout import next_use_at
from sim.engine.node_cache import CompiledNodeCache
from sim.modes.runner import run_mode
from sim.oracle.compact import compact_ok
from sim.policies.base import AccessContext
from tests.conftest import MOONCAKE, distinct_parent_forms
from tests.oracle.test_compact_bounds import _same as same_bounds
from trace.blockids import ensure_prefix_ids
from trace.formats import load_trace
from trace.prefix import PrefixBlocks
from trace.reparent import distinct_form, distinct_in_place
from trace.synthetic import generate
from trace.workload import Workload


def _csr_workload(pb: PrefixBlocks, sess, short=None) -> Workload:
    """The lists of `pb` as a CSR workload of 4-token blocks with sessions `sess` (last blocks `short`)."""
    offs, ids = pb.to_csr()
    n = len(pb)
    cut = np.zeros(n, dtype=np.int64) if short is None else np.asarray(short, dtype=np.int64) % 4
    inp = np.where(pb.counts() > 0, pb.counts() * 4 - cut, 0)
    return Workload(name="t", arrival_ms=np.arange(n, dtype=np.float64), input_tokens=inp,
                    output_tokens=np.ones(n, dtype=np.int64), session_id=np.asarray(sess, dtype=np.int64),
                    block_offsets=offs, block_ids=ids, block_tokens=4)


def _really_distinct(pb: PrefixBlocks, rows: list[list[int]]) -> None:
    """No own id of request i occurs in an earlier list or twice in its own slice (brute force)."""
    seen: set[int] = set()
    for i, row in enumerate(rows):
        s = int(pb.shared[i])
        own = row[s:]
        assert len(set(own)) == len(own) and not seen & set(own), i
        assert set(row[:s]) <= seen
        seen |= set(row)


def _rows(pb: PrefixBlocks) -> list[list[int]]:
    return [pb.row(i).tolist() for i in range(len(pb))]


@st.composite
def shared_prefix_traces(draw):
    """Branching lists (a random distinct tree) dealt out to random sessions: a first turn of one session
    may extend another session's request, as a shared system prompt does in a trace file."""
    tree = draw(distinct_parent_forms())
    sess = draw(st.lists(st.integers(-1, 4), min_size=len(tree), max_size=len(tree)))
    short = draw(st.lists(st.integers(0, 3), min_size=len(tree), max_size=len(tree)))
    return _csr_workload(tree, sess, short)


@settings(max_examples=150, deadline=None)
@given(w=shared_prefix_traces())
def test_same_lists_distinct_and_unique_whatever_the_input_form(w):
    rows = [w.blocks(i).tolist() for i in range(len(w))]
    d = distinct_form(PrefixBlocks.from_csr(w.block_offsets, w.block_ids))
    assert d is not None and d.distinct and _rows(d) == rows
    _really_distinct(d, rows)
    # the distinct form does not depend on the form it starts from: the session form gives the same arrays
    d2 = distinct_form(PrefixBlocks.compress(w.block_offsets, w.block_ids, w.session_id))
    for k in ("parent", "shared", "own_off", "own_ids"):
        assert np.array_equal(getattr(d, k), getattr(d2, k)), k
    # its own ids are the distinct ids, each once; shared counts = blocks seen before (first_seen of the CSR)
    assert d.n_own() == len(np.unique(w.block_ids))
    assert np.array_equal(d.shared, PrefixBlocks.from_csr(w.block_offsets, w.block_ids).first_seen())
    # the bound: exactly the distinct ids fit
    assert distinct_form(PrefixBlocks.from_csr(w.block_offsets, w.block_ids), max_own=d.n_own()) is not None
    if d.n_own():
        assert distinct_form(PrefixBlocks.from_csr(w.block_offsets, w.block_ids), max_own=d.n_own() - 1) is None
    c = w.compacted()
    if c.compact:  # worth_compacting: then it is this distinct form
        assert c.prefix.distinct and np.array_equal(c.prefix.parent, d.parent)
        assert np.array_equal(c.block_ids, w.block_ids)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(st.integers(0, 6), max_size=5), min_size=1, max_size=12))
def test_any_ids_either_refused_or_made_distinct_and_prefix_ids_always_made_distinct(rows):
    w = Workload.from_requests(rows)
    pb = PrefixBlocks.from_csr(w.block_offsets, w.block_ids)
    d = distinct_form(pb)
    if d is not None:  # then with the same lists, truly distinct
        assert _rows(d) == rows
        _really_distinct(d, rows)
    ids, _ = ensure_prefix_ids(w.block_offsets, w.block_ids)
    prefixed = [ids[w.block_offsets[i]:w.block_offsets[i + 1]].tolist() for i in range(len(w))]
    d = distinct_form(PrefixBlocks.from_csr(w.block_offsets, ids))
    assert d is not None and _rows(d) == prefixed
    _really_distinct(d, prefixed)


@settings(max_examples=100, deadline=None)
@given(w=shared_prefix_traces(), sized=st.booleans())
def test_in_place_over_the_session_forms_own_ids_equals_the_copying_pass(w, sized):
    sess = PrefixBlocks.compress(w.block_offsets, w.block_ids, w.session_id)
    want = distinct_form(sess)
    own = np.concatenate([sess.own_ids, np.full(3, -7, dtype=np.int64)])  # owned, with spare room (the stream's)
    pb = PrefixBlocks(sess.parent, sess.shared, sess.own_off, own[:sess.n_own()])
    got = distinct_in_place(pb, own, len(np.unique(w.block_ids)) if sized else 0)
    for k in ("parent", "shared", "own_off", "own_ids"):
        assert np.array_equal(getattr(got, k), getattr(want, k)), k
    assert len(own) == want.n_own() and (got.own_ids is own or not len(own))  # shrunk in place, no copy


def test_in_place_refuses_ids_that_are_not_prefix_identifying():
    own = np.array([1, 2, 2], dtype=np.int64)
    with pytest.raises(ValueError, match="prefix-identifying"):
        distinct_in_place(PrefixBlocks.from_csr(np.array([0, 2, 3]), own), own)


def test_hand_case_system_prompt_shared_by_two_sessions():
    # sessions 0 and 1 open with the same system prompt [1, 2]; session 0's second turn extends its first
    w = Workload.from_requests([[1, 2, 3], [1, 2, 4], [1, 2, 3, 5], [1, 6]], session_id=[0, 1, 0, 2])
    sess_form = PrefixBlocks.compress(w.block_offsets, w.block_ids, w.session_id)
    assert sess_form.parent.tolist() == [-1, -1, 0, -1]  # the prompt is an own block of both first turns
    d = distinct_form(sess_form)
    assert d.parent.tolist() == [-1, 0, 0, 0] and d.shared.tolist() == [0, 2, 3, 1]
    assert d.own_ids.tolist() == [1, 2, 3, 4, 5, 6] and d.own_off.tolist() == [0, 3, 4, 5, 6]
    # a non-prefix repeat (2 after 1, then 2 first) cannot be made distinct: refused, the input is kept
    assert distinct_form(PrefixBlocks.from_csr(np.array([0, 2, 3]), np.array([1, 2, 2]))) is None
    bad = Workload.from_requests([[1, 2], [1, 2, 3], [2, 3]], session_id=[0, 0, 1])
    assert not bad.compacted().compact or not bad.compacted().prefix.distinct


@settings(max_examples=60, deadline=None)
@given(w=shared_prefix_traces(), data=st.data())
def test_steps_and_oracle_bounds_equal_the_per_access_path(w, data):
    c = PrefixBlocks.from_csr(w.block_offsets, w.block_ids)
    d = distinct_form(c)
    dw = Workload(name="t", arrival_ms=w.arrival_ms, input_tokens=w.input_tokens, output_tokens=w.output_tokens,
                  session_id=w.session_id, block_offsets=w.block_offsets, block_ids=None,  # type: ignore[arg-type]
                  block_tokens=4, prefix=d)
    assert compact_ok(dw) and not compact_ok(w)
    # Belady's next uses: the steps the engine decodes = the per-access array of the CSR
    expected = AccessContext.from_workload(w).next_use.tolist()
    cc = CompiledNodeCache("belady", 2, 1, 2, 2, 10, AccessContext.from_workload(dw), {})
    assert [next_use_at(cc.M, pos) for pos in range(w.total_blocks)] == expected
    # every bound, certificate and calibration input of the oracle's compact path = the per-access path
    same_bounds(dw, [0, 1, 2, 3, 5, 8, 1000])


def _cfg(**synthetic) -> Config:
    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"requests": 1500, "sessions": 150, **synthetic})
    return cfg


def _metrics(report: dict) -> list[dict]:
    return [{k: v for k, v in p["metrics"].items() if k != "sim_speed_req_s"} for p in report["policies"]]


POLICIES = ["lru", "belady", "selective_write", "s3fifo"]


@pytest.mark.parametrize("timing", [False, True])
def test_replays_identical_on_content_hashes_shared_across_sessions(timing):
    # the mixed generator's content hashes as a CSR (a trace file's view): system prompts shared by sessions
    cfg = _cfg(kind="mixed")
    csr = generate(cfg.synthetic, cfg.seed, hashed_ids=True).expanded()
    csr = Workload(name=csr.name, arrival_ms=csr.arrival_ms, input_tokens=csr.input_tokens,
                   output_tokens=csr.output_tokens, session_id=csr.session_id, block_offsets=csr.block_offsets,
                   block_ids=csr.block_ids, block_tokens=csr.block_tokens, turn=csr.turn)
    w = csr.compacted()
    assert w.compact and w.prefix.distinct
    cross = w.prefix.parent >= 0
    assert np.any(w.session_id[cross] != w.session_id[w.prefix.parent[cross]])  # re-parented across sessions
    assert not PrefixBlocks.compress(csr.block_offsets, csr.block_ids, csr.session_id).distinct
    pols = POLICIES if not timing else ["lru", "belady"]
    new = run_mode(cfg, "single", workload=w, policies=pols, timing=timing)
    old = run_mode(cfg, "single", workload=csr, policies=pols, timing=timing)  # per-access, no fresh store
    assert _metrics(new) == _metrics(old)


def _mooncake() -> Workload:
    if not MOONCAKE.exists():
        pytest.skip("../shared/traces is absent")
    return load_trace(MOONCAKE.parent / "mooncake_conversation.jsonl")[0]


def test_mooncake_loads_distinct_with_the_same_lists_and_results():
    from sim.modes.memory import NEXT_USE_BLOCK_B, _per_own_block
    from trace.prefix import numbered_in_order

    w = _mooncake()
    assert w.compact and w.prefix.distinct  # the shared system prompt no longer an own block of each first turn
    # its hash ids are numbered as first met, so the distinct form's own ids need no renumbering (estimate)
    assert numbered_in_order(w.prefix.ids_stored())
    assert np.shares_memory(w.prefix.densified()[0].ids_stored(), w.prefix.ids_stored())  # not renumbered
    assert _per_own_block(w, NEXT_USE_BLOCK_B) == w.prefix.n_own() * NEXT_USE_BLOCK_B
    full = w.expanded()
    ids, n_bad = ensure_prefix_ids(full.block_offsets, full.block_ids)
    assert n_bad == 0 and np.array_equal(ids, full.block_ids)
    _really_distinct(w.prefix, [w.blocks(i).tolist() for i in range(len(w))])
    cfg = Config()
    new = run_mode(cfg, "single", workload=w, policies=["lru", "belady", "selective_write"], timing=False)
    old = run_mode(cfg, "single", workload=full, policies=["lru", "belady", "selective_write"], timing=False)
    assert _metrics(new) == _metrics(old)
    same_bounds(w.head(3000), [0, 100, 1000, 10_000])


def test_oracle_cli_identical_on_a_trace_file(tmp_path, monkeypatch):
    """`oracle`/`plan --method belady --buckets none` on a trace file sharing prompts across sessions: the
    parent form (now distinct) and the per-access path write the same files."""
    import sim.cli as cli
    import sim.oracle.analysis as analysis

    cfg = _cfg(kind="mixed", requests=800, sessions=80)
    src = generate(cfg.synthetic, cfg.seed, hashed_ids=True).expanded()
    path = tmp_path / "t.jsonl"
    with path.open("w") as f:
        for i in range(len(src)):
            f.write(json.dumps({"timestamp": float(src.arrival_ms[i]), "input_length": int(src.input_tokens[i]),
                                "output_length": int(src.output_tokens[i]), "session_id": int(src.session_id[i]),
                                "block_tokens": 16, "hash_ids": src.blocks(i).tolist()}) + "\n")
    assert load_trace(path)[0].prefix.distinct
    base = ["--trace", str(path), "--method", "belady", "--buckets", "none", "--quiet"]
    runs = {"oracle": ["oracle", *base, "--kv-budget-gb", "0.2"],
            "plan": ["plan", *base, "--target-tps", "2000", "--baseline-per-card-tps", "100"]}
    for name, args in runs.items():
        assert cli.main([*args, "--output-dir", str(tmp_path / name / "parent")]) == 0
        with monkeypatch.context() as m:
            m.setattr(analysis, "compact_ok", lambda w: False)  # the per-access path
            assert cli.main([*args, "--output-dir", str(tmp_path / name / "arrays")]) == 0
        files = sorted(p.name for p in (tmp_path / name / "parent").iterdir() if p.suffix in (".csv", ".json"))
        assert files
        for f in files:
            got, want = ((tmp_path / name / side / f).read_text() for side in ("parent", "arrays"))
            if f.endswith(".json"):  # all but the wall times
                got, want = _untimed(json.loads(got)), _untimed(json.loads(want))
            assert got == want, f


def _untimed(x):
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if k not in ("wall_s", "timings_s")}
    return [_untimed(v) for v in x] if isinstance(x, list) else x
