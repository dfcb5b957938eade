"""The parent form of block lists (trace.prefix): same lists as the CSR, same simulation results, and
runs too big for the memory bound refused up front."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import Config
from sim.errors import InputError
from sim.modes.memory import GiB, limit_bytes, run_estimate
from sim.modes.runner import run_mode
from trace.blockids import ensure_prefix_ids
from trace.prefix import PrefixBlocks, first_use_ids
from trace.reparent import subset
from trace.synthetic import generate
from trace.workload import Workload


@st.composite
def multi_turn_csr(draw):
    """Random multi-turn traffic: each turn extends its session's previous prompt (dropping a random
    number of trailing blocks, as a partial last block is) and adds new blocks; ids from a small
    alphabet so unrelated requests collide too."""
    n = draw(st.integers(1, 40))
    n_sess = draw(st.integers(1, 6))
    last: dict[int, list[int]] = {}
    rows, sess = [], []
    for _ in range(n):
        s = draw(st.integers(-1, n_sess - 1))
        base = last.get(s, []) if s >= 0 else []
        keep = draw(st.integers(0, len(base)))
        new = draw(st.lists(st.integers(0, 30), max_size=6))
        row = base[:keep] + new
        rows.append(row)
        sess.append(s)
        if s >= 0:
            last[s] = row
    offs = np.zeros(n + 1, dtype=np.int64)
    offs[1:] = np.cumsum([len(r) for r in rows])
    ids = np.array([b for r in rows for b in r], dtype=np.int64)
    return offs, ids, np.array(sess, dtype=np.int64)


@settings(max_examples=60, deadline=None)
@given(multi_turn_csr())
def test_materialised_rows_equal_the_csr(case):
    offs, ids, sess = case
    pb = PrefixBlocks.compress(offs, ids, sess)
    for i in range(len(offs) - 1):
        assert pb.row(i).tolist() == ids[offs[i]:offs[i + 1]].tolist()
    o2, i2 = pb.to_csr()
    assert np.array_equal(o2, offs) and np.array_equal(i2, ids)
    assert pb.n_unique() == len(np.unique(ids))
    # first_seen: blocks an earlier request had, by brute force
    seen: set[int] = set()
    for i in range(len(offs) - 1):
        row = ids[offs[i]:offs[i + 1]].tolist()
        assert pb.first_seen()[i] == sum(b in seen for b in row)
        seen.update(row)
    k = (len(offs) - 1) // 2
    assert np.array_equal(pb.head(k).to_csr()[1], ids[:offs[k]])


def _rows(pb: PrefixBlocks) -> list[list[int]]:
    return [pb.row(i).tolist() for i in range(len(pb))]


@settings(max_examples=80, deadline=None)
@given(multi_turn_csr(), st.data())
def test_subset_keeps_the_rows(case, data):
    """trace.reparent.subset: the selected rows, unchanged. A stored-id form is kept when the selection holds
    its requests' parents (else None: the caller expands); a distinct form always, re-parented and dense
    (ids renamed one to one)."""
    offs, ids, sess = case
    offs, ids = offs, ensure_prefix_ids(offs, ids)[0]  # what loaded traces hold
    pb = PrefixBlocks.compress(offs, ids, sess)
    n = len(pb)
    pick = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    idx = np.flatnonzero(pick)
    sub = subset(pb, idx)
    firsts = [ids[offs[i]] if offs[i + 1] > offs[i] else -1 for i in range(n)]
    assert pb.first_blocks().tolist() == firsts
    closed = all(pb.parent[i] < 0 or pick[pb.parent[i]] for i in idx)
    if closed:
        assert sub is not None and not sub.dense
        assert _rows(sub) == [pb.row(i).tolist() for i in idx]
    else:
        assert sub is None
    # distinct form: rows of the first-use renumbering (an id's first holder owns it, its prefix inherited)
    rid, _ = first_use_ids(ids)
    d = _distinct_form(offs, rid)
    dsub = subset(d, idx)
    assert dsub is not None and dsub.dense and dsub.distinct and len(dsub) == len(idx)
    full = [d.row(i).tolist() for i in idx]
    part = _rows(dsub)
    assert [len(r) for r in part] == [len(r) for r in full]
    pairs = {(a, b) for fr, pr in zip(full, part, strict=True) for a, b in zip(fr, pr, strict=True)}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # a renaming
    assert dsub.n_own() == len({a for a, _ in pairs})  # each selected block held once


def _distinct_form(offs: np.ndarray, ids: np.ndarray) -> PrefixBlocks:
    """A distinct parent form of prefix-identifying ids (by brute force: parent = the first earlier request
    holding the deepest already-seen block)."""
    first: dict[int, int] = {}
    parent, shared, own = [], [], []
    for i in range(len(offs) - 1):
        row = ids[offs[i]:offs[i + 1]].tolist()
        m = 0
        while m < len(row) and row[m] in first:
            m += 1
        parent.append(first[row[m - 1]] if m else -1)
        shared.append(m)
        own.extend(row[m:])
        for b in row[m:]:
            first[b] = i
    own_off = np.zeros(len(offs), dtype=np.int64)
    own_off[1:] = np.cumsum([c - s for c, s in zip(np.diff(offs), shared, strict=True)])
    pb = PrefixBlocks(np.array(parent, dtype=np.int64), np.array(shared, dtype=np.int64), own_off,
                      np.array(own, dtype=np.int64), True)
    assert [pb.row(i).tolist() for i in range(len(pb))] == [ids[offs[i]:offs[i + 1]].tolist()
                                                             for i in range(len(offs) - 1)]
    return pb


def test_subset_of_the_synthetic_stays_compact():
    """Sessions of the generator (first turns share a system prompt with other sessions' requests)."""
    w = generate(_cfg(kind="multi_turn", requests=400, sessions=30).synthetic, 0)
    assert w.compact and w.prefix.distinct
    idx = np.flatnonzero(w.session_id % 3 == 1)
    sub = w.select(idx)
    assert sub.compact
    ref = w.expanded().select(idx)
    assert np.array_equal(sub.block_offsets, ref.block_offsets)
    a, b = sub.prefix.to_csr()[1], ref.block_ids
    assert len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(np.unique(a)) == len(np.unique(b))


def test_parent_must_be_earlier():
    with pytest.raises(ValueError, match="earlier"):
        PrefixBlocks(np.array([1, -1]), np.array([1, 0]), np.array([0, 1, 2]), np.array([5, 6]))


def test_hand_case():
    # request 1 extends request 0 by two blocks; request 2 shares one block of request 1
    pb = PrefixBlocks(np.array([-1, 0, 1]), np.array([0, 2, 1]), np.array([0, 3, 5, 6]),
                      np.array([10, 11, 12, 20, 21, 30]))
    assert [pb.row(i).tolist() for i in range(3)] == [[10, 11, 12], [10, 11, 20, 21], [10, 30]]
    assert pb.counts().tolist() == [3, 4, 2]
    assert pb.first_seen().tolist() == [0, 2, 1]


def _cfg(**synthetic) -> Config:
    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"requests": 5000, "sessions": 500, **synthetic})
    return cfg


@pytest.mark.parametrize("kind", ["multi_turn", "mixed", "rag", "system_prompt", "multi_agent"])
def test_synthetic_is_compact_and_its_csr_matches(kind):
    w = generate(_cfg(kind=kind).synthetic, 3)
    assert w.compact
    # far fewer ids held than accesses: earlier turns and shared prefixes are referenced
    assert w.prefix.n_own() < 0.5 * w.total_blocks or kind == "system_prompt"
    assert w.prefix.dense and len(w.prefix.ids_stored()) == 0  # dense ids: none stored
    full = w.expanded()
    assert not full.compact and len(full.block_ids) == w.total_blocks
    for i in (0, 1, len(w) // 2, len(w) - 1):
        assert np.array_equal(w.blocks(i), full.blocks(i))
    # the generator's promise that lets it skip sorting: no id in two own slices
    assert w.prefix.distinct and len(np.unique(w.prefix.ids())) == w.prefix.n_own()
    assert w.prefix.n_unique() == len(np.unique(full.block_ids))
    assert np.array_equal(w.prefix.first_seen(), PrefixBlocks.from_csr(full.block_offsets, full.block_ids).first_seen())
    h = w.head(100)
    assert h.compact and np.array_equal(h.block_ids, full.block_ids[:full.block_offsets[100]])


@pytest.mark.parametrize("kind", ["multi_turn", "mixed"])
def test_dense_ids_name_the_same_blocks_as_the_content_hashes(kind):
    """Dense ids are a renaming of the hashes: equal where the hashes are equal, nowhere else."""
    cfg = _cfg(kind=kind, requests=3000)
    dense = generate(cfg.synthetic, 5).expanded().block_ids
    hashed = generate(cfg.synthetic, 5, hashed_ids=True).expanded().block_ids
    assert len(dense) == len(hashed)
    pairs = np.unique(np.stack([dense, hashed]), axis=1)  # distinct (dense, hash) pairs
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_dense_hand_case():
    # the hand case above with own ids 0..5: [0,1,2], [0,1,3,4], [0,5]
    pb = PrefixBlocks(np.array([-1, 0, 1]), np.array([0, 2, 1]), np.array([0, 3, 5, 6]))
    assert pb.dense and pb.nbytes() == 3 * 8 * 3 + 8
    assert [pb.row(i).tolist() for i in range(3)] == [[0, 1, 2], [0, 1, 3, 4], [0, 5]]
    assert pb.first_seen().tolist() == [0, 2, 1] and pb.n_unique() == 6
    assert pb.head(2).to_csr()[1].tolist() == [0, 1, 2, 0, 1, 3, 4]
    assert pb.densified() == (pb, 6)


@pytest.mark.parametrize("mode,timing,policy", [
    ("single", False, "lru"), ("single", False, "arc"), ("single", False, "lfu"), ("single", False, "s3fifo"),
    ("single", False, "belady"), ("single", False, "selective_write"), ("single", True, "lru"),
    ("cluster", False, "lru"), ("cluster", True, "lru"), ("pd", True, "lru"),
])
def test_dense_ids_give_the_same_results_as_the_hashes(mode, timing, policy):
    cfg = _cfg(requests=1200, sessions=120, kind="mixed")
    if mode == "cluster":
        cfg.cluster.racks = 2
    dense = run_mode(cfg, mode, workload=generate(cfg.synthetic, cfg.seed), policies=[policy], timing=timing)
    hashed = run_mode(cfg, mode, workload=generate(cfg.synthetic, cfg.seed, hashed_ids=True), policies=[policy],
                      timing=timing)
    assert _metrics(dense) == _metrics(hashed)


def _metrics(report: dict) -> dict:
    m = report["policies"][0]["metrics"]
    return {k: v for k, v in m.items() if k not in ("sim_speed_req_s",)}


@pytest.mark.parametrize("mode,timing,policy", [
    ("single", False, "lru"), ("single", True, "lru"), ("single", False, "s3fifo"),
    ("single", False, "belady"), ("cluster", False, "lru"), ("cluster", True, "lru"),
])
def test_same_results_as_the_in_memory_path(mode, timing, policy):
    """The parent form (streamed per request) and the expanded CSR give identical reports."""
    cfg = _cfg(requests=1500, sessions=150)
    if mode == "cluster":
        cfg.cluster.racks = 2
    w = generate(cfg.synthetic, cfg.seed)
    new = run_mode(cfg, mode, workload=w, policies=[policy], timing=timing)
    old = run_mode(cfg, mode, workload=w.expanded(), policies=[policy], timing=timing)
    assert _metrics(new) == _metrics(old)
    assert new["policies"][0]["metrics"]["hit_rate"] > 0


def test_per_request_results_identical():
    from sim.modes.common import prepare_workload
    from sim.modes.single import run_single

    cfg = _cfg()
    w = generate(cfg.synthetic, cfg.seed)
    out = []
    for ww in (w, w.expanded()):
        pw, ctx = prepare_workload(cfg, ww)
        res = run_single(cfg, pw, "lru", ctx=ctx, timing=False)
        out.append((res.hit_blocks, res.hit_tokens, res.worker))
    for a, b in zip(*out, strict=True):
        assert np.array_equal(a, b)


def test_estimate_follows_unique_blocks():
    w = generate(_cfg().synthetic, 1)
    compact = run_estimate(w, mode="single", timing=False, per_access=False, slots=0)
    full = run_estimate(w.expanded(), mode="single", timing=False, per_access=False, slots=0)
    assert compact.parts["workload"] < full.parts["workload"]
    # per-access arrays only when a policy reads them
    assert "per-access arrays" not in compact.parts
    belady = run_estimate(w, mode="single", timing=False, per_access=True, slots=0)
    assert belady.parts["per-access arrays"] == w.total_blocks * 48


def test_impossible_size_refused_in_one_line(monkeypatch, capsys, tmp_path):
    import sim.cli as cli
    import trace.synthetic

    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", "2")
    assert limit_bytes() == 2 * GiB

    def must_not_run(*a, **k):
        raise AssertionError("generated before the memory check")

    monkeypatch.setattr(trace.synthetic, "generate", must_not_run)
    rc = cli.main(["run", "--mode", "single", "--hit-rate-only", "--quiet", "--no-plot",
                   "--set", "synthetic.requests=100000000", "--report-json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert err[0].startswith("error: synthetic.requests: generating 100,000,000 synthetic requests needs an estimated")
    assert "lower synthetic.requests" in err[0] and "KVSIM_MEMORY_LIMIT_GIB" in err[0]
    assert not (tmp_path / "r.json").exists()


def test_bad_limit_refused(monkeypatch):
    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", "lots")
    with pytest.raises(InputError, match="not a number"):
        limit_bytes()


def test_run_refused_after_load_when_policy_needs_per_access_arrays(monkeypatch):
    import sim.modes.memory as memory

    cfg = _cfg(requests=2000, sessions=200)
    w = generate(cfg.synthetic, cfg.seed)
    seen: dict[str, float] = {}
    real_check = memory.check

    def record(est, **kw):
        seen[kw["what"]] = est.total
        real_check(est, **kw)

    monkeypatch.setattr(memory, "check", record)
    need = {}
    for p in ("lru", "belady"):
        run_mode(cfg, "single", workload=w, policies=[p], timing=False)
        need[p] = seen.pop("replaying 2,000 requests on one node")
    # the compiled Belady reads next-use steps on this distinct workload (trace.next_use): per request
    assert 0 < need["belady"] - need["lru"] < w.total_blocks * 8
    # the Python engine's Belady reads per-access arrays (next_use over the expanded ids): 48 bytes more
    py = cfg.model_copy(update={"cache": cfg.cache.model_copy(update={"engine": "python"})})
    run_mode(py, "single", workload=w, policies=["belady"], timing=False)
    need["python belady"] = seen.pop("replaying 2,000 requests on one node")
    assert need["python belady"] - need["lru"] >= w.total_blocks * 48
    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", str((need["belady"] + need["python belady"]) / 2 / GiB))
    run_mode(cfg, "single", workload=w, policies=["belady"], timing=False)  # fits
    with pytest.raises(InputError, match="replaying 2,000 requests on one node needs an estimated"):
        run_mode(py, "single", workload=w, policies=["belady"], timing=False)


def test_workload_needs_ids_or_prefix():
    with pytest.raises(ValueError, match="block_ids or a PrefixBlocks"):
        Workload(name="x", arrival_ms=[0.0], input_tokens=[16], output_tokens=[1], session_id=[0],
                 block_offsets=[0, 1], block_ids=None, block_tokens=16)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", [["oracle", "--kv-budget-gb", "40"], ["audit", "--scope", "session"]])
def test_oracle_family_refused_up_front(monkeypatch, capsys, tmp_path, command):
    """The bounds follow block accesses (~160 bytes each): 5,000 requests of ~230 blocks need ~0.6 GiB
    over a 0.45 GiB limit, so the command stops after loading, before any bound, and writes nothing."""
    import sim.cli as cli
    import sim.oracle.analysis as analysis

    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", "0.45")
    monkeypatch.setattr(analysis, "accesses", lambda *a, **k: pytest.fail("bounds computed before the check"))
    out = tmp_path / "res"
    rc = cli.main([*command, "--set", "synthetic.requests=5000", "--set", "synthetic.sessions=500",
                   "--set", "synthetic.block_tokens=16", "--output-dir", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("error: synthetic.requests: bounding 5,000 requests (")
    assert "lower synthetic.requests" in err[0]
    assert not out.exists()


def test_oracle_belady_reads_the_parent_form_under_a_limit_the_arrays_exceed(monkeypatch, capsys, tmp_path):
    """The same 5,000 requests under the same 0.45 GiB limit: refused with the flags that read the parent
    form named, then bounded with them (sim.oracle.compact), without per-access arrays."""
    import sim.cli as cli
    import sim.oracle.analysis as analysis

    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", "0.45")
    base = ["oracle", "--kv-budget-gb", "40", "--set", "synthetic.requests=5000", "--set", "synthetic.sessions=500",
            "--set", "synthetic.block_tokens=16", "--quiet"]
    rc = cli.main([*base, "--output-dir", str(tmp_path / "a")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "use --method belady (bounds from the parent form)" in err[0]
    monkeypatch.setattr(analysis, "accesses", lambda *a, **k: pytest.fail("per-access arrays built"))
    rc = cli.main([*base, "--method", "belady", "--buckets", "none", "--output-dir", str(tmp_path / "b")])
    assert rc == 0
    rows = (tmp_path / "b" / "summary.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("all,")
    # length buckets that split the requests: their pools are parent-form selections too
    rc = cli.main([*base, "--method", "belady", "--buckets", "2K,8K", "--output-dir", str(tmp_path / "c")])
    assert rc == 0
    rows = (tmp_path / "c" / "summary.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["all", "0-2K", "2K-8K", "8K+"]


def test_audit_reads_samples_only(monkeypatch, tmp_path):
    """Global scope: the audit's bounds run on samples of the pools, so the estimate counts the samples
    and the selection expands the sampled rows only (Workload.select on the parent form)."""
    import sim.cli as cli
    from trace.workload import Workload

    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", "0.45")
    monkeypatch.setattr(Workload, "expanded", lambda self: pytest.fail("whole trace expanded"))
    real = Workload.__getattr__

    def no_csr(self, name):
        if name == "block_ids" and len(self) > 100:
            pytest.fail("the whole trace's block ids were expanded")
        return real(self, name)

    monkeypatch.setattr(Workload, "__getattr__", no_csr)
    out = tmp_path / "audit"
    rc = cli.main(["audit", "--sample", "20", "--small", "2", "--buckets", "none", "--set", "synthetic.requests=5000",
                   "--set", "synthetic.sessions=500", "--set", "synthetic.block_tokens=16", "--output-dir", str(out),
                   "--quiet"])
    assert rc == 0
    rep = json.loads((out / "audit_report.json").read_text())
    assert rep["ok"] and rep["sample"] == 20 and rep["checks"] > 0
