"""Synthetic workload generator: determinism, counts, arrivals, prefix sharing."""
from __future__ import annotations

import time

import numpy as np
import pytest

from sim.config import SyntheticCfg
from trace.synthetic import generate
from trace.workload import Workload

KINDS = ["multi_turn", "system_prompt", "rag", "multi_agent", "mixed"]
B = 16


def common_blocks(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


def small(**kw) -> SyntheticCfg:
    base = dict(requests=2000, new_tokens_mean=40, output_tokens_mean=30, system_prompt_tokens=1000,
                system_prompts=1, document_tokens=2000, documents=20, shared_prefix_tokens=1000,
                agents=4, sessions=100, turn_interval_s=5.0, block_tokens=B)
    base.update(kw)
    return SyntheticCfg(**base)


def assert_bijection(w: Workload, key_of) -> None:
    """Block ids equal <=> reference content keys equal (key_of(request, T))."""
    pairs = set()
    for i in range(len(w)):
        ids = w.blocks(i)
        inp = int(w.input_tokens[i])
        for k, bid in enumerate(ids.tolist()):
            pairs.add((key_of(i, min((k + 1) * w.block_tokens, inp)), bid))
    keys = {k for k, _ in pairs}
    ids = {b for _, b in pairs}
    assert len(pairs) == len(keys), "one content prefix got several ids"
    assert len(pairs) == len(ids), "one id names several content prefixes"


def session_turns(w: Workload) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, s in enumerate(w.session_id.tolist()):
        out.setdefault(s, []).append(i)
    return out


# ---------------------------------------------------------------- determinism and shape

def test_same_seed_same_arrays_and_seeds_differ():
    cfg = small(kind="mixed")
    a, b, c = generate(cfg, 3), generate(cfg, 3), generate(cfg, 4)
    for f in ("arrival_ms", "input_tokens", "output_tokens", "session_id", "turn", "block_offsets", "block_ids"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert not np.array_equal(a.arrival_ms, c.arrival_ms)
    assert not np.array_equal(a.input_tokens, c.input_tokens)
    # Per-request content is seed-specific; system prompts and RAG documents are
    # corpus-wide, so across seeds only the system prompt's full blocks coincide (content hashes; the
    # default dense ids name blocks within one workload only).
    mt = small(kind="multi_turn")
    h3, h4 = generate(mt, 3, hashed_ids=True), generate(mt, 4, hashed_ids=True)
    assert len(np.intersect1d(h3.block_ids, h4.block_ids)) == 1000 // B


@pytest.mark.parametrize("arrival", ["poisson", "gamma"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_counts_and_invariants(kind, arrival):
    cfg = small(kind=kind, arrival=arrival, requests=1500)
    w = generate(cfg, 11)
    assert isinstance(w, Workload) and len(w) == 1500
    assert w.name == f"synthetic-{kind}" and w.block_tokens == B and not w.synthetic_blocks
    assert np.all(w.arrival_ms >= 0) and np.all(np.diff(w.arrival_ms) >= 0)
    assert w.input_tokens.min() >= 1 and w.output_tokens.min() >= 1
    np.testing.assert_array_equal(w.n_blocks(), -(-w.input_tokens // B))
    assert w.block_ids.min() >= 0
    assert w.session_id.min() >= 0 and w.turn.min() >= 0
    # Within a session turns are 0, 1, 2... in arrival order; turn k+1 extends
    # turn k's prompt + output and shares exactly its full blocks.
    for idx in session_turns(w).values():
        assert w.turn[idx].tolist() == list(range(len(idx)))
        for p, q in zip(idx, idx[1:], strict=False):
            assert w.input_tokens[q] > w.input_tokens[p] + w.output_tokens[p]
            assert common_blocks(w.blocks(p), w.blocks(q)) == w.input_tokens[p] // B
    if kind in ("system_prompt", "rag"):
        assert len(np.unique(w.session_id)) == len(w) and w.turn.max() == 0
    else:
        assert w.turn.max() > 0
    name = generate(cfg, 11, name="x").name
    assert name == "x"


# ---------------------------------------------------------------- prefix sharing, by hand

def test_multi_turn_sessions_share_only_full_system_prompt_blocks():
    w = generate(small(kind="multi_turn"), 5)
    first = np.flatnonzero(w.turn == 0)
    assert len(first) > 10
    shared = 1000 // B  # 62 full blocks; block 62 straddles the prompt's end
    for i, j in zip(first[:-1], first[1:], strict=True):
        assert common_blocks(w.blocks(i), w.blocks(j)) == shared
    # Exact content model: block ids equal iff token prefixes equal.
    sp = 1000
    sess = w.session_id
    assert_bijection(w, lambda i, T: ("sys", T) if T <= sp else ("sess", int(sess[i]), T))


def test_multi_turn_turn_k_plus_1_starts_with_turn_k_blocks():
    w = generate(small(kind="multi_turn", new_tokens_mean=5, output_tokens_mean=3), 9)
    checked = 0
    for idx in session_turns(w).values():
        for p, q in zip(idx, idx[1:], strict=False):
            full = int(w.input_tokens[p] // B)
            np.testing.assert_array_equal(w.blocks(q)[:full], w.blocks(p)[:full])
            if w.input_tokens[p] % B:  # the partial last block is not reused
                assert w.blocks(q)[full] != w.blocks(p)[full]
            checked += 1
    assert checked > 100


def test_several_system_prompts_split_sessions_into_groups():
    w = generate(small(kind="multi_turn", system_prompts=3, system_prompt_tokens=160), 2)
    first = np.flatnonzero(w.turn == 0)
    heads = {}
    for i in first:
        heads.setdefault(int(w.blocks(i)[0]), []).append(i)
    assert len(heads) == 3
    groups = list(heads.values())
    assert common_blocks(w.blocks(groups[0][0]), w.blocks(groups[0][1])) == 10  # 160/16, aligned
    assert common_blocks(w.blocks(groups[0][0]), w.blocks(groups[1][0])) == 0


def test_system_prompt_kind_shares_prompt_blocks():
    w = generate(small(kind="system_prompt", system_prompt_tokens=1000), 1)
    for i in range(20):
        assert common_blocks(w.blocks(i), w.blocks(i + 1)) == 62
    sp = 1000
    assert_bijection(w, lambda i, T: ("sys", T) if T <= sp else ("req", i, T))


def test_rag_same_document_shares_document_blocks():
    sp, doc = 1000, 2000
    w = generate(small(kind="rag", requests=3000), 4)
    # Block 63 (tokens 1008..1023) lies inside the document: it names the document.
    doc_of = np.array([w.blocks(i)[sp // B + 1] for i in range(len(w))])
    docs, counts = np.unique(doc_of, return_counts=True)
    assert 5 <= len(docs) <= 20
    # Zipf(1.1) over 20 documents: the top one takes ~31 %, far above uniform 5 %.
    assert 0.2 < counts.max() / len(w) < 0.4
    by_doc = {d: np.flatnonzero(doc_of == d) for d in docs}
    top = by_doc[docs[np.argmax(counts)]]
    for i, j in zip(top[:20], top[1:21], strict=False):
        assert common_blocks(w.blocks(i), w.blocks(j)) == (sp + doc) // B  # 187
    other = by_doc[docs[np.argmin(counts)]][0]
    assert common_blocks(w.blocks(top[0]), w.blocks(other)) == sp // B  # 62
    assert_bijection(
        w,
        lambda i, T: ("sys", T) if T <= sp else ("doc", int(doc_of[i]), T) if T <= sp + doc else ("q", i, T),
    )


def test_multi_agent_group_shares_the_long_prefix():
    shared = 1000
    w = generate(small(kind="multi_agent", agents=4), 8)
    group_of = np.array([w.blocks(i)[0] for i in range(len(w))])
    first = np.flatnonzero(w.turn == 0)
    groups = {}
    for i in first:
        groups.setdefault(int(group_of[i]), []).append(i)
    sizes = [len(g) for g in groups.values()]
    assert max(sizes) == 4 and sum(s == 4 for s in sizes) >= len(sizes) - 1
    g0, g1 = list(groups.values())[:2]
    for i, j in zip(g0, g0[1:], strict=False):
        assert common_blocks(w.blocks(i), w.blocks(j)) == shared // B  # 62
    assert common_blocks(w.blocks(g0[0]), w.blocks(g1[0])) == 0
    # The agents of a group fan out on consecutive arrivals.
    assert list(g0) == list(range(g0[0], g0[0] + 4))
    sess = w.session_id
    assert_bijection(
        w, lambda i, T: ("grp", int(group_of[i]), T) if T <= shared else ("agent", int(sess[i]), T)
    )


def test_mixed_blends_sessions_and_single_turns():
    w = generate(small(kind="mixed", requests=5000), 6)
    n_turns = np.bincount(w.session_id)
    n_turns = n_turns[n_turns > 0]
    single_share = np.sum(n_turns == 1) / len(w)
    # 40 % single-turn requests plus one-turn sessions (geometric turns).
    assert 0.35 < single_share < 0.65
    assert w.turn.max() >= 3


def test_zero_length_shared_prefix_means_no_sharing():
    w = generate(small(kind="multi_turn", system_prompt_tokens=0), 3)
    first = np.flatnonzero(w.turn == 0)
    assert all(common_blocks(w.blocks(i), w.blocks(j)) == 0 for i, j in zip(first[:-1], first[1:], strict=True))


# ---------------------------------------------------------------- arrivals and sessions

@pytest.mark.parametrize("kind", ["multi_turn", "system_prompt"])
def test_poisson_mean_rate(kind):
    w = generate(SyntheticCfg(kind=kind, requests=20000, rate_per_s=25.0), 12)
    rate = len(w) / (w.arrival_ms[-1] / 1000.0)
    assert rate == pytest.approx(25.0, rel=0.03)
    gaps = np.diff(w.arrival_ms)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


def test_gamma_is_burstier_than_poisson():
    def cv(arrival):
        w = generate(SyntheticCfg(requests=20000, arrival=arrival, burstiness_cv=2.5), 13)
        gaps = np.diff(w.arrival_ms)
        return gaps.std() / gaps.mean(), len(w) / (w.arrival_ms[-1] / 1000.0)

    cv_p, _ = cv("poisson")
    cv_g, rate_g = cv("gamma")
    assert cv_g > 2.0 > 1.2 > cv_p
    assert rate_g == pytest.approx(10.0, rel=0.1)


def test_turns_and_think_time_follow_config():
    cfg = SyntheticCfg(requests=20000, turns_mean=4.0, turn_interval_s=20.0, sessions=10000)
    w = generate(cfg, 14)
    t_end = w.arrival_ms[-1]
    turns, gaps = [], []
    for idx in session_turns(w).values():
        if w.arrival_ms[idx[0]] < t_end / 2:
            turns.append(len(idx))
        gaps.extend(np.diff(w.arrival_ms[idx]).tolist())
    assert np.mean(turns) == pytest.approx(4.0, rel=0.1)
    # Think time runs from the previous arrival; queueing for a slot adds a little.
    assert np.mean(gaps) / 1000.0 == pytest.approx(20.0, rel=0.1)


def test_sessions_caps_the_live_population():
    cap = 20
    w = generate(SyntheticCfg(requests=4000, sessions=cap, turns_mean=6.0), 15)
    sid = w.session_id
    first = np.full(sid.max() + 1, np.inf)
    last = np.full(sid.max() + 1, -np.inf)
    np.minimum.at(first, sid, w.arrival_ms)
    np.maximum.at(last, sid, w.arrival_ms)
    live = [np.sum((first <= t) & (last >= t)) for t in w.arrival_ms[::7]]
    assert max(live) <= cap
    assert max(live) == cap  # the natural population (~600) is well above the cap


def test_default_size_is_fast():
    cfg = SyntheticCfg()
    generate(cfg, 0)
    t = time.perf_counter()
    w = generate(cfg, 1)
    assert len(w) == 3000
    assert time.perf_counter() - t < 1.0  # ~30 ms typical; loose bound for slow CI
