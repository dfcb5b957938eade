"""The four hit-rate bounds of one request stream at one capacity.

* **content**: unlimited capacity; an access hits when its block id was seen
  before (any position).
* **relaxed**: the best any eviction policy can do with ``C`` blocks when
  prefix order is ignored (every resident block counts, OPT on the block
  access sequence).
* **strict-prefix optimum**: a request's hit stops at its first missing
  block; the best schedule of ``C`` blocks under that rule.
* **LRU**: strict-prefix LRU replay (``sim.policies.replay.prefix_replay``).

``content >= relaxed >= strict-prefix optimum >= LRU`` holds by construction:
every LRU run is a strict-prefix schedule, every strict-prefix hit is a
relaxed hit, every relaxed hit is a repeat.

Theorem (relaxed = strict-prefix optimum on prefix-consistent traces, for any
non-increasing-in-depth access weights, tokens or blocks). Proof sketch:
take an optimal relaxed schedule as a set of reuse intervals (flow.py). If
block ``y`` hits at request ``q`` through interval ``(p, q]`` but its parent
``x`` does not, then ``x`` is accessed at ``p`` and at ``q`` too (every
request holding ``y`` holds ``x``), so ``x``'s interval ending at ``q`` is
``(p', q]`` with ``p' >= p``: nested in ``y``'s. Swap them: loads only drop,
weight does not drop (``x`` is not the last block of request ``q``, so it
weighs a full block). The depth of the swapped interval strictly drops, so
repeating ends with a schedule whose hits at each request are ancestor-closed
subsets of a root path, i.e. prefixes: a strict-prefix schedule of equal
value. Hence max relaxed <= max strict <= max relaxed. (The per-request
capacity model of flow.py and the per-access model of Belady give the same
optimum: a per-access schedule's state at a request start serves the same
hits; conversely insertions during a request can evict the request's blocks
already served, because on a prefix schedule all hits precede all inserts.)

How each is computed:

* block-weighted relaxed = strict optimum: Belady with bypass (exact for
  unit weights); its hits are checked to form prefixes (they do on
  prefix-consistent traces: a parent's next use always precedes its child's).
* token-weighted (the headline): partial last blocks make Belady inexact, so
  the exact optimum is the min-cost flow of flow.py with a recomputed dual
  certificate (relaxed); its schedule is made prefix-closed (flow.prefix_close)
  and replayed under the strict rule (strict). ``proven_optimal`` is True when
  the strict schedule's value meets the dual bound. ``method="belady"``
  skips the LP: tokens of Belady's block-optimal schedule (a lower bound,
  ``proven_optimal`` only when it meets ``block_tokens x hits``).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from sim.oracle.access import Accesses, leading_run
from sim.oracle.flow import interval_loads, max_weight_schedule, prefix_close
from sim.oracle.replays import belady_hits, content_hits, lru_prefix_hits

METHODS = ("exact", "belady")
BOUND_NAMES = ("content", "relaxed", "strict_prefix", "lru")
# Output names of the bounds: policies[].name and the <bound>_hit_rate columns (the same in sweeps).
BOUND_LABELS = {"content": "content", "relaxed": "relaxed", "strict_prefix": "strict_prefix_opt", "lru": "lru"}


@dataclass
class Bounds:
    """Hit tokens / hit blocks of each bound on one stream at one capacity."""

    capacity_blocks: int
    requests: int
    input_tokens: int
    blocks: int
    tokens: dict[str, float]  # bound -> hit tokens
    block_hits: dict[str, int]  # bound -> hit blocks
    proven_optimal: bool
    method: str
    notes: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    certificate: dict = field(default_factory=dict)

    def hit_rate(self, name: str) -> float:
        return float(self.tokens[name] / self.input_tokens) if self.input_tokens else 0.0

    def block_hit_rate(self, name: str) -> float:
        return float(self.block_hits[name] / self.blocks) if self.blocks else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hit_rate"] = {k: self.hit_rate(k) for k in BOUND_NAMES}
        d["block_hit_rate"] = {k: self.block_hit_rate(k) for k in BOUND_NAMES}
        return d


def _strict_tokens(acc: Accesses, hit: np.ndarray) -> tuple[int, int]:
    run = leading_run(hit, acc)
    return int(acc.weight[run].sum()), int(run.sum())


def compute_bounds(acc: Accesses, capacity: int, method: str = "exact") -> Bounds:
    """All four bounds at `capacity` blocks (see module doc)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    t = {}
    t0 = time.perf_counter()
    notes: list[str] = []
    cont = content_hits(acc)
    tokens: dict[str, float] = {"content": int(acc.weight[cont].sum())}
    blocks = {"content": int(cont.sum())}
    t["content"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    bel = belady_hits(acc, capacity)
    bel_blocks = int(bel.sum())
    bel_strict_tokens, bel_strict_blocks = _strict_tokens(acc, bel)
    blocks["relaxed"] = bel_blocks
    blocks["strict_prefix"] = bel_strict_blocks
    if bel_strict_blocks != bel_blocks:
        notes.append("Belady hits do not form prefixes (trace not prefix-consistent): "
                     "block-weighted strict-prefix figure is a lower bound")
    t["belady"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cert: dict = {}
    bt = acc.block_tokens
    if method == "belady":
        relaxed_ub = float(min(tokens["content"], bt * bel_blocks))
        tokens["relaxed"] = relaxed_ub
        tokens["strict_prefix"] = bel_strict_tokens
        proven = bel_strict_tokens >= relaxed_ub - 1e-9 and acc.prefix_consistent
        used = "belady (block-optimal schedule; tokens are a lower bound, relaxed = block_tokens x hits bound)"
        cert = {"lower_bound": bel_strict_tokens, "upper_bound": relaxed_ub}
    else:
        fr = max_weight_schedule(acc, capacity)
        closed = prefix_close(acc, fr.chosen)
        feasible = bool(interval_loads(acc, closed).max() <= max(capacity, 0)) if acc.n else True
        strict_tok, _ = _strict_tokens(acc, closed) if feasible else (0, 0)
        # A feasible strict schedule never beats the relaxed optimum, and the
        # block-optimal Belady schedule is a strict schedule too.
        strict_tok = max(strict_tok, bel_strict_tokens)
        tokens["relaxed"] = float(fr.value if fr.proven else fr.upper_bound)
        tokens["strict_prefix"] = strict_tok
        proven = fr.proven and strict_tok >= fr.upper_bound - (1.0 - 1e-6)
        used = fr.method
        cert = {"relaxed_primal": fr.value, "relaxed_dual_bound": fr.upper_bound, "relaxed_proven": fr.proven,
                "strict_schedule_tokens": strict_tok, **fr.stats}
        if not fr.proven:
            notes.append("LP optimum not certified: relaxed column is the dual upper bound")
        if not proven and fr.proven:
            notes.append("strict-prefix schedule below the relaxed optimum: strict column is a lower bound")
    t["optimum"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lru = lru_prefix_hits(acc, capacity)
    tokens["lru"] = int(acc.weight[lru].sum())
    blocks["lru"] = int(lru.sum())
    t["lru"] = time.perf_counter() - t0
    # LRU's run is itself a strict-prefix schedule: the best known one is kept
    # when the optimum is only bounded (never changes a proven optimum).
    if tokens["lru"] > tokens["strict_prefix"]:
        tokens["strict_prefix"] = tokens["lru"]
    if not acc.prefix_consistent:
        notes.append("block ids are not prefix-consistent: the relaxed = strict-prefix theorem does not apply")
    return Bounds(
        capacity_blocks=int(capacity), requests=acc.n_requests, input_tokens=acc.total_tokens(), blocks=acc.n,
        tokens=tokens, block_hits=blocks, proven_optimal=bool(proven), method=used, notes=notes,
        timings_s=t, certificate=cert,
    )


def single_bound_tokens(acc: Accesses, capacity: int, bound: str, method: str = "exact") -> float:
    """Hit tokens of one bound only (planning and calibration evaluate many capacities)."""
    if bound == "content":
        return float(acc.weight[content_hits(acc)].sum())
    if bound == "lru":
        return float(acc.weight[lru_prefix_hits(acc, capacity)].sum())
    if bound not in ("relaxed", "strict_prefix"):
        raise ValueError(f"unknown bound {bound!r} (known: {', '.join(BOUND_NAMES)})")
    if method == "belady":
        hit = belady_hits(acc, capacity)
        if bound == "relaxed":
            return float(min(acc.weight[content_hits(acc)].sum(), acc.block_tokens * hit.sum()))
        return float(_strict_tokens(acc, hit)[0])
    fr = max_weight_schedule(acc, capacity)
    if bound == "relaxed":
        return float(fr.value if fr.proven else fr.upper_bound)
    closed = prefix_close(acc, fr.chosen)
    if acc.n and interval_loads(acc, closed).max() > capacity:
        return float(_strict_tokens(acc, belady_hits(acc, capacity))[0])
    return float(_strict_tokens(acc, closed)[0])
