"""The replica engine against hand-computed timelines, with a step cost whose every number is known.

``LinearStep``: prefill chunk (n, before) costs P x n + Q x n x before; a decode batch of B
requests reading K KV tokens costs A0 + A1 x B + BK x K; a mixed iteration is the sum of the
two (one pass, all of it). So every expectation below is a short sum.
"""
import math

import pytest
import simpy

from sim.replica.histogram import IterationHistogram
from sim.replica.request import Req
from sim.replica.step import DecodeLine
from sim.replica.workers import Workers

P, Q = 1e-4, 1e-8  # s per prefill token, s per (new token x token before it)
A0, A1, BK = 0.01, 0.001, 1e-6  # decode: s per iteration, per request, per KV token read


class LinearStep:
    def iteration_s(self, prefill=(), decode_batch=0, decode_kv_tokens=0.0):
        t = sum(P * n + Q * n * before for n, before in prefill)
        if decode_batch:
            a, b = self.decode_line(decode_batch)
            t += a + b * decode_kv_tokens
        return t

    def decode_line(self, decode_batch):
        return A0 + A1 * decode_batch, BK


def run(reqs, *, budget=8192, max_seqs=256, pool=10**9, coalesce=True, preemption="recompute"):
    """reqs: [(arrival s, prompt tokens, output tokens)] to one worker; returns (requests, replica)."""
    env = simpy.Environment()
    first: dict[int, float] = {}

    def first_token(eng, r):
        first[r.i] = env.now
        wk.start_decode(eng, r)

    wk = Workers(env, LinearStep(), pool_tokens=pool, max_seqs=max_seqs, token_budget=budget,
                 preemption=preemption, kv_bytes_per_token=1000.0, swap_bytes_s=1e9,
                 first_token=first_token, done=lambda r: None, coalesce=coalesce)
    out = []
    for i, (t, inp, n_out) in enumerate(reqs):
        r = Req(i, inp, n_out, [], 0, t)
        out.append(r)
        env.timeout(t).callbacks.append(lambda _e, r=r: wk.submit(0, r))
    env.run()
    for r in out:
        r.t_kv = first[r.i]
    return out, wk.replicas[0]


def dec(B, K):
    return A0 + A1 * B + BK * K


def test_decode_line_closed_forms_match_the_sum():
    ln = DecodeLine(*LinearStep().decode_line(5))
    B, K = 5, 1000
    durs = [dec(B, K + j * B) for j in range(50)]
    assert ln.span(50, B, K) == pytest.approx(sum(durs), rel=1e-12)
    for j in (0, 1, 7, 49):
        s = sum(durs[:j])
        assert ln.done_by(s + 1e-9, B, K) == j
        assert ln.done_by(s + durs[j] * 0.5, B, K) == j


@pytest.mark.parametrize("coalesce", [True, False])
def test_lone_request_timeline(coalesce):
    reqs, eng = run([(0.0, 100, 4)], coalesce=coalesce)
    r = reqs[0]
    t1 = P * 100  # prefill alone, one chunk
    assert r.t_kv == pytest.approx(t1, rel=1e-12)
    # 3 decode iterations of batch 1 reading 100, 101, 102 KV tokens
    assert r.t_done == pytest.approx(t1 + dec(1, 100) + dec(1, 101) + dec(1, 102), rel=1e-12)
    assert eng.stats.iterations == 4


def test_coalesced_decode_gives_the_per_iteration_timeline():
    reqs = [(0.0, 300, 40), (0.05, 200, 25), (0.07, 900, 60), (0.4, 50, 10), (0.41, 3000, 5), (0.9, 10, 80)]
    a, ea = run(reqs, budget=1000, coalesce=True)
    b, eb = run(reqs, budget=1000, coalesce=False)
    for x, y in zip(a, b, strict=True):
        assert x.t_kv == pytest.approx(y.t_kv, rel=1e-12, abs=1e-12)
        assert x.t_done == pytest.approx(y.t_done, rel=1e-12, abs=1e-12)
    assert ea.stats.iterations == eb.stats.iterations
    assert ea.stats.stretches < eb.stats.stretches  # fewer events for the same timeline
    ha, hb = ea.hist, eb.hist
    assert ha.total == hb.total and ha.sum_s == pytest.approx(hb.sum_s, rel=1e-12)
    assert (ha.counts == hb.counts).all()


def test_a_prefill_lengthens_the_decoders_inter_token_latency_by_its_extra_time():
    four = [(0.0, 10, 30)] * 4
    base, _ = run(four)
    # A 500-token prompt with one output token arrives mid-decode: exactly one iteration of the
    # four decoders also runs its chunk, lasting P x 500 longer; nothing else changes.
    mixed, eng = run(four + [(0.2, 500, 1)])
    for x, y in zip(base, mixed[:4], strict=True):
        assert y.t_done - x.t_done == pytest.approx(P * 500, rel=1e-9)
        itl_x = (x.t_done - x.t_kv) / 29
        itl_y = (y.t_done - y.t_kv) / 29
        assert itl_y - itl_x == pytest.approx(P * 500 / 29, rel=1e-9)
    # the new request's first token comes at the end of the iteration its chunk ran in
    assert mixed[4].t_pstart >= 0.2 and mixed[4].t_kv > mixed[4].t_pstart


def test_the_token_budget_splits_a_long_prompt_into_chunks():
    n, budget = 2500, 1000
    (r,), eng = run([(0.0, n, 1)], budget=budget)
    assert eng.stats.iterations == math.ceil(n / budget) == 3
    assert eng.stats.prefill_tokens == n
    # chunks of 1000, 1000, 500 tokens with 0, 1000, 2000 tokens before them
    assert r.t_kv == pytest.approx(P * n + Q * (1000 * 1000 + 500 * 2000), rel=1e-12)


def test_decoders_take_their_tokens_from_the_budget():
    # 3 requests decode; the budget of 1000 leaves 997 tokens for the 2000-token prompt's first chunk.
    three = [(0.0, 10, 50)] * 3
    reqs, eng = run(three + [(0.05, 2000, 1)], budget=1000)
    assert eng.stats.prefill_tokens == 30 + 2000
    first_chunk_iters = math.ceil(2000 / 997)
    assert eng.stats.iterations >= first_chunk_iters


def test_max_num_seqs_caps_the_batch():
    reqs, eng = run([(0.0, 10, 20)] * 6, max_seqs=2)
    assert eng.stats.max_batch_seen == 2
    assert all(r.t_done == r.t_done for r in reqs)
    # a prefilling request holds a slot too: request k + 2 starts prefilling when request k finished
    for k in range(4):
        assert reqs[k + 2].t_pstart == pytest.approx(reqs[k].t_done, rel=1e-12)


@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_preemption_when_the_pool_is_full(mode):
    # 60 tokens of KV: two 10-token prompts with 40 outputs each need up to 49 + 49.
    reqs, eng = run([(0.0, 10, 40), (0.0, 10, 40)], pool=60, preemption=mode)
    assert all(r.t_done == r.t_done for r in reqs)
    st = eng.stats
    assert st.preemptions >= 1 and sum(r.preempted for r in reqs) == st.preemptions
    if mode == "recompute":
        assert st.recompute_tokens > 0 and st.swap_bytes == 0
    else:
        assert st.swap_bytes > 0 and st.recompute_tokens == 0
    assert eng.mem.used == 0 and eng.mem.peak <= 60


def test_histogram_of_a_progression_equals_adding_each():
    a, b = IterationHistogram(), IterationHistogram()
    first, step, k = 0.0123, 3.7e-5, 5000
    a.add_progression(first, step, k)
    for j in range(k):
        b.add(first + j * step)
    assert (a.counts == b.counts).all()
    assert a.total == b.total == k and a.sum_s == pytest.approx(b.sum_s, rel=1e-12)
    s = a.summary_ms()
    median = (first + (k - 1) / 2 * step) * 1e3
    assert s["p50"] == pytest.approx(median, rel=0.012)  # half a bin: 10^(1/200) - 1
    assert s["mean"] == pytest.approx(median, rel=1e-12)
