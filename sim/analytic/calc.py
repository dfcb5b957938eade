"""One call behind `calc hit-rate` and the web calculator: the hit rate, plus the
target-hit-rate suggestion and a sensitivity curve when asked for."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sim.analytic.hit_rate import hit_rate
from sim.analytic.inputs import HitRateInputs, parse_inputs
from sim.analytic.sensitivity import sensitivity
from sim.analytic.suggest import suggest


def calc_hit_rate(inputs: dict[str, Any] | HitRateInputs, *, target_hit_rate: float | None = None,
                  vary: str | None = None, values: Iterable[float] | None = None,
                  points: int = 13) -> dict[str, Any]:
    """hit_rate(inputs), with ``target`` = suggest(...) and ``sensitivity`` = sensitivity(...) when asked."""
    inp = parse_inputs(inputs)
    out = hit_rate(inp)
    if target_hit_rate is not None:
        out["target"] = suggest(inp, target_hit_rate)
    if vary is not None:
        out["sensitivity"] = sensitivity(inp, vary, values, n=points)
    return out


__all__ = ["calc_hit_rate"]
