"""The seam between a replica and the cost of one forward pass.

``StepCost`` is what the engine asks: the duration of one iteration of a
given composition (prefill chunks + a decode batch), and the decode-only
iteration as a line in the KV tokens read, ``a + b x K``, exactly. Its
implementation is the step model (``sim.timing.step_cost``); tests pass
hand-made ones.

``DecodeLine`` turns (a, b) of a stretch's fixed batch B into closed forms:
a stretch of k decode-only iterations starting with K KV tokens, each
iteration adding B, lasts ``sum_j a + b x (K + j x B)``; ``done_by`` inverts
it (how many iterations are complete after dt seconds).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol


class StepCost(Protocol):
    def iteration_s(self, prefill: Sequence[tuple[int, int]], decode_batch: int, decode_kv_tokens: float) -> float:
        """Seconds of one iteration: prefill = [(new tokens of a chunk, tokens of its request already in KV)],
        decode_batch requests each adding one token while reading decode_kv_tokens KV tokens in total."""
        ...

    def decode_line(self, decode_batch: int) -> tuple[float, float]:
        """(a, b): a decode-only iteration of decode_batch requests lasts a + b x KV tokens read."""
        ...


class DecodeLine:
    """Closed forms over decode-only iterations of one batch size."""

    __slots__ = ("a", "b")

    def __init__(self, a: float, b: float) -> None:
        self.a = a
        self.b = b

    def span(self, k: int, batch: int, kv_tokens: float) -> float:
        """Seconds of k iterations starting with `kv_tokens` read and growing by `batch` per iteration."""
        return k * self.a + self.b * (k * kv_tokens + batch * k * (k - 1) / 2.0)

    def done_by(self, dt: float, batch: int, kv_tokens: float) -> int:
        """Largest j with span(j) <= dt (iterations completed after dt seconds)."""
        if dt <= 0:
            return 0
        qa = self.b * batch / 2.0
        qb = self.a + self.b * kv_tokens - qa
        if qa > 0:
            j = int((-qb + math.sqrt(qb * qb + 4 * qa * dt)) / (2 * qa))
        else:
            j = int(dt / qb)
        tol = 1e-12 * max(1.0, dt)
        while self.span(j + 1, batch, kv_tokens) <= dt + tol:
            j += 1
        while j > 0 and self.span(j, batch, kv_tokens) > dt + tol:
            j -= 1
        return j


__all__ = ["DecodeLine", "StepCost"]
