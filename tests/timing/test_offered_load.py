"""Offered load before a run (sim.timing.offered_load) and the run's load class after it
(sim.report.saturation): hand-computed cases and synthetic queues."""
import math

import numpy as np
import pytest

from sim.config.gpus import gpu_spec
from sim.config.models import model_spec
from sim.report.saturation import classify
from sim.timing.offered_load import Pool, decode_batch, offered_load, reusable_prefix_tokens
from sim.timing.step_cost import StepModel, step_params
from trace.workload import Workload


def _tiny() -> Workload:
    # 4 requests of 16-token blocks at 0, 1, 2, 4 s: request 1 repeats request 0's first two blocks,
    # request 3 all three of request 0's; request 2 is new
    return Workload.from_requests([[1, 2, 3], [1, 2, 4], [5, 6], [1, 2, 3, 7]], arrival_ms=[0, 1000, 2000, 4000],
                                  input_tokens=[48, 48, 32, 64], output_tokens=[11, 1, 5, 3], block_tokens=16)


def test_reusable_prefix_by_hand():
    assert reusable_prefix_tokens(_tiny()).tolist() == [0, 32, 0, 48]


def test_decode_batch_is_max_seqs_or_what_the_kv_memory_holds():
    assert decode_batch(256, 10_000, 100.0) == 100
    assert decode_batch(64, 10_000, 100.0) == 64
    assert decode_batch(64, 50, 100.0) == 1


def test_offered_load_by_hand():
    step = StepModel(model_spec("llama-3-8b"), gpu_spec("h100-sxm"), step_params(), tp=1)
    w = _tiny()
    pools = [Pool("workers", 2, prefill=True, decode=True, kv_tokens=10**6)]
    block = offered_load(step, w, pools, max_seqs=4)
    rate = 4 / 4.0  # 4 requests over a 4 s arrival window
    assert block["arrival_rate_req_s"] == pytest.approx(rate)
    assert block["reusable_prefix_share"] == pytest.approx((32 + 48) / (48 + 48 + 32 + 64))
    # prefill: each request alone over its uncached tokens after its reusable prefix (scalar API)
    hits = [0, 32, 0, 48]
    pre = [step.prefill_s(n - h, h) for n, h in zip([48, 48, 32, 64], hits, strict=True)]
    cold = [step.prefill_s(n, 0) for n in [48, 48, 32, 64]]
    # decode at batch 4 (max_seqs): step j of a request reads in + j KV tokens; its share is a/4 + b (in + j)
    a, b = step.decode_line(4)
    dec = [sum(a / 4 + b * (n + j) for j in range(1, o)) for n, o in zip([48, 48, 32, 64], [11, 1, 5, 3],
                                                                          strict=True)]
    row = block["pools"]["workers"]
    assert row["decode_batch"] == 4
    assert row["prefill_s_per_request"] == pytest.approx(np.mean(pre))
    assert row["decode_s_per_request"] == pytest.approx(np.mean(dec))
    want = rate * (np.mean(pre) + np.mean(dec)) / 2
    assert row["offered_load_share"] == pytest.approx(want)
    assert row["offered_load_cold_share"] == pytest.approx(rate * (np.mean(cold) + np.mean(dec)) / 2)
    assert row["offered_load_cold_share"] > row["offered_load_share"]
    assert row["workers_for_0_8_load"] == max(1, math.ceil(rate * (np.mean(pre) + np.mean(dec)) / 0.8))


def test_pd_pools_split_the_demand():
    step = StepModel(model_spec("llama-3-8b"), gpu_spec("h100-sxm"), step_params(), tp=1)
    pools = [Pool("prefill", 1, True, False, 10**6), Pool("decode", 3, False, True, 10**6)]
    block = offered_load(step, _tiny(), pools, max_seqs=4)
    p, d = block["pools"]["prefill"], block["pools"]["decode"]
    assert p["decode_s_per_request"] == 0 and d["prefill_s_per_request"] == 0
    assert p["offered_load_share"] == pytest.approx(1.0 * p["prefill_s_per_request"] / 1)
    assert d["offered_load_share"] == pytest.approx(1.0 * d["decode_s_per_request"] / 3)


def test_classify_stable_backlogged_overloaded():
    n = 400
    arr = np.linspace(0, 100, n)
    flat = np.full(n, 5.0)
    assert classify(arr, flat, 0.05, workers=4)["load_class"] == "stable"
    # the queue dominates TTFT but does not grow: backlogged
    assert classify(arr, flat, 0.7, workers=4)["load_class"] == "backlogged"
    # ... unless the wait is under a second (70% of 0.5 s): not a trust problem
    assert classify(arr, np.full(n, 0.5), 0.7, workers=4)["load_class"] == "stable"
    # TTFT x3 from 40 ms to 120 ms on a growing backlog: ratios fire, the floor keeps it stable
    small = np.linspace(0.04, 0.12, n)
    assert classify(arr, small, 0.9, workers=0)["load_class"] == "stable"
    # service at half the arrival rate: request i starts at i x 0.5 s, so TTFT grows linearly
    served = np.arange(n) * 0.5 + 0.5
    grow = served - arr
    c = classify(arr, grow, 0.95, workers=4)
    assert c["load_class"] == "overloaded"
    assert c["backlog_growth_ratio"] > 1.5 and c["ttft_trend_ratio"] > 2
    assert c["backlog_end_requests"] > c["backlog_mean_requests"]
    # the same growth on a pool bigger than the backlog is noise, not overload
    assert classify(arr, grow, 0.1, workers=10_000)["load_class"] != "overloaded"


def test_classify_counts_unserved_requests_as_waiting():
    arr = np.linspace(0, 10, 100)
    ttft = np.full(100, 0.2)
    ttft[50:] = np.nan            # the second half never got a first token
    assert classify(arr, ttft, 0.9, workers=1)["load_class"] == "overloaded"
