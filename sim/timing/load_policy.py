"""Load a cached prefix from a lower tier, or recompute it: whichever gives the earlier first token.

A request's cached prefix is split by where its blocks are, in lookup order:
HBM first (already on the GPU, always used), then the lower tiers (host
DRAM, SSD, EIC, remote...). A prefix must be contiguous, so the only
choices are cut points at those boundaries: use the HBM part and the first
``k`` lower parts, recompute the rest with the new tokens.

``cache.load_policy``:

* ``always``: use every cached part (load all of it).
* ``faster``: for every cut estimate the time from now to "prefill done"
  (``sim.timing.overlap.prefill_done_s`` with ``cache.load_overlap``) and
  take the smallest; ties go to loading (the later cut: loading spends no
  GPU time). The load time of a cut is the largest of its parts' estimates:
  the parts come from different tiers over different links and load
  concurrently. A part's estimate is made by the mode from the link's
  current state (bytes / the share a transfer would get now + latency,
  ``sim.timing.priority_link.estimate_s``), so a congested SSD link makes
  its part look slow; later arrivals are not foreseen.

The prefill cost is a callable ``prefill_s(new_tokens, cached_tokens)`` -
the step model's ``StepModel.prefill_s`` or ``sim.timing.compute.prefill_time_s``
bound to a deployment.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

from sim.timing.overlap import prefill_done_s

LoadPolicy = Literal["always", "faster"]
LOAD_POLICIES: tuple[LoadPolicy, ...] = ("always", "faster")


# NamedTuples rather than frozen dataclasses: a timed replay makes four per request, and a frozen
# dataclass sets each field through object.__setattr__.
class PrefixPart(NamedTuple):
    """Cached prefix tokens held by one tier and the estimated seconds to bring them to HBM."""

    tokens: int
    load_s: float = 0.0


class LoadChoice(NamedTuple):
    parts_used: int  # leading parts used, the HBM part included (>= 1)
    tokens_used: int  # cached tokens used
    recomputed_tokens: int  # cached tokens of the parts not used (recomputed with the new ones)
    load_s: float  # estimated load time of the parts used (0 when only HBM is used)
    prefill_s: float  # estimated prefill of the tokens not used
    done_s: float  # estimated seconds from now to "prefill done"

    @property
    def recomputed(self) -> bool:
        """A cached prefix part was recomputed instead of loaded."""
        return self.recomputed_tokens > 0


def choose_prefix(parts: Sequence[PrefixPart], input_tokens: int, prefill_s: Callable[[int, int], float], *,
                  layers: int, overlap: str = "layerwise", policy: str = "faster",
                  start_s: float = 0.0) -> LoadChoice:
    """How many leading cached tokens to use (see the module docstring).

    ``parts[0]`` is the HBM part (its load_s is ignored: it is on the GPU).
    ``start_s``: seconds from now before the GPU could start the prefill
    (0 = at once). Parts' tokens must sum to at most ``input_tokens``.
    """
    if not parts:
        raise ValueError("parts must contain at least the HBM part (tokens may be 0)")
    if policy not in LOAD_POLICIES:
        raise ValueError(f"unknown load policy {policy!r} (known: {', '.join(LOAD_POLICIES)})")
    # plain loops, not generators: once per request with a lower-tier hit (same sums and maxima)
    total = 0
    bad = False
    for p in parts:
        total += p.tokens
        if p.tokens < 0 or p.load_s < 0:
            bad = True
    if total > input_tokens or bad:
        raise ValueError(f"cached parts ({total} tokens) must be >= 0 and within the input ({input_tokens})")
    best: tuple[int, int, float, float, float] | None = None  # the LoadChoice fields, built once at the end
    n_parts = len(parts)
    cuts = range(n_parts, 0, -1) if policy == "faster" else (n_parts,)
    for k in cuts:  # from "load everything" down: on a tie the earlier (more loading) cut stays
        if k < n_parts and parts[k].tokens == 0:
            continue  # dropping an empty part changes nothing: a tie with cut k + 1, which stays
        used = parts[0].tokens
        load: float | None = None  # max(... loads of the non-empty parts 1..k-1, default=0.0)
        for j in range(1, k):
            p = parts[j]
            used += p.tokens
            if p.tokens > 0 and (load is None or p.load_s > load):
                load = p.load_s
        if load is None:
            load = 0.0
        pre = prefill_s(input_tokens - used, used)
        done = prefill_done_s(load, pre, layers, overlap, start_s)
        if best is None or done < best[4]:
            best = (k, used, load, pre, done)
    assert best is not None
    k, used, load, pre, done = best
    return LoadChoice(k, used, total - used, load, pre, done)


def hbm_only(hbm_tokens: int, input_tokens: int, prefill_s: Callable[[int, int], float], n_parts: int) -> LoadChoice:
    """``choose_prefix`` over `n_parts` parts of which only the HBM part holds tokens (nothing to
    load), under either policy and overlap: every cut but "all parts" is skipped, so the answer is
    that cut's, the same floats without the loop (the common case of a timed run, once per request)."""
    if not 0 <= hbm_tokens <= input_tokens:
        raise ValueError(f"cached parts ({hbm_tokens} tokens) must be >= 0 and within the input ({input_tokens})")
    pre = prefill_s(input_tokens - hbm_tokens, hbm_tokens)
    if pre < 0:
        raise ValueError(f"times must be >= 0 (load 0.0, prefill {pre})")
    return LoadChoice(n_parts, hbm_tokens, 0, 0.0, pre, 0.0 + pre)


__all__ = ["LOAD_POLICIES", "LoadChoice", "LoadPolicy", "PrefixPart", "choose_prefix", "hbm_only"]
