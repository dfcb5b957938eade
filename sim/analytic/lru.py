"""How much of the conversation reuse an LRU cache keeps (Che's approximation).

The headline coverage ``min(1, cacheable / needed)`` assumes the memory keeps
whole conversations up to its size. A least-recently-used cache does a little
worse, for two reasons this estimate models:

* think times vary: with exponential (memoryless) gaps of mean I, a context
  survives a gap shorter than the cache's characteristic time t_C and is lost
  after a longer one, so some reuse is lost even when memory = need, while
  finished conversations' last contexts linger for t_C;
* contexts are large: a context of F tokens survives only while the *others*
  touch fewer than C - F tokens, so long conversations (which carry most of
  the reusable tokens) are lost first.

Unique tokens touched in a window t (per replica; lam = arrival rate per
replica, F_k = cached tokens of a conversation after turn k)::

    Phi(t) = lam I sum_k F_k [P(T > k) (1 - e^{-t/I}) + P(T = k) t / I]

(a context with a next turn stays fresh until that turn, E[min(t, gap)] =
I (1 - e^{-t/I}); a last context for the whole window). Writing
q = 1 - e^{-t/I}: Phi = A q - B ln(1 - q), with A + B = the Little's-law
tokens needed. The context after turn k is reused when Phi(t_k) = C - F_k has
q_k = 1 - e^{-t_k/I} > gap's CDF, i.e. with probability q_k (0 if F_k >= C).
Lengths of messages are taken at their means.
"""
from __future__ import annotations

import numpy as np

from sim.analytic.inputs import HitRateInputs
from sim.analytic.turns import turn_survival

_BISECT_STEPS = 80


def _solve_q(a: float, b: float, x: np.ndarray) -> np.ndarray:
    """q in [0, 1) with a q - b ln(1 - q) = x (x >= 0), elementwise; 1 where a >= x and b == 0."""
    lo = np.zeros_like(x)
    hi = np.ones_like(x)
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2
        with np.errstate(divide="ignore"):
            f = a * mid - b * np.log1p(-mid)
        below = f < x
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return lo


def lru_conversation_hits(inp: HitRateInputs, replicas: int, capacity_per_replica: float) -> dict[str, float]:
    """Expected conversation hit tokens per conversation under LRU, and the coverage they make."""
    u, o = inp.prompt_tokens, inp.response_tokens
    k, p_next, p_last = turn_survival(inp)
    footprint = k * (u + o) if inp.cache_outputs else k * u + (k - 1) * o
    reusable = float(np.dot(p_next, footprint))  # hit tokens per conversation with unlimited memory
    if reusable == 0:
        return {"conversation_hit_tokens": 0.0, "coverage": 1.0}
    lam_i = inp.arrival_rate / replicas * inp.interval_s
    a = lam_i * float(np.dot(p_next, footprint))
    b = lam_i * float(np.dot(p_last, footprint))
    room = np.maximum(0.0, capacity_per_replica - footprint)
    q = _solve_q(a, b, room)
    q = np.where(footprint >= capacity_per_replica, 0.0, q)
    hits = float(np.dot(p_next * footprint, q))
    return {"conversation_hit_tokens": hits, "coverage": hits / reusable}


__all__ = ["lru_conversation_hits"]
