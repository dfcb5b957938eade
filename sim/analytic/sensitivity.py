"""Sensitivity of the analytic hit rate to one input, all others fixed."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from sim.analytic.hit_rate import hit_rate
from sim.analytic.inputs import HitRateInputs, parse_inputs
from sim.config.kv_sizes import GIB
from sim.errors import InputError


def _geometric(lo: float, hi: float, n: int) -> list[float]:
    if n == 1 or lo == hi:
        return [lo]
    r = (hi / lo) ** (1 / (n - 1))
    return [lo * r**i for i in range(n)]


def _around(v: float, n: int, *, lo_min: float = 0.0, as_int: bool = False, lo_factor: float = 0.25,
            hi_factor: float = 4.0) -> list[float]:
    """n points geometric from v x lo_factor to v x hi_factor (integers de-duplicated)."""
    vals = _geometric(max(v * lo_factor, lo_min), v * hi_factor, n)
    if as_int:
        vals = sorted({max(int(lo_min), round(x)) for x in vals})
    return vals


def _gpus(inp: HitRateInputs, cur: dict, n: int) -> list[int]:
    unit = cur["tp"] * cur["pp"]
    k = inp.gpus // unit
    top = max(4 * k, 8)
    step = max(1, math.ceil(top / n))
    return [unit * m for m in range(step, top + 1, step)] if step > 1 else [unit * m for m in range(1, top + 1)]


def _kv_budget(inp: HitRateInputs, cur: dict, n: int) -> list[float]:
    """From well below the current budget to past the one that holds every active conversation
    (the knee of the curve), whichever is larger."""
    full = ((cur["tokens_needed"] + cur["system_prompt_tokens_cached"]) / cur["replicas"]
            * cur["kv_bytes_per_token_per_gpu"] / GIB)
    have = cur["kv_budget_gib_per_gpu"]
    lo = min(have, full) / 16 if full > 0 else have / 16
    return _geometric(lo, max(2 * have, 1.5 * full), n)


# param -> (default values from (inputs, current result, n), cast of one value)
PARAMS: dict[str, tuple[Callable[[HitRateInputs, dict, int], list], Callable[[float], Any]]] = {
    "arrival_rate": (lambda i, c, n: _around(i.arrival_rate, n), float),
    "turns": (lambda i, c, n: _around(i.turns, n, lo_min=1.0), float),
    "interval_s": (lambda i, c, n: _around(i.interval_s, n), float),
    "prompt_tokens": (lambda i, c, n: _around(i.prompt_tokens, n, lo_min=1, as_int=True), int),
    "response_tokens": (lambda i, c, n: _around(max(1, i.response_tokens), n, lo_min=0, as_int=True), int),
    "system_prompt_tokens": (
        lambda i, c, n: _around(i.system_prompt_tokens or 1024, n, lo_min=0, as_int=True, lo_factor=1 / 16),
        int),
    "gpus": (_gpus, int),
    "kv_budget_gb": (_kv_budget, float),
    "memory_gb": (lambda i, c, n: _around(c["gpu_memory_gib"], n, lo_factor=0.5, hi_factor=3.0), float),
}


def sensitivity(inputs: dict[str, Any] | HitRateInputs, param: str, values: Iterable[float] | None = None,
                n: int = 13) -> dict[str, Any]:
    """Hit rate (and coverage) as `param` takes each of `values` (default: a range around the current value).

    A value the model rejects (e.g. a GPU count that does not split into
    replicas) raises InputError naming `param`. With default values, points
    where the deployment cannot work at all (weights do not fit) are skipped.
    """
    inp = parse_inputs(inputs)
    if param not in PARAMS:
        raise InputError(f"cannot vary {param!r} (one of: {', '.join(PARAMS)})", where="vary")
    cur = hit_rate(inp)
    default_fn, cast = PARAMS[param]
    given = values is not None
    vals = list(values) if values is not None else default_fn(inp, cur, max(2, int(n)))
    if given and not vals:
        raise InputError("no values given", where="values")
    fixed = {"tp": cur["tp"]}  # keep the layout: an auto TP must not change along the curve
    rows = []
    for v in vals:
        try:
            r = hit_rate(inp.model_copy(update={param: cast(v), **fixed}).model_dump())
        except InputError as e:
            if given:
                raise InputError(f"{param}={v}: {e}", where="values") from None
            continue
        rows.append({param: cast(v), "hit_rate": r["hit_rate"], "coverage": r["coverage"],
                     "lru_hit_rate": r["lru_hit_rate"],
                     "tokens_needed": r["tokens_needed"], "cacheable_tokens": r["cacheable_tokens"]})
    current = cur["inputs"][param]
    if current is None:  # memory_gb / kv_budget_gb left to the preset: report the derived value
        current = cur["kv_budget_gib_per_gpu"] if param == "kv_budget_gb" else cur["gpu_memory_gib"]
    return {"param": param, "current": current, "current_hit_rate": cur["hit_rate"], "rows": rows}


__all__ = ["PARAMS", "sensitivity"]
