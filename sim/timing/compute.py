"""The compute-time model: pure functions shared by every simulator.

Prefill is compute bound, decode is HBM-bandwidth bound (roofline at the two
extremes; no per-token events, no state).

Prefill FLOPs of ``n`` new tokens after ``c`` cached prefix tokens::

    linear = 2 x active_params x n
    attn   = 2 x 2 x n_layers x (n_heads x head_dim) x n x (c + n/2)

* ``linear``: every weight does one multiply-add (2 FLOPs) per token; for MoE
  only the active parameters count.
* ``attn``: per layer, each new token scores against every key it can see
  (Q.K^T) and mixes the values (A.V): 2 matmuls x 2 FLOPs per multiply-add x
  ``n_heads x head_dim`` per (query, key) pair. A new token sees the ``c``
  cached tokens plus, under the causal mask, on average half of the ``n`` new
  ones, hence ``n x (c + n/2)`` pairs. Cached tokens cost no FLOPs of their
  own: that is the saving a prefix-cache hit buys. (For MLA the Q.K product
  is 192 wide and A.V 128 wide; using head_dim=128 for both under-counts the
  attention term by ~20% - small next to the linear term.)

Prefill time = FLOPs / (tp x peak dense FLOP/s x MFU). Pipeline parallelism
does not shorten one request's prefill (the stages run one after another), so
pp does not appear.

Decode iteration time = bytes read from HBM per GPU / HBM bandwidth + fixed
overhead, where bytes = weights per GPU (all of them: a batch of any useful
size touches every expert of an MoE layer) + the batch's KV per GPU. The
batch's tokens all advance by one per iteration.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.config.gpus import GpuSpec
from sim.config.kv_sizes import kv_bytes_per_token, weights_bytes_per_gpu
from sim.config.models import ModelSpec
from sim.errors import InputError


def prefill_flops(spec: ModelSpec, new_tokens: float, cached_tokens: float = 0) -> float:
    """FLOPs to prefill `new_tokens` on top of `cached_tokens` already in the KV cache."""
    if new_tokens < 0 or cached_tokens < 0:
        raise ValueError(f"token counts must be >= 0 (new={new_tokens}, cached={cached_tokens})")
    if new_tokens == 0:
        return 0.0
    return _prefill_flops_terms(spec, new_tokens, cached_tokens)


def _prefill_flops_terms(spec: ModelSpec, new_tokens, cached_tokens):
    """Linear + attention FLOPs; works element-wise on numpy arrays too."""
    linear = 2.0 * spec.active_params * new_tokens
    attn = 4.0 * spec.n_layers * spec.attn_hidden * new_tokens * (cached_tokens + new_tokens / 2.0)
    return linear + attn


def service_time_s(spec: ModelSpec, gpu: GpuSpec, input_tokens: np.ndarray, output_tokens: np.ndarray, *,
                   tp: int, mfu: float, compute_dtype: str, kv_dtype: str, weight_dtype: str,
                   overhead_s: float) -> np.ndarray:
    """Uncontended service time per request, vectorised: cold prefill + decode at batch size 1.

    Element for element the same arithmetic as ``prefill_time_s(spec, gpu, inp)``
    + ``decode_iteration_time_s(spec, gpu, 1, inp) x (out - 1)``.
    """
    inp = np.asarray(input_tokens, dtype=np.float64)
    out = np.asarray(output_tokens, dtype=np.int64)
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}")
    pre = _prefill_flops_terms(spec, inp, 0) / (tp * peak_flops(gpu, compute_dtype) * mfu)
    pre[inp == 0] = 0.0
    read = weights_bytes_per_gpu(spec, weight_dtype, tp, 1) + inp * kv_bytes_per_token(spec, kv_dtype, tp, 1)
    it = read / (gpu.hbm_bandwidth_gb_s * 1e9) + overhead_s
    return pre + it * np.maximum(0, out - 1)


def peak_flops(gpu: GpuSpec, dtype: str = "fp16") -> float:
    """Dense peak FLOP/s of one GPU for a compute dtype (fp8 falls back to fp16 if absent)."""
    if dtype == "fp8" and gpu.fp8_tflops > 0:
        return gpu.fp8_tflops * 1e12
    return gpu.fp16_tflops * 1e12


def prefill_time_s(spec: ModelSpec, gpu: GpuSpec, new_tokens: float, cached_tokens: float = 0,
                   tp: int = 1, mfu: float = 0.5, compute_dtype: str = "fp16") -> float:
    """Seconds to prefill: prefill_flops / (tp x peak x mfu); 0 new tokens -> 0.

    ``compute_dtype="fp8"`` uses the GPU's FP8 peak (FP8 weights *and*
    activations, e.g. DeepSeek-V3's native FP8); the default is the dense
    FP16/BF16 peak.
    """
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}")
    if tp < 1:
        raise ValueError(f"tp must be >= 1, got {tp}")
    flops = prefill_flops(spec, new_tokens, cached_tokens)
    if flops == 0:
        return 0.0
    return flops / (tp * peak_flops(gpu, compute_dtype) * mfu)


def decode_iteration_time_s(spec: ModelSpec, gpu: GpuSpec, batch_size: int, batch_kv_tokens: float,
                            kv_dtype: str = "fp16", weight_dtype: str = "fp16", tp: int = 1,
                            overhead_s: float = 0.002) -> float:
    """Seconds for one decode step of a batch (every request gains one token).

    (weights per GPU + batch_kv_tokens x KV bytes per token per GPU) / HBM
    bandwidth + overhead_s. ``batch_kv_tokens`` is the sum of the context
    lengths of the batch's requests. An empty batch takes 0 s.
    """
    if batch_size <= 0:
        return 0.0
    if batch_kv_tokens < 0:
        raise ValueError(f"batch_kv_tokens must be >= 0, got {batch_kv_tokens}")
    return decode_iteration_time_fn(spec, gpu, kv_dtype, weight_dtype, tp, overhead_s)(batch_kv_tokens)


def decode_iteration_time_fn(spec: ModelSpec, gpu: GpuSpec, kv_dtype: str = "fp16", weight_dtype: str = "fp16",
                            tp: int = 1, overhead_s: float = 0.002) -> Callable[[float], float]:
    """One decode step of a non-empty batch as a function of its KV tokens.

    (weights per GPU + kv_tokens x KV bytes per token per GPU) / HBM
    bandwidth + overhead. The per-model constants are computed once, which
    matters where it is called on every batch change (the SimPy decode model).
    """
    weights = weights_bytes_per_gpu(spec, weight_dtype, tp, 1)
    per_token = kv_bytes_per_token(spec, kv_dtype, tp, 1)
    bandwidth = gpu.hbm_bandwidth_gb_s * 1e9
    return lambda kv_tokens: (weights + kv_tokens * per_token) / bandwidth + overhead_s


def load_time_s(nbytes: float, bandwidth_gb_s: float, latency_us: float = 0.0) -> float:
    """Seconds to move `nbytes` over a link: latency + bytes / bandwidth; 0 bytes -> 0."""
    if nbytes <= 0:
        return 0.0
    if bandwidth_gb_s <= 0:
        raise ValueError(f"bandwidth_gb_s must be > 0, got {bandwidth_gb_s}")
    return latency_us * 1e-6 + nbytes / (bandwidth_gb_s * 1e9)


def recompute_vs_load_breakeven_gb_s(spec: ModelSpec, gpu: GpuSpec, prefix_tokens: int, tp: int = 1,
                                     mfu: float = 0.5, kv_dtype: str = "fp16") -> float:
    """Per-GPU bandwidth (GB/s) at which loading a cached prefix's KV costs as
    much time as recomputing it.

    = (prefix_tokens x KV bytes per token per GPU) / prefill_time(prefix, tp)
    / 1e9. Each of the tp GPUs loads its own shard in parallel while the
    recompute uses all tp GPUs. A link faster than this makes loading the
    better choice (latency ignored). Falls as the prefix grows: the KV size is
    linear in the prefix, the recompute cost superlinear (attention term).
    """
    if prefix_tokens <= 0:
        raise InputError(f"prefix tokens must be > 0 (got {prefix_tokens})", where="prefix_tokens")
    nbytes = prefix_tokens * kv_bytes_per_token(spec, kv_dtype, tp, 1)
    return nbytes / prefill_time_s(spec, gpu, prefix_tokens, 0, tp, mfu) / 1e9


__all__ = [
    "decode_iteration_time_s", "load_time_s", "peak_flops", "prefill_flops", "prefill_time_s",
    "recompute_vs_load_breakeven_gb_s",
]
