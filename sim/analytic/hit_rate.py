"""Closed-form prefix hit rate of a multi-turn chat workload (Little's law).

Workload: conversations arrive at ``arrival_rate`` per second, each has
``turns`` turns ``interval_s`` seconds apart. Turn k's prompt is the shared
system prompt S, the whole conversation so far and the new user message::

    P_k = S + (k-1) (u + o) + u          u = prompt_tokens, o = response_tokens

What a cache can serve of turn k (k >= 2) is the prefix its previous turn left
behind: the previous prompt P_{k-1} (prompt blocks only, which is what the
simulator caches) or P_{k-1} + o when generated tokens are cached too
(``cache_outputs``). Turn 1 can hit only the system prompt. Summed over a
conversation of T turns (token counts, not turns)::

    prompt tokens      sum_k P_k = T S + T u + (u+o) T (T-1) / 2
    system hits        T S
    conversation hits  (T-1) u + (u+o) (T-1)(T-2)/2     (prompt blocks only)
                       (u+o) T (T-1) / 2                 (outputs cached too)

Memory: a conversation's context must survive the ``interval_s`` until its
next turn. By Little's law ``arrival_rate x turns x interval_s``
conversations are active at once, each holding its current context (the mean
over its turns of what it has cached); their product is the tokens needed.
``coverage = min(1, cacheable tokens / tokens needed)`` is the share of
conversation reuse the memory keeps (for least-recently-used eviction with
memoryless think times this is also Che's approximation: a context survives a
gap shorter than the cache's characteristic time). So::

    hit_rate = (system hits x [system prompts fit] + conversation hits x coverage) / prompt tokens

``lru_hit_rate`` next to it estimates what an LRU cache keeps of the same
reuse when think times are exponential (sim.analytic.lru): less, because
contexts that wait longest are lost first even when memory = need. The
cross-check test compares both with the simulator.

The issue's short form ``(1 - 1/T) x coverage`` counts turns; the hit rate here
counts tokens (the simulator's definition), and ``turn_reuse_share`` reports
``1 - 1/T`` next to it.

Throughput: ``request_rate_req_s = arrival_rate x turns`` (every turn is a
request), ``prompt_tokens_s = arrival_rate x prompt tokens per
conversation``, ``hit_tokens_s = hit_rate x prompt_tokens_s`` (prompt
tokens served from the cache each second), and ``cache_utilization_share =
min(1, (cached system prompts + tokens needed) / cacheable tokens)``, the
share of the KV memory the workload fills.

Conversation lengths (``turns_dist``): ``fixed`` - every conversation has
``turns`` turns (a fractional value is a mix of floor and ceil with that mean);
``geometric`` - lengths 1, 2, ... with mean ``turns`` (what the synthetic
generator draws). Every per-conversation sum above is an expectation over the
lengths; since the sums are quadratic in T, a geometric mix (E[T(T-1)] =
2 T(T-1)) has a larger share of long, well-reused conversations than fixed
lengths of the same mean.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.analytic.deployment import Deployment, gpu_memory_for_kv, resolve
from sim.analytic.inputs import HitRateInputs, parse_inputs
from sim.analytic.lru import lru_conversation_hits
from sim.analytic.turns import turn_lengths
from sim.config.kv_sizes import GIB


def _mix(inp: HitRateInputs, fn) -> float:
    """Expectation of fn(T) over the conversation lengths of `inp`."""
    t, w = turn_lengths(inp)
    return float(np.dot(fn(t), w))


def conversation_tokens(inp: HitRateInputs) -> dict[str, float]:
    """Per-conversation token sums of the model above (mean over the turn mix)."""
    s, u, o = inp.system_prompt_tokens, inp.prompt_tokens, inp.response_tokens
    c = u + o
    prompt = _mix(inp, lambda t: t * s + t * u + c * t * (t - 1) / 2)
    system_hits = _mix(inp, lambda t: t * s)
    if inp.cache_outputs:
        conv_hits = _mix(inp, lambda t: c * t * (t - 1) / 2)
        # cached after turn k: P_k + o - S = k (u + o)
        footprint = _mix(inp, lambda t: c * t * (t + 1) / 2)
    else:
        conv_hits = _mix(inp, lambda t: (t - 1) * u + c * (t - 1) * (t - 2) / 2)
        # cached after turn k: P_k - S = (k-1)(u + o) + u
        footprint = _mix(inp, lambda t: t * u + c * t * (t - 1) / 2)
    final = _mix(inp, lambda t: s + t * c)
    return {
        "prompt_tokens": prompt,             # summed over the turns of one conversation
        "system_hit_tokens": system_hits,
        "conversation_hit_tokens": conv_hits,
        "footprint_token_turns": footprint,  # sum over turns of the conversation's cached tokens
        "final_context_tokens": final,       # system prompt + every turn's prompt and response
    }


def _evaluate(inp: HitRateInputs, dep: Deployment) -> dict[str, Any]:
    tok = conversation_tokens(inp)
    t = inp.turns
    active = inp.arrival_rate * t * inp.interval_s                # Little's law
    per_conversation = tok["footprint_token_turns"] / t           # mean cached context of an active conversation
    needed = active * per_conversation
    system_tokens = inp.system_prompt_tokens * inp.system_prompts  # each replica caches every system prompt
    per_replica = dep.tokens_per_replica
    system_cov = 1.0 if system_tokens == 0 else min(1.0, per_replica / system_tokens)
    conv_capacity = max(0.0, dep.cacheable_tokens - dep.replicas * system_tokens)
    coverage = 1.0 if needed == 0 else min(1.0, conv_capacity / needed)
    prompt = tok["prompt_tokens"]
    system_share = tok["system_hit_tokens"] / prompt
    reuse_share = tok["conversation_hit_tokens"] / prompt
    hit = system_share * system_cov + reuse_share * coverage
    lru = lru_conversation_hits(inp, dep.replicas, conv_capacity / dep.replicas)
    mean_request = prompt / t + inp.response_tokens               # a request's KV when its answer is complete
    wanted = dep.replicas * system_tokens + needed                # tokens the workload would keep cached
    prompt_rate = inp.arrival_rate * prompt                       # conversations/s x prompt tokens each
    return {
        "active_conversations": active,
        "tokens_per_conversation": per_conversation,
        "final_context_tokens": tok["final_context_tokens"],
        "tokens_needed": needed,
        "system_prompt_tokens_cached": dep.replicas * system_tokens,
        "conversation_capacity_tokens": conv_capacity,
        "coverage": coverage,
        "system_share": system_share,
        "system_coverage": system_cov,
        "reuse_share": reuse_share,
        "turn_reuse_share": 1.0 - 1.0 / t,
        "max_hit_rate": system_share + reuse_share,
        "hit_rate": hit,
        "coverage_lru": lru["coverage"],
        "lru_hit_rate": system_share * system_cov + reuse_share * lru["coverage"],
        "prompt_tokens_per_turn": prompt / t,
        "mean_request_tokens": mean_request,
        "max_concurrency": int(dep.cacheable_tokens // mean_request),
        # Throughput figures (steady state): every turn is one request.
        "request_rate_req_s": inp.arrival_rate * t,
        "prompt_tokens_s": prompt_rate,
        "hit_tokens_s": hit * prompt_rate,
        "cache_utilization_share": min(1.0, wanted / dep.cacheable_tokens) if dep.cacheable_tokens else 1.0,
    }


def hit_rate(inputs: dict[str, Any] | HitRateInputs) -> dict[str, Any]:
    """The analytic hit rate of `inputs` (see the module doc) with every intermediate figure.

    Token counts are tokens, memory ``_gib`` is GiB, bytes are bytes. Raises
    InputError naming the field on bad input.
    """
    inp = parse_inputs(inputs)
    dep = resolve(inp)
    ev = _evaluate(inp, dep)
    warnings = []
    if ev["final_context_tokens"] > dep.spec.max_context:
        warnings.append(
            f"a conversation's final context ({ev['final_context_tokens']:,.0f} tokens) exceeds the model's "
            f"max context ({dep.spec.max_context:,}); real servers would truncate or refuse it"
        )
    if ev["system_coverage"] < 1:
        warnings.append("the system prompts alone do not fit in one replica's KV memory")
    return {
        "mode": "analytic",
        "inputs": inp.model_dump(),
        "model": dep.spec.name,
        "gpu": dep.gpu.name,
        "gpus": inp.gpus,
        "tp": dep.tp,
        "tp_auto": dep.tp_auto,
        "pp": dep.pp,
        "replicas": dep.replicas,
        "kv_dtype": inp.kv_dtype,
        "kv_bytes_per_token": dep.kv_bytes_per_token,
        "kv_bytes_per_token_per_gpu": dep.kv_bytes_per_token_per_gpu,
        "gpu_memory_gib": dep.memory_gib,
        "weights_gib_per_gpu": dep.weights_bytes_per_gpu / GIB,
        "kv_budget_gib_per_gpu": dep.kv_budget_bytes_per_gpu / GIB,
        "kv_budget_gib_total": dep.kv_budget_bytes_per_gpu * inp.gpus / GIB,
        "cacheable_tokens": dep.cacheable_tokens,
        **ev,
        "warnings": warnings,
    }


def memory_for_hit_rate(inputs: dict[str, Any] | HitRateInputs, target: float) -> dict[str, Any]:
    """KV memory (and GPU memory) needed for `target` hit rate at the same GPU count and layout."""
    from sim.errors import InputError

    if not 0 < target <= 1:
        raise InputError(f"target hit rate must be in (0, 1] (got {target!r})", where="target_hit_rate")
    inp = parse_inputs(inputs)
    dep = resolve(inp)
    ev = _evaluate(inp, dep)
    out: dict[str, Any] = {"target_hit_rate": target, "max_hit_rate": ev["max_hit_rate"]}
    system_tokens = inp.system_prompt_tokens * inp.system_prompts
    if target > ev["max_hit_rate"] + 1e-12:
        return {**out, "reachable": False,
                "reason": f"even unlimited memory reaches only {ev['max_hit_rate']:.1%}: first turns and "
                          f"{'generated tokens' if not inp.cache_outputs else 'new messages'} never hit"}
    # Coverage needed of the conversation reuse (system prompts assumed cached: they come first).
    conv_needed = 0.0
    if ev["reuse_share"] > 0:
        conv_needed = max(0.0, (target - ev["system_share"]) / ev["reuse_share"]) * ev["tokens_needed"]
    tokens = conv_needed + dep.replicas * system_tokens
    # Whole tokens per replica, plus one so a GiB round trip cannot floor it below the target.
    kv_per_gpu = (math.ceil(tokens / dep.replicas) + 1) * dep.kv_bytes_per_token_per_gpu
    out.update(reachable=True, tokens=tokens, kv_gib_per_gpu=kv_per_gpu / GIB,
               kv_gib_total=kv_per_gpu * inp.gpus / GIB,
               gpu_memory_gib_per_gpu=gpu_memory_for_kv(dep, inp, kv_per_gpu))
    # The same under LRU eviction (sim.analytic.lru): more memory, and never quite all the reuse.
    lru_tokens = _lru_tokens_for(inp, dep, ev, target)
    if lru_tokens is None:
        out.update(kv_gib_per_gpu_lru=None, gpu_memory_gib_per_gpu_lru=None)
    else:
        kv_lru = (math.ceil(lru_tokens + system_tokens) + 1) * dep.kv_bytes_per_token_per_gpu
        out.update(kv_gib_per_gpu_lru=kv_lru / GIB, gpu_memory_gib_per_gpu_lru=gpu_memory_for_kv(dep, inp, kv_lru))
    return out


LRU_SEARCH_FACTOR = 1000.0  # give up when LRU would need more than this x the Little's-law tokens


def _lru_tokens_for(inp: HitRateInputs, dep: Deployment, ev: dict, target: float) -> float | None:
    """Conversation tokens per replica at which the LRU estimate reaches `target` (bisection), or None."""
    if ev["reuse_share"] == 0:
        return 0.0 if target <= ev["system_share"] + 1e-12 else None
    need_cov = (target - ev["system_share"]) / ev["reuse_share"]
    if need_cov <= 0:
        return 0.0
    lo, hi = 0.0, LRU_SEARCH_FACTOR * max(1.0, ev["tokens_needed"] / dep.replicas)
    if lru_conversation_hits(inp, dep.replicas, hi)["coverage"] < need_cov - 1e-9:
        return None
    for _ in range(60):
        mid = (lo + hi) / 2
        if lru_conversation_hits(inp, dep.replicas, mid)["coverage"] >= need_cov - 1e-9:
            hi = mid
        else:
            lo = mid
    return hi


__all__ = ["conversation_tokens", "hit_rate", "memory_for_hit_rate"]
