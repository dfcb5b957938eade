"""Conversation-length distributions of the analytic model (``turns`` + ``turns_dist``)."""
from __future__ import annotations

import math

import numpy as np

from sim.analytic.inputs import HitRateInputs

GEOMETRIC_TAIL = 1e-13  # lengths are summed until the geometric tail is below this


def turn_lengths(inp: HitRateInputs) -> tuple[np.ndarray, np.ndarray]:
    """(conversation lengths, probabilities): ``fixed`` = floor/ceil mix with mean turns;
    ``geometric`` = 1, 2, ... with mean turns."""
    m = inp.turns
    if inp.turns_dist == "geometric":
        p = 1.0 / m
        if p >= 1.0:
            return np.array([1.0]), np.array([1.0])
        k_max = int(np.ceil(np.log(GEOMETRIC_TAIL) / np.log1p(-p))) + 1
        t = np.arange(1, k_max + 1, dtype=float)
        w = p * (1 - p) ** (t - 1)
        return t, w / w.sum()
    lo = math.floor(m)
    f = m - lo
    if f == 0:
        return np.array([float(lo)]), np.array([1.0])
    return np.array([float(lo), float(lo + 1)]), np.array([1 - f, f])


def turn_survival(inp: HitRateInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k = 1..max length, P(T > k), P(T = k)): which turns have a next turn."""
    t, w = turn_lengths(inp)
    k = np.arange(1, int(t.max()) + 1, dtype=float)
    p_eq = np.zeros(len(k))
    p_eq[t.astype(int) - 1] = w
    p_ge = np.cumsum(p_eq[::-1])[::-1]
    return k, p_ge - p_eq, p_eq


__all__ = ["turn_lengths", "turn_survival"]
