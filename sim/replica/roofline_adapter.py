"""TEMPORARY: ``StepCost`` over the roofline of ``sim.timing.compute`` until the step model lands.

Same arithmetic as the modes used before the replica engine:

* prefill only: the sum of ``prefill_time_s`` over the chunks (FLOPs, TP, MFU);
* decode only: ``decode_iteration_time_s`` = (weights + KV) / HBM bandwidth + overhead;
* mixed: max(prefill FLOP time, decode HBM time) + overhead (one pass reads the weights once).

To be deleted when ``sim.timing.step_cost.StepModel`` is merged.
"""
from __future__ import annotations

from collections.abc import Sequence

from sim.config import Config
from sim.config.gpus import GpuSpec
from sim.config.models import ModelSpec
from sim.timing import compute


class RooflineStep:
    def __init__(self, spec: ModelSpec, gpu: GpuSpec, *, tp: int, mfu: float, compute_dtype: str, kv_dtype: str,
                 weight_dtype: str, overhead_s: float) -> None:
        self.spec, self.gpu, self.tp, self.mfu, self.dtype = spec, gpu, tp, mfu, compute_dtype
        f = compute.decode_iteration_time_fn(spec, gpu, kv_dtype, weight_dtype, tp, overhead_s)
        self.overhead = overhead_s
        self.a = f(0.0)
        self.b = (f(1e6) - self.a) / 1e6

    @classmethod
    def from_config(cls, cfg: Config, spec: ModelSpec, gpu: GpuSpec) -> RooflineStep:
        c, m = cfg.compute, cfg.model
        return cls(spec, gpu, tp=m.tp, mfu=c.mfu, compute_dtype=c.dtype, kv_dtype=m.kv_dtype,
                   weight_dtype=m.weight_dtype, overhead_s=c.decode_overhead_ms / 1000.0)

    def iteration_s(self, prefill: Sequence[tuple[int, int]] = (), decode_batch: int = 0,
                    decode_kv_tokens: float = 0.0) -> float:
        P = 0.0
        for n, before in prefill:
            P += compute.prefill_time_s(self.spec, self.gpu, n, before, tp=self.tp, mfu=self.mfu,
                                        compute_dtype=self.dtype)
        if decode_batch <= 0:
            return P
        D = self.a + self.b * decode_kv_tokens
        return max(P, D - self.overhead) + self.overhead if prefill else D

    def decode_line(self, decode_batch: int) -> tuple[float, float]:
        return self.a, self.b


__all__ = ["RooflineStep"]
