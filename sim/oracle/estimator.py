"""Heuristic hit-rate estimator: no trace, a workload description instead.

Workload model (all token counts per request unless noted): every request
starts with a ``shared_prefix_tokens`` prefix common to all sessions (system
prompt, tool list), then the session's private history, then
``new_tokens_per_turn`` new tokens. At turn ``t`` (1-based) the history is
``H_t = min((t - 1) x new_tokens_per_turn, private_window_tokens)`` (window
0 = unlimited). Averaged over ``turns_per_session`` turns (fractional turns
interpolate between the neighbouring whole numbers):

    input   = P + Hbar + n
    content = (P + Hbar) / input           # unlimited-capacity hit rate

Capacity ``K`` tokens: the shared prefix is the hottest data and is kept
first (``min(1, K / P)`` of it); the rest ``K - P`` holds private contexts
of ``ctx = Hbar + n`` tokens each. The fraction ``f`` of private reuse that
survives follows the curve mode:

* ``linear``:        f = min(1, (K - P) / (S x ctx))          S = concurrent sessions
* ``power_law_fit``: f = min(1, ((K - P) / (S x ctx)) ** beta)
* ``zipf_harmonic``: the ``k = (K - P) / ctx`` most popular of ``population``
  sessions (Zipf exponent ``zipf_s``) stay: f = H(k, s) / H(population, s)

    optimum hit rate = (P x kept_shared + Hbar x f) / input
    policy hit rate  = (P x kept_shared + efficiency x Hbar x f) / input

``policy_efficiency`` is the share of the optimal private reuse a practical
policy keeps (``lru_like`` 0.6 by default; ``calibrate`` fits it). Capacity
per tier comes from the deployment as in capacity.py.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

from sim.config.kv_sizes import kv_bytes_per_token_total
from sim.config.models import model_spec
from sim.errors import InputError, check_number
from sim.oracle.bounds import BOUND_LABELS
from sim.oracle.capacity import Deployment, Tier, hbm_capacity, tier_capacities
from sim.oracle.planning import plan_cards

CURVES = ("linear", "power_law_fit", "zipf_harmonic")
POLICY_EFFICIENCY = {"lru_like": 0.6, "optimal": 1.0}


# Bounds of the heuristic's inputs. turns_per_session is averaged turn by turn
# (a million turns is ~0.1 s); the rest are far above real workloads.
BOUNDS: dict[str, tuple[float, float]] = {
    "concurrent_sessions": (1, 1e9), "turns_per_session": (1, 1e6),
    "shared_prefix_tokens": (0, 1e9), "new_tokens_per_turn": (0, 1e9), "private_window_tokens": (0, 1e12),
    "population": (0, 1e12), "power_beta": (0, 100), "zipf_s": (0, 100), "policy_efficiency": (0, 1),
}
# The `estimate` flag of each parameter, for messages.
FLAGS = {"concurrent_sessions": "--sessions", "turns_per_session": "--turns"}


@dataclass
class HeuristicParams:
    concurrent_sessions: float = 100.0  # live sessions / agents competing for the cache (count)
    shared_prefix_tokens: float = 2048.0  # prefix common to every request (tokens)
    new_tokens_per_turn: float = 500.0  # new tokens appended per turn (tokens)
    turns_per_session: float = 5.0  # turns per session (count, may be fractional)
    private_window_tokens: float = 0.0  # cap on a session's private history (tokens, 0 = none)
    curve: str = "linear"  # linear | power_law_fit | zipf_harmonic
    power_beta: float = 0.5  # exponent of power_law_fit
    zipf_s: float = 1.0  # Zipf exponent of session popularity (zipf_harmonic)
    population: float = 0.0  # sessions in the Zipf population (0 = concurrent_sessions)
    policy_efficiency: float = 0.6  # share of optimal private reuse the policy keeps (lru_like 0.6)

    def validate(self, where: str | None = None) -> HeuristicParams:
        """Refuse values outside BOUNDS (naming the `estimate` flag, or `where`: key for a JSON file)."""
        def name(k: str) -> str:
            return f"{where}: {k}" if where else FLAGS.get(k, "--" + k.replace("_", "-"))

        if self.curve not in CURVES:
            raise InputError(f"unknown curve {str(self.curve)[:40]!r} (known: {', '.join(CURVES)})",
                             where=name("curve"))
        for k, (lo, hi) in BOUNDS.items():
            check_number(getattr(self, k), name(k), lo=lo, hi=hi, lo_open=k == "power_beta")
        if self.new_tokens_per_turn <= 0 and self.shared_prefix_tokens <= 0:
            raise InputError("a request needs new or shared tokens", where=name("new_tokens_per_turn"))
        return self

    @classmethod
    def from_dict(cls, d: dict, where: str = "heuristic") -> HeuristicParams:
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise InputError(f"unknown heuristic keys {bad} (known: {sorted(known)})", where=where)
        return cls(**d).validate(None if where == "estimate flags" else where)

    def to_dict(self) -> dict:
        return asdict(self)


def _mean_history(p: HeuristicParams) -> float:
    def at(turns: int) -> float:
        n, w = p.new_tokens_per_turn, p.private_window_tokens
        hs = [(t - 1) * n for t in range(1, turns + 1)]
        if w > 0:
            hs = [min(h, w) for h in hs]
        return sum(hs) / turns

    lo = max(1, math.floor(p.turns_per_session))
    frac = p.turns_per_session - lo
    return at(lo) if frac <= 0 else (1 - frac) * at(lo) + frac * at(lo + 1)


@lru_cache(maxsize=256)
def _head(m: int, s: float) -> float:
    return float(sum(j ** -s for j in range(1, m + 1)))


def _harmonic(k: float, s: float) -> float:
    """Generalised harmonic number H(k, s), linear in the fractional part of k.

    Exact sum up to 1000 terms; beyond, the midpoint integral
    (Euler-Maclaurin, error < 1e-7 relative) keeps huge populations O(1).
    """
    if k <= 0:
        return 0.0
    whole = int(math.floor(k))
    if whole <= 1000:
        base = _head(whole, s)
    else:
        a, b = 1000.5, whole + 0.5
        tail = math.log(b / a) if abs(s - 1) < 1e-12 else (b ** (1 - s) - a ** (1 - s)) / (1 - s)
        base = _head(1000, s) + tail
    return base + (k - whole) * (whole + 1) ** -s


def describe(p: HeuristicParams) -> dict:
    hbar = _mean_history(p)
    inp = p.shared_prefix_tokens + hbar + p.new_tokens_per_turn
    ctx = hbar + p.new_tokens_per_turn
    return {"input_tokens_mean": inp, "history_tokens_mean": hbar, "context_tokens_per_session": ctx,
            "content_hit_rate": (p.shared_prefix_tokens + hbar) / inp,
            "working_set_tokens": p.shared_prefix_tokens + p.concurrent_sessions * ctx}


def hit_rates(p: HeuristicParams, capacity_tokens: float) -> tuple[float, float]:
    """(optimum-like, policy) token hit rates at `capacity_tokens`."""
    d = describe(p)
    P, hbar, ctx, inp = p.shared_prefix_tokens, d["history_tokens_mean"], d["context_tokens_per_session"], \
        d["input_tokens_mean"]
    K = max(0.0, float(capacity_tokens))
    kept_shared = 1.0 if P <= 0 else min(1.0, K / P)
    priv = max(0.0, K - P)
    if hbar <= 0 or priv <= 0:
        f = 0.0
    elif p.curve == "linear":
        f = min(1.0, priv / (p.concurrent_sessions * ctx))
    elif p.curve == "power_law_fit":
        f = min(1.0, (priv / (p.concurrent_sessions * ctx)) ** p.power_beta)
    else:
        pop = p.population or p.concurrent_sessions
        k = min(pop, priv / ctx)
        f = _harmonic(k, p.zipf_s) / _harmonic(pop, p.zipf_s)
    opt = (P * kept_shared + hbar * f) / inp
    pol = (P * kept_shared + p.policy_efficiency * hbar * f) / inp
    return opt, pol


def estimate(p: HeuristicParams, dep: Deployment, tiers: list[Tier], *, block_tokens: int = 16,
             target_tps: float = 0.0, baseline: float = 0.0, alpha: float = 0.8) -> dict:
    """Hit rate per tier and (with a target) the planning table, for the description `p`."""
    p.validate()
    spec = model_spec(dep.model)
    per_token = kv_bytes_per_token_total(spec, dep.kv_dtype)
    rows = []
    for cap in tier_capacities(dep, block_tokens, tiers):
        tokens = cap.blocks * block_tokens
        opt, pol = hit_rates(p, tokens)
        rows.append({"tier": cap.tier, "capacity_gib": cap.gb, "capacity_tokens": tokens,
                     "hit_rate_optimum": opt, "hit_rate_policy": pol})
    out: dict[str, Any] = {"params": p.to_dict(), "derived": describe(p), "kv_bytes_per_token": per_token,
                           "tiers": rows, "deployment": asdict(dep), "planning": []}
    if target_tps > 0:
        if dep.cards <= 0:
            raise InputError("planning needs a GPU deployment: give --gpu and --cards", where="--cards")
        hbm_capacity(dep, block_tokens)  # validates the deployment
        for which, idx in ((BOUND_LABELS["strict_prefix"], 0), (BOUND_LABELS["lru"], 1)):
            def hit_rate_at(blocks: int, i: int = idx) -> float:
                return hit_rates(p, blocks * block_tokens)[i]

            row = plan_cards("all", which, dep, block_tokens, hit_rate_at,
                             target_tps=target_tps, baseline=baseline, alpha=alpha)
            out["planning"].append(row.to_dict())
    return out
