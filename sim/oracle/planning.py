"""Cards and machines needed for a target throughput, given a hit-rate curve.

A hit token skips a share ``alpha`` (``prefill_savings_alpha``, default 0.8)
of its prefill cost, so with token hit rate ``h`` a card serves

    effective_per_card_tps = baseline_per_card_tps / (1 - alpha x h)

and ``cards x effective_per_card_tps >= target_tps`` is the requirement.
More cards also mean more KV capacity and so a higher ``h``: the search runs
over the card count itself (in whole tp x pp replicas), re-evaluating ``h``
at each candidate's capacity. ``h`` is non-decreasing in capacity for the
optimum and for LRU (LRU's inclusion property), so the requirement is
monotone in the card count and a bisection finds the minimum.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sim.errors import InputError, check_number
from sim.oracle.capacity import Deployment, hbm_capacity, machines_of

# Bounds of the planning inputs: far above any real fleet, low enough that the
# card search stays a few dozen steps of exact integers.
MAX_TPS = 1e12
MIN_BASELINE_TPS = 1e-3
MAX_PLAN_CARDS = 10_000_000

PLAN_COLUMNS = ["bucket", "bound", "target_tps", "baseline_per_card_tps", "alpha", "cards", "machines",
                "capacity_gib", "capacity_blocks", "hit_rate", "effective_per_card_tps", "total_tps",
                "cards_without_cache", "cards_saved", "feasible"]


@dataclass
class PlanRow:
    bucket: str
    bound: str
    target_tps: float
    baseline_per_card_tps: float
    alpha: float
    cards: int
    machines: int
    capacity_gib: float
    capacity_blocks: int
    hit_rate: float
    effective_per_card_tps: float
    total_tps: float
    cards_without_cache: int
    cards_saved: int
    feasible: bool

    def to_dict(self) -> dict:
        return asdict(self)


def effective_tps(baseline: float, alpha: float, hit_rate: float) -> float:
    """Per-card throughput with hit rate `hit_rate` (see module doc)."""
    return baseline / (1.0 - alpha * hit_rate)


def check_plan_inputs(target_tps: float, baseline: float, alpha: float) -> None:
    """Finite, positive inputs whose card count without cache stays <= MAX_PLAN_CARDS."""
    check_number(target_tps, "--target-tps", lo=0, lo_open=True, hi=MAX_TPS)
    check_number(baseline, "--baseline-per-card-tps", lo=MIN_BASELINE_TPS, hi=MAX_TPS)
    check_number(alpha, "--alpha", lo=0, hi=1)
    if not alpha < 1:
        raise InputError(f"must be in [0, 1) (got {alpha})", where="--alpha")
    if target_tps / baseline > MAX_PLAN_CARDS:
        raise InputError(f"{target_tps:g} / {baseline:g} TPS per card needs more than {MAX_PLAN_CARDS:,} cards "
                         f"without cache; above the planning limit", where="--target-tps")


def plan_cards(bucket: str, bound: str, dep: Deployment, block_tokens: int,
               hit_rate_at: Callable[[int], float], *, target_tps: float, baseline: float,
               alpha: float = 0.8, max_hit_rate: float = 1.0) -> PlanRow:
    """Minimum cards (whole replicas) meeting `target_tps`; `hit_rate_at(blocks)` gives h."""
    check_plan_inputs(target_tps, baseline, alpha)
    group = dep.tp * dep.pp
    memo: dict[int, tuple[float, int, float]] = {}

    def at(replicas: int) -> tuple[float, int, float]:
        if replicas not in memo:
            cap = hbm_capacity(dep.with_cards(replicas * group), block_tokens)
            memo[replicas] = (hit_rate_at(cap.blocks), cap.blocks, cap.gb)
        return memo[replicas]

    def ok(r: int) -> bool:
        return r * group * effective_tps(baseline, alpha, at(r)[0]) >= target_tps * (1 - 1e-12)

    no_cache = max(1, math.ceil(target_tps / (baseline * group)))  # h = 0 always suffices
    lo = max(1, math.floor(target_tps * (1 - alpha * max_hit_rate) / (baseline * group)))
    lo = min(lo, no_cache)
    if ok(lo):
        hi = lo
    else:
        hi = no_cache
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid
    h, blocks, gb = at(hi)
    cards = hi * group
    eff = effective_tps(baseline, alpha, h)
    return PlanRow(bucket, bound, target_tps, baseline, alpha, cards,
                   machines_of(dep.with_cards(cards)), round(gb, 3), blocks, h, eff, cards * eff,
                   no_cache * group, no_cache * group - cards, bool(cards * eff >= target_tps * (1 - 1e-12)))
