"""The calculator's secondary figures (requests/s, tokens/s, hits/s, cache utilisation), by hand."""
import pytest

from sim.analytic import hit_rate

# Llama-3-8B: 32 layers x 8 KV heads x 128 dim x 2 (K, V) x 2 bytes = 131,072 bytes per token,
# so a 4 GiB budget on one GPU caches exactly 32,768 tokens.
BASE = {"model": "llama-3-8b", "gpus": 1, "arrival_rate": 2, "turns": 4, "interval_s": 10,
        "prompt_tokens": 100, "response_tokens": 50, "kv_budget_gb": 4}


def test_figures_by_hand():
    r = hit_rate(BASE)
    assert r["cacheable_tokens"] == 32_768
    # 4 turns -> 4 requests per conversation, 2 conversations/s
    assert r["request_rate_req_s"] == 8.0
    # prompt tokens of one conversation: T u + (u+o) T(T-1)/2 = 400 + 150 x 6 = 1,300
    assert r["prompt_tokens_s"] == 2 * 1300
    # hits: (T-1) u + (u+o)(T-1)(T-2)/2 = 300 + 450 = 750 of 1,300 (all cached: coverage 1)
    assert r["coverage"] == 1.0
    assert r["hit_tokens_s"] == pytest.approx(2 * 750)
    # needed: 2/s x 4 turns x 10 s = 80 active x (1,300 / 4 = 325 tokens each) = 26,000 of 32,768
    assert r["cache_utilization_share"] == pytest.approx(26_000 / 32_768)


def test_utilisation_is_capped_and_counts_system_prompts():
    full = hit_rate({**BASE, "interval_s": 100})  # 260,000 tokens wanted > 32,768
    assert full["cache_utilization_share"] == 1.0
    assert full["hit_tokens_s"] == pytest.approx(full["hit_rate"] * full["prompt_tokens_s"])
    sys_ = hit_rate({**BASE, "system_prompt_tokens": 1000, "system_prompts": 2})
    # + 2,000 system tokens cached on the one replica
    assert sys_["cache_utilization_share"] == pytest.approx(28_000 / 32_768)
    # each request also sends the 1,000-token system prompt: 4 x 1,000 more per conversation
    assert sys_["prompt_tokens_s"] == 2 * (1300 + 4000)
