"""Analytic hit-rate model: hand-computed cases, the target inverse, suggestions,
sensitivity, the LRU estimate, reuse break-even, input errors."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.analytic import (
    calc_hit_rate,
    conversation_tokens,
    hit_rate,
    memory_for_hit_rate,
    reuse_breakeven,
    sensitivity,
    suggest,
)
from sim.analytic.inputs import HitRateInputs
from sim.analytic.lru import lru_conversation_hits
from sim.config.gpus import gpu_spec
from sim.config.models import model_spec
from sim.errors import InputError
from sim.timing.step_cost import StepModel, step_params

GIB = 1024**3
KVPT_8B = 131_072                      # llama-3-8b fp16: 2 x 32 layers x 8 KV heads x 128 x 2 B
WEIGHTS_8B = 8_030_261_248 * 2         # bytes, fp16
BUDGET_8B_H100 = 80 * GIB - WEIGHTS_8B - 4 * GIB   # = 65,543,856,128 B per GPU (weights once + 4 GiB reserve)
TOKENS_8B_H100 = math.floor(BUDGET_8B_H100 / KVPT_8B)

BASE = dict(model="llama-3-8b", gpu="h100-sxm", gpus=2, tp=1, arrival_rate=1.0, turns=4, interval_s=100,
            prompt_tokens=500, response_tokens=250)


def test_memory_side_by_hand():
    r = hit_rate(BASE)
    assert TOKENS_8B_H100 == 500_059
    assert r["kv_bytes_per_token"] == r["kv_bytes_per_token_per_gpu"] == KVPT_8B
    assert r["weights_gib_per_gpu"] * GIB == pytest.approx(WEIGHTS_8B)
    assert r["kv_budget_gib_per_gpu"] * GIB == pytest.approx(BUDGET_8B_H100)
    assert r["kv_budget_gib_total"] * GIB == pytest.approx(2 * BUDGET_8B_H100)
    assert r["replicas"] == 2 and r["tp"] == 1 and not r["tp_auto"]
    assert r["cacheable_tokens"] == 2 * 500_059


def test_four_turn_conversation_by_hand():
    # u=500, o=250, T=4: prompts 500, 1250, 2000, 2750 = 6500 tokens;
    # reusable (previous prompt): 500 + 1250 + 2000 = 3750 -> 3750 / 6500.
    tok = conversation_tokens(HitRateInputs(**BASE))
    assert tok["prompt_tokens"] == 6500
    assert tok["conversation_hit_tokens"] == 3750
    assert tok["footprint_token_turns"] == 6500   # cached after each turn = that turn's prompt
    assert tok["final_context_tokens"] == 3000
    r = hit_rate(BASE)
    # Little: 1 conv/s x 4 turns x 100 s = 400 active, 1625 tokens each = 650,000 needed < 1,000,118
    assert r["active_conversations"] == 400
    assert r["tokens_per_conversation"] == 1625
    assert r["tokens_needed"] == 650_000
    assert r["coverage"] == 1.0
    assert r["hit_rate"] == pytest.approx(3750 / 6500)
    assert r["turn_reuse_share"] == 0.75
    # twice the arrivals: 1.3 M tokens needed, memory covers 1,016,642 of them
    r2 = hit_rate({**BASE, "arrival_rate": 2.0})
    assert r2["coverage"] == pytest.approx(1_000_118 / 1_300_000)
    assert r2["hit_rate"] == pytest.approx(3750 / 6500 * 1_000_118 / 1_300_000)
    # max concurrency: 1,016,642 tokens / (6500/4 + 250) tokens per request
    assert r["max_concurrency"] == 1_000_118 // 1875


def test_cached_outputs_and_system_prompt_by_hand():
    r = hit_rate({**BASE, "cache_outputs": True})
    # turn k reuses (k-1)(u+o): 750 + 1500 + 2250 = 4500 of 6500
    assert r["hit_rate"] == pytest.approx(4500 / 6500)
    # 1000-token system prompt x 2 variants: prompts + 4 x 1000; every turn hits its system prompt
    r = hit_rate({**BASE, "system_prompt_tokens": 1000, "system_prompts": 2})
    assert r["system_share"] == pytest.approx(4000 / 10500)
    assert r["hit_rate"] == pytest.approx((4000 + 3750) / 10500)
    assert r["system_prompt_tokens_cached"] == 2 * 2 * 1000  # each replica holds both


def test_fractional_and_geometric_turns():
    # 2.5 fixed turns = half 2-turn, half 3-turn conversations
    r = conversation_tokens(HitRateInputs(**{**BASE, "turns": 2.5}))
    p2, p3 = 2 * 500 + 750, 3 * 500 + 750 * 3
    h2, h3 = 500, 2 * 500 + 750
    assert r["prompt_tokens"] == pytest.approx((p2 + p3) / 2)
    assert r["conversation_hit_tokens"] == pytest.approx((h2 + h3) / 2)
    # geometric mean 3: E over P(T=t) = (1/3)(2/3)^(t-1), summed directly
    g = conversation_tokens(HitRateInputs(**{**BASE, "turns": 3, "turns_dist": "geometric"}))
    pmf = [(1 / 3) * (2 / 3) ** (t - 1) for t in range(1, 400)]
    prompt = sum(p * (t * 500 + 750 * t * (t - 1) / 2) for t, p in zip(range(1, 400), pmf, strict=True))
    hits = sum(p * ((t - 1) * 500 + 750 * (t - 1) * (t - 2) / 2) for t, p in zip(range(1, 400), pmf, strict=True))
    assert g["prompt_tokens"] == pytest.approx(prompt, rel=1e-9)
    assert g["conversation_hit_tokens"] == pytest.approx(hits, rel=1e-9)
    # E[T(T-1)] = 2 m (m-1) for the geometric: 3 x 500 + 750 x 6 = 6000
    assert g["prompt_tokens"] == pytest.approx(6000, rel=1e-9)


def test_auto_tp_leaves_half_the_memory_to_kv():
    r = hit_rate({"model": "llama-3-70b", "gpu": "h100-sxm", "gpus": 8})
    # 70.55 B params x 2 B / tp + 4 GiB must be < 40 GiB: tp 2 gives 69.7 GiB, tp 4 36.9 GiB
    assert r["tp"] == 4 and r["tp_auto"] and r["replicas"] == 2
    assert hit_rate({"model": "llama-3-8b", "gpus": 8})["tp"] == 1


def test_memory_for_target_inverts_the_model():
    inp = {**BASE, "arrival_rate": 4.0}
    m = memory_for_hit_rate(inp, 0.5)
    assert m["reachable"]
    at = hit_rate({**inp, "kv_budget_gb": m["kv_gib_per_gpu"]})["hit_rate"]
    assert 0.5 <= at < 0.5 + 1e-4
    at_lru = hit_rate({**inp, "kv_budget_gb": m["kv_gib_per_gpu_lru"]})["lru_hit_rate"]
    assert 0.5 <= at_lru < 0.5 + 1e-4
    assert m["kv_gib_per_gpu_lru"] > m["kv_gib_per_gpu"]  # LRU needs more memory for the same rate
    # GPU memory = KV + weights + the 4 GiB reserve
    assert m["gpu_memory_gib_per_gpu"] * GIB == pytest.approx(m["kv_gib_per_gpu"] * GIB + WEIGHTS_8B + 4 * GIB)
    bad = memory_for_hit_rate(inp, 0.9)
    assert not bad["reachable"] and "57.7%" in bad["reason"]


def test_suggestion_picks_the_smallest_lever():
    inp = {**BASE, "arrival_rate": 4.0}          # coverage 1,000,118 / 2.6 M = 38%
    s = suggest(inp, 0.5)
    assert not s["met"]
    by = {o["lever"]: o for o in s["options"]}
    # fp8 halves the KV bytes: 2,000,236 / 2.6 M coverage -> 45% hit rate < 50%
    assert by["kv_dtype"]["hit_rate"] == pytest.approx(3750 / 6500 * 2 * 500_059 * 2 / 2_600_000, rel=1e-5)
    assert not by["kv_dtype"]["reaches"]
    # GPUs: need 0.5/0.5769 x 2.6 M = 2,253,333 tokens -> 5 replicas of 500,059
    assert by["gpus"]["gpus"] == 5 and by["gpus"]["hit_rate"] >= 0.5
    assert by["gpus"]["relative_increase"] == pytest.approx(1.5)
    mem = by["memory"]
    # per GPU: ceil(2,253,333.3 / 2) + 1 tokens x 128 KiB + weights + 4 GiB reserve = 156.5 GiB
    assert mem["gib"] * GIB == pytest.approx((1_126_667 + 1) * KVPT_8B + WEIGHTS_8B + 4 * GIB)
    assert mem["gib"] == pytest.approx(s["memory"]["gpu_memory_gib_per_gpu"])
    assert [p["gpu"] for p in mem["gpu_presets"]] == ["b200", "mi300x"]  # h200's 141 GiB is short
    assert s["suggestion"]["lever"] == "memory"                    # +94% memory beats +150% GPUs
    # fp8 alone suffices for a lower target and costs no hardware
    s2 = suggest(inp, 0.42)
    assert s2["suggestion"]["lever"] == "kv_dtype"
    assert suggest(BASE, 0.5)["met"]


def test_sensitivity_rows_are_the_model_at_each_value():
    s = sensitivity(BASE, "arrival_rate", [0.5, 1, 2, 4])
    assert [r["arrival_rate"] for r in s["rows"]] == [0.5, 1.0, 2.0, 4.0]
    for row in s["rows"]:
        assert row["hit_rate"] == hit_rate({**BASE, "arrival_rate": row["arrival_rate"]})["hit_rate"]
    hr = [r["hit_rate"] for r in s["rows"]]
    assert hr == sorted(hr, reverse=True) and hr[0] > hr[-1]
    d = sensitivity(BASE, "kv_budget_gb")              # default range: past the knee
    assert d["rows"][-1]["coverage"] == 1.0 and d["rows"][0]["coverage"] < 1.0
    g = sensitivity({**BASE, "tp": None}, "gpus")
    assert all(r["gpus"] % 1 == 0 for r in g["rows"]) and len(g["rows"]) >= 5
    with pytest.raises(InputError, match="vary"):
        sensitivity(BASE, "colour")
    with pytest.raises(InputError) as e:
        sensitivity(BASE, "gpus", [2, 0])
    assert e.value.where == "values" and "gpus=0" in str(e.value)


def test_lru_estimate_solves_its_equation():
    # T = 2 fixed: context u after turn 1 (reused), 2u + o after turn 2 (last, lingers)
    inp = HitRateInputs(**{**BASE, "turns": 2, "arrival_rate": 2.0})
    cap = 150_000.0
    r = lru_conversation_hits(inp, replicas=1, capacity_per_replica=cap)
    a, b = 2.0 * 100 * 500, 2.0 * 100 * (2 * 500 + 250)
    q = r["coverage"]
    assert a * q - b * math.log1p(-q) == pytest.approx(cap - 500, rel=1e-9)
    assert r["conversation_hit_tokens"] == pytest.approx(500 * q)
    # at the Little's-law memory the LRU keeps less than all; far above it nearly all
    need = hit_rate({**BASE, "turns": 2})["tokens_needed"]
    assert lru_conversation_hits(inp, 1, need)["coverage"] < 1
    assert lru_conversation_hits(inp, 1, 1000 * need)["coverage"] > 0.999


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.01, 50), turns=st.floats(1, 30), interval=st.floats(1, 600),
       u=st.integers(1, 20_000), o=st.integers(0, 5_000), budget=st.floats(0.01, 500),
       dist=st.sampled_from(["fixed", "geometric"]), outputs=st.booleans())
def test_invariants(rate, turns, interval, u, o, budget, dist, outputs):
    inp = dict(model="llama-3-8b", gpus=1, tp=1, arrival_rate=rate, turns=turns, interval_s=interval,
               prompt_tokens=u, response_tokens=o, kv_budget_gb=budget, turns_dist=dist, cache_outputs=outputs)
    r = hit_rate(inp)
    assert 0 <= r["lru_hit_rate"] <= r["hit_rate"] + 1e-12 <= r["max_hit_rate"] + 2e-12 <= 1 + 2e-12
    assert 0 <= r["coverage"] <= 1 and 0 <= r["coverage_lru"] <= 1
    if r["reuse_share"] > 0:  # (with nothing reusable both coverages are vacuous)
        assert r["coverage_lru"] <= r["coverage"] + 1e-12
    more = hit_rate({**inp, "kv_budget_gb": budget * 2})
    assert more["hit_rate"] >= r["hit_rate"] - 1e-12 and more["lru_hit_rate"] >= r["lru_hit_rate"] - 1e-9


def test_bad_inputs_name_the_field():
    cases = [({"arrival_rate": -1}, "arrival_rate"), ({"turns": 0.5}, "turns"), ({"gpus": 0}, "gpus"),
             ({"prompt_tokens": 10**9}, "prompt_tokens"), ({"interval_s": "soon"}, "interval_s"),
             ({"model": "nope-7b"}, "model"), ({"gpu": "tpu"}, "gpu"), ({"gpus": 6, "tp": 4}, "gpus"),
             ({"model": "llama-3-70b", "gpus": 1, "tp": 1}, "tp"), ({"colour": 1}, "colour"),
             ({"kv_dtype": "fp4"}, "kv_dtype")]
    for bad, field in cases:
        with pytest.raises(InputError) as e:
            hit_rate({**BASE, **bad})
        assert e.value.where == field, (bad, str(e.value))
    with pytest.raises(InputError) as e:
        memory_for_hit_rate(BASE, 1.5)
    assert e.value.where == "target_hit_rate"


def test_reuse_breakeven_is_the_step_model():
    r = reuse_breakeven("llama-3-70b", "h100-sxm", gpus=8, prefix_tokens=8192)
    recompute_s = StepModel(model_spec("llama-3-70b"), gpu_spec("h100-sxm"), step_params(), tp=8).prefill_s(8192)
    want = 8192 * 40_960 / recompute_s / 1e9
    assert r["breakeven_gb_s"] == pytest.approx(want) and r["tp"] == 8
    # a longer prefix: KV grows linearly, recompute superlinearly -> the break-even falls
    assert reuse_breakeven("llama-3-70b", "h100-sxm", gpus=8, prefix_tokens=65536)["breakeven_gb_s"] < want
    # per GPU: 8192 x 40,960 B (8 KV heads / tp 8 x 128 x 2 x 80 layers x 2 B)
    assert r["kv_bytes_per_gpu"] == 8192 * 40_960
    assert r["breakeven_gb_s"] == pytest.approx(8192 * 40_960 / (r["recompute_ms"] / 1000) / 1e9)
    fast = reuse_breakeven("llama-3-70b", "h100-sxm", gpus=8, prefix_tokens=8192, link_gb_s=2 * want)
    assert fast["loading_pays"] and fast["speedup"] == pytest.approx(2.0)
    slow = reuse_breakeven("llama-3-70b", "h100-sxm", gpus=8, prefix_tokens=8192, link_gb_s=want / 2)
    assert not slow["loading_pays"]
    for kw, field in (({"prefix_tokens": 0}, "prefix_tokens"), ({"tp": 3}, "tp"), ({"link_gb_s": 0}, "link_gb_s")):
        with pytest.raises(InputError) as e:
            reuse_breakeven("llama-3-70b", "h100-sxm", gpus=8, **kw)
        assert e.value.where == field


def test_calc_hit_rate_bundles_target_and_sensitivity():
    r = calc_hit_rate(BASE, target_hit_rate=0.5, vary="turns", values=[2, 4, 8])
    assert r["hit_rate"] == hit_rate(BASE)["hit_rate"]
    assert r["target"] == suggest(BASE, 0.5)
    assert [x["turns"] for x in r["sensitivity"]["rows"]] == [2.0, 4.0, 8.0]
    assert "target" not in calc_hit_rate(BASE)
