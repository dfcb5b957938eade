"""Chained block hashes (prefix property) and the seeded arrival process of the chat converters."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trace.converters.arrivals import THINK_SIGMA, ArrivalModel, assign_arrivals
from trace.converters.chain import ROOT_PARENT, chain_hashes
from trace.converters.sessions import Conversation, Message, SessionBuilder
from trace.converters.tokenize import ApproxTokenizer

tokens_st = st.lists(st.integers(0, 2**32 - 1), max_size=80).map(lambda x: np.array(x, dtype=np.uint32))


@settings(max_examples=60, deadline=None)
@given(tokens_st, st.integers(1, 9), st.integers(0, 80))
def test_block_ids_of_a_prefix_are_a_prefix(tokens, bt, cut):
    whole = chain_hashes(tokens, bt, 0, ROOT_PARENT)
    k = min(cut, len(tokens)) // bt  # whole blocks of the prefix
    prefix = chain_hashes(tokens[: k * bt], bt, 0, ROOT_PARENT)
    assert prefix == whole[:k]
    # Continuing from block k's parent gives the rest: a turn hashes only its new blocks.
    rest = chain_hashes(tokens[k * bt:], bt, 0, prefix[-1] if prefix else ROOT_PARENT)
    assert prefix + rest == whole


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=6), st.integers(1, 8))
def test_session_turn_ids_extend_the_previous_turn(texts, bt):
    msgs = []
    for t in texts:
        msgs += [Message("user", t + "?"), Message("assistant", t)]
    b = SessionBuilder(ApproxTokenizer(), bt)
    n = b.add(Conversation(msgs))
    r = b.req
    offs = np.concatenate(([0], np.cumsum(r.counts)))
    ids = [list(r.ids[offs[i]:offs[i + 1]]) for i in range(n)]
    for i in range(1, n):
        full_prev = r.inp[i - 1] // bt
        assert ids[i][:full_prev] == ids[i - 1][:full_prev]
        assert len(ids[i]) == -(-r.inp[i] // bt)


def test_different_tokens_different_ids_and_stable_values():
    a = chain_hashes(np.array([1, 2, 3, 4], dtype=np.uint32), 2, 0, ROOT_PARENT)
    b = chain_hashes(np.array([1, 2, 3, 5], dtype=np.uint32), 2, 0, ROOT_PARENT)
    assert a[0] == b[0] and a[1] != b[1]
    # Stable across runs (no salted hash()): blake2b-64 of 8 zero bytes + LE uint32 1, 2.
    from hashlib import blake2b
    assert a[0] == blake2b(b"\0" * 8 + b"\1\0\0\0\2\0\0\0", digest_size=8).digest()


def test_poisson_sessions_at_the_rate_and_seeded():
    n = 4000
    model = ArrivalModel(session_rate=5.0, think_time_s=10.0, seed=7, use_dataset_times=False)
    ms, src = assign_arrivals([1] * n, np.zeros(n), [None] * n, [None] * n, model)
    assert src == "poisson" and ms[0] == 0
    rate = (n - 1) / (ms[-1] / 1000.0)
    assert abs(rate - 5.0) / 5.0 < 0.08  # 4000 gaps: relative error ~1.6% (1 sigma)
    again, _ = assign_arrivals([1] * n, np.zeros(n), [None] * n, [None] * n, model)
    assert np.array_equal(ms, again)


def test_think_time_lognormal_mean_and_reply_time():
    n = 6000
    model = ArrivalModel(session_rate=1.0, think_time_s=12.0, reply_tokens_s=50.0, seed=1, use_dataset_times=False)
    out = np.full(n, 100)  # each reply takes 100 / 50 = 2 s
    ms, _ = assign_arrivals([n], out, [None], [None] * n, model)
    gaps = np.diff(ms) / 1000.0 - 2.0
    assert gaps.min() > 0
    assert abs(gaps.mean() - 12.0) / 12.0 < 0.08  # lognormal sigma 1: std/mean 1.31, 6000 draws: ~1.7%
    med = 12.0 * np.exp(-THINK_SIGMA**2 / 2)
    assert abs(np.median(gaps) - med) / med < 0.08


def test_dataset_times_never_go_backwards_in_a_session():
    model = ArrivalModel(use_dataset_times=True)
    ms, src = assign_arrivals([2], np.array([1, 1]), [100.0], [100.0, 90.0], model)
    assert src == "dataset" and ms.tolist() == [0.0, 0.0]
    # One session without any time: the whole file falls back to the Poisson process.
    _, src = assign_arrivals([1, 1], np.array([1, 1]), [100.0, None], [100.0, None], model)
    assert src == "poisson"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.integers(-10**6, 10**6), st.text(max_size=12),
                          st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3)), max_size=8),
       st.integers(1, 9), st.booleans())
def test_streamed_json_list_equals_json_load(tmp_path_factory, items, chunk, pretty):
    import json

    from trace.converters import records

    p = tmp_path_factory.mktemp("j") / "a.json"
    p.write_text(json.dumps(items, indent=1 if pretty else None), encoding="utf-8")
    old = records._CHUNK
    records._CHUNK = chunk  # record boundaries fall inside chunks and numbers at a chunk's end
    try:
        got = [rec for _, rec in records.iter_records(p)]
    finally:
        records._CHUNK = old
    assert got == items
