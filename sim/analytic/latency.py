"""Step latencies of one replica from the step-cost model: what `calc latency` prints.

A prefill of one prompt (and, with a batch, of B prompts in one iteration)
and one decode step of B requests each reading a context of C tokens, with
the breakdown into linear layers, attention, communication and overhead.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from sim.config import load_config
from sim.config.gpus import gpu_spec
from sim.config.models import check_parallelism, model_spec
from sim.errors import InputError
from sim.timing.step_cost import StepBreakdown, StepModel

DTYPES = ("fp16", "bf16", "fp8")


def _ms(b: StepBreakdown) -> dict[str, float]:
    return {"total_ms": b.total_s * 1e3, "linear_ms": b.linear_s * 1e3, "attention_ms": b.attention_s * 1e3,
            "communication_ms": b.communication_s * 1e3, "overhead_ms": b.overhead_s * 1e3}


def latency_report(model: str, gpu: str, tp: int = 1, pp: int = 1, prompt_tokens: int = 2048,
                   cached_tokens: int = 0, batch: int = 1, context: int | None = None, dtype: str = "fp16",
                   profile: str | Path | None = None) -> dict[str, Any]:
    """Prefill and decode-step times (ms) with their breakdown; the config's ``compute:`` figures
    (``profile`` overlays them). ``dtype`` is the weight dtype and, for fp8, the GEMM peak."""
    for name, v, lo in (("prompt_tokens", prompt_tokens, 1), ("cached_tokens", cached_tokens, 0),
                        ("batch", batch, 1), ("tp", tp, 1), ("pp", pp, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"must be an integer >= {lo} (got {v!r})", where=name)
    if context is not None and (isinstance(context, bool) or not isinstance(context, int) or context < 0):
        raise InputError(f"must be an integer >= 0 (got {context!r})", where="context")
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})", where="dtype")
    spec, g = model_spec(model), gpu_spec(gpu)  # unknown names: one line naming the model/GPU
    check_parallelism(spec, tp, pp, where_tp="tp", where_pp="pp")
    cfg = load_config(profile=profile)
    m = cfg.model.model_copy(update={"name": model, "tp": tp, "pp": pp, "weight_dtype": dtype})
    cfg = cfg.model_copy(update={
        "model": m, "hardware": cfg.hardware.model_copy(update={"gpu": g.name}),
        "compute": cfg.compute.model_copy(update={"dtype": "fp8" if dtype == "fp8" else "fp16"}),
    })
    step = StepModel.from_config(cfg)
    ctx = prompt_tokens + cached_tokens if context is None else context
    pre = step.iteration([(prompt_tokens, cached_tokens)])
    dec = step.iteration(decode_batch=batch, decode_kv_tokens=float(batch * ctx))
    out: dict[str, Any] = {
        "model": spec.name, "gpu": g.name, "tp": tp, "pp": pp, "dtype": dtype, "kv_dtype": cfg.model.kv_dtype,
        "prompt_tokens": prompt_tokens, "cached_tokens": cached_tokens, "batch": batch, "context": ctx,
        "params": asdict(step.params), "calibration": cfg.compute.calibration,
        "prefill": _ms(pre),
        "decode": {**_ms(dec), "tokens_per_s": batch / dec.total_s},
    }
    if batch > 1:
        out["prefill_batch"] = _ms(step.iteration([(prompt_tokens, cached_tokens)] * batch))
    return out


__all__ = ["DTYPES", "latency_report"]
