"""Closed-form calculators: analytic hit rate (Little's law), its sensitivity,
the smallest change reaching a target, and the reuse-vs-recompute break-even.

Pure functions returning dicts; `python main.py calc hit-rate|reuse` and the
web UI (`web/`) are two front ends over the same calls.
"""
from sim.analytic.calc import calc_hit_rate
from sim.analytic.hit_rate import conversation_tokens, hit_rate, memory_for_hit_rate
from sim.analytic.inputs import HitRateInputs, parse_inputs
from sim.analytic.latency import latency_report
from sim.analytic.reuse import reuse_breakeven
from sim.analytic.sensitivity import PARAMS as SENSITIVITY_PARAMS
from sim.analytic.sensitivity import sensitivity
from sim.analytic.suggest import suggest

__all__ = [
    "HitRateInputs", "SENSITIVITY_PARAMS", "calc_hit_rate", "conversation_tokens", "hit_rate", "latency_report",
    "memory_for_hit_rate",
    "parse_inputs", "reuse_breakeven", "sensitivity", "suggest",
]
