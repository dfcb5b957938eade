"""Offered load before simulating: arrival rate x mean service demand / capacity, per worker pool.

For a pool of ``workers`` replicas, ``rho = lambda x E[demand] / workers``, with ``lambda`` = requests /
arrival window (first to last arrival) and a request's demand the GPU-seconds of the step-cost model
(``sim.timing.step_cost.StepModel``, the one the engine runs):

* prefill: the request's prefill alone in one iteration over its *uncached* tokens. Two figures: with
  every reusable prefix hit (each prompt block seen in an earlier request counts as cached; an infinite
  cache, so a lower bound on demand: ``offered_load_share``) and with no cache hit at all (an upper
  bound: ``offered_load_cold_share``).
* decode: ``out - 1`` steps in a batch of ``B`` requests; the request's share of a step is ``a/B`` (weights,
  communication, per-layer cost shared by the batch) plus its own KV read. ``B`` is the largest batch the
  replica can run: ``compute.max_num_seqs``, or fewer when the KV memory holds fewer requests of the mean
  size. That is the replica at full batching, its capacity; lighter traffic runs smaller batches and is
  then not short of capacity anyway.

``rho >= 1`` means the queue grows without bound; past 0.8 queueing delay grows steeply (M/G/k). Each pool
reports the workers that bring ``rho`` to 0.8: ``ceil(lambda x E[demand] / 0.8)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.timing.step_cost import StepModel
from trace.workload import Workload

TARGET_LOAD = 0.8


@dataclass(frozen=True)
class Pool:
    """Replicas that share the work of one kind: ``prefill`` and/or ``decode``."""

    name: str
    workers: int
    prefill: bool
    decode: bool
    kv_tokens: int  # KV tokens one replica holds (bounds its decode batch)


def reusable_prefix_tokens(w: Workload) -> np.ndarray:
    """Per request, prompt tokens in blocks that an earlier request already had (block ids chain their
    prefix, so a seen block means its whole prefix was seen): the hits of an infinite cache."""
    hit_blocks = w.prefix_blocks().first_seen()  # from the unique blocks, without expanding the trace
    return np.minimum(hit_blocks * w.block_tokens, w.input_tokens)


def arrival_rate_req_s(w: Workload) -> float | None:
    """Requests / arrival window (first to last arrival); None with fewer than two distinct times."""
    if len(w) < 2:
        return None
    span = float(w.arrival_ms[-1] - w.arrival_ms[0]) / 1000.0
    return len(w) / span if span > 0 else None


def decode_batch(max_seqs: int, kv_tokens: int, mean_context: float) -> int:
    """The largest decode batch: max_num_seqs, or the requests of the mean size the KV memory holds."""
    fit = int(kv_tokens // max(1.0, mean_context)) if kv_tokens > 0 else max_seqs
    return max(1, min(int(max_seqs), fit))


def offered_load(step: StepModel, w: Workload, pools: list[Pool], max_seqs: int) -> dict[str, Any]:
    """The ``load`` block's pre-run part (see the module doc); ``pools`` in the order of the headline."""
    rate = arrival_rate_req_s(w)
    inp, out = w.input_tokens, w.output_tokens
    hit = reusable_prefix_tokens(w)
    pre_warm = step.prefill_s_array(inp - hit, hit)
    pre_cold = step.prefill_s_array(inp, np.zeros_like(inp))
    mean_ctx = float(np.mean(inp + out)) if len(w) else 0.0
    by_pool: dict[str, Any] = {}
    for p in pools:
        B = decode_batch(max_seqs, p.kv_tokens, mean_ctx) if p.decode else 0
        dec = float(np.mean(step.decode_share_s(inp, out, B))) if p.decode and len(w) else 0.0
        warm = float(np.mean(pre_warm)) if p.prefill and len(w) else 0.0
        cold = float(np.mean(pre_cold)) if p.prefill and len(w) else 0.0
        row: dict[str, Any] = {
            "workers": p.workers, "prefill_s_per_request": warm, "prefill_cold_s_per_request": cold,
            "decode_s_per_request": dec, "decode_batch": B,
            "offered_load_share": None, "offered_load_cold_share": None, "workers_for_0_8_load": None,
        }
        if rate is not None and p.workers > 0:
            row["offered_load_share"] = rate * (warm + dec) / p.workers
            row["offered_load_cold_share"] = rate * (cold + dec) / p.workers
            row["workers_for_0_8_load"] = max(1, math.ceil(rate * (warm + dec) / TARGET_LOAD - 1e-9))
        by_pool[p.name] = row
    total_in = max(1, int(inp.sum()))
    return {
        "arrival_rate_req_s": rate,
        "reusable_prefix_share": float(hit.sum() / total_in),
        "target_load_share": TARGET_LOAD,
        "pools": by_pool,
    }


def headline(block: dict[str, Any], names: list[str]) -> tuple[float | None, int | None]:
    """(highest offered load, workers for 0.8 summed) over the named pools (one deployment)."""
    rows = [block["pools"][n] for n in names if n in block["pools"]]
    loads = [r["offered_load_share"] for r in rows if r["offered_load_share"] is not None]
    need = [r["workers_for_0_8_load"] for r in rows if r["workers_for_0_8_load"] is not None]
    return (max(loads) if loads else None), (sum(need) if need and len(need) == len(rows) else None)


__all__ = ["Pool", "TARGET_LOAD", "arrival_rate_req_s", "decode_batch", "headline", "offered_load",
           "reusable_prefix_tokens"]
