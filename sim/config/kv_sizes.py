"""KV-cache and weight sizes of a model on a GPU, and the KV budget of a config.

Combines a ``ModelSpec`` (``sim.config.models``) with a ``GpuSpec`` (``sim.config.gpus``).

Units used throughout (the same as config.yaml):

* sizes in bytes unless a name says otherwise; ``_gb`` / ``_gib`` memory
  figures are GiB (1024**3 bytes);
* bandwidths ``_gb_s`` are GB/s (10**9 bytes/s);
* compute ``_tflops`` are 10**12 FLOP/s, dense (no 2:4 sparsity).

KV bytes per token (per GPU, one replica = one TP x PP group)::

    MHA/GQA: 2 (K and V) x layers_per_stage x kv_heads_per_gpu x head_dim x dtype_bytes
    MLA:     (kv_lora_rank + qk_rope_head_dim) x layers_per_stage x dtype_bytes

* ``layers_per_stage = ceil(kv_cache_layer_count / pp)``: the busiest pipeline
  stage (the one that runs out of memory first).
* ``kv_heads_per_gpu = ceil(n_kv_heads / tp)`` when ``tp <= n_kv_heads``
  (equal to ``n_kv_heads / tp`` whenever tp divides the heads, as vLLM and
  SGLang require; ceil is the busiest rank otherwise). When ``tp > n_kv_heads``
  the KV heads are *replicated*: every rank keeps one whole KV head (this is
  what vLLM/SGLang do, e.g. Llama-3-70B's 8 KV heads at TP 16), so the
  per-GPU size stops shrinking at 1 head and the replica as a whole stores
  ``tp / n_kv_heads`` copies.
* MLA (DeepSeek-V2/V3): the compressed latent ``c_kv`` plus the shared RoPE
  key is one vector per token per layer, shared by all heads, so it cannot be
  split across TP ranks: with plain TP attention every rank holds the full
  latent (no division by tp).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sim.config.gpus import GpuSpec, gpu_spec
from sim.config.models import ModelSpec, model_spec
from sim.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from sim.config import Config

GIB = 1024**3

# Bytes per element of each supported dtype (int4 packs two values per byte).
DTYPE_BYTES: dict[str, float] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int4": 0.5}


def dtype_bytes(dtype: str, where: str = "dtype") -> float:
    """Bytes per element of `dtype`; InputError naming `where` if unknown."""
    try:
        return DTYPE_BYTES[str(dtype).lower()]
    except KeyError:
        raise InputError(
            f"unknown dtype {dtype!r} (known: {', '.join(DTYPE_BYTES)})", where=where
        ) from None



# ================================================================ KV and weights


def _check_parallel(tp: int, pp: int) -> None:
    if int(tp) != tp or tp < 1:
        raise InputError(f"tp must be an integer >= 1 (got {tp!r})", where="model.tp")
    if int(pp) != pp or pp < 1:
        raise InputError(f"pp must be an integer >= 1 (got {pp!r})", where="model.pp")


def kv_heads_per_gpu(spec: ModelSpec, tp: int = 1) -> float:
    """KV heads each TP rank stores (MHA/GQA): ceil(kv/tp), at least 1 (replicated beyond)."""
    _check_parallel(tp, 1)
    return float(max(1, math.ceil(spec.n_kv_heads / tp)))


def kv_layers_per_gpu(spec: ModelSpec, pp: int = 1) -> int:
    """KV-holding layers on the busiest pipeline stage: ceil(kv_cache_layer_count / pp)."""
    _check_parallel(1, pp)
    return math.ceil(spec.kv_cache_layer_count / pp)


def kv_bytes_per_token(spec: ModelSpec, dtype: str = "fp16", tp: int = 1, pp: int = 1) -> float:
    """KV-cache bytes one token occupies on one GPU of a tp x pp replica (module doc)."""
    _check_parallel(tp, pp)
    b = dtype_bytes(dtype, where="model.kv_dtype")
    layers = kv_layers_per_gpu(spec, pp)
    if spec.attention == "mla":
        return float((spec.kv_lora_rank + spec.qk_rope_head_dim) * layers * b)
    return float(2 * layers * kv_heads_per_gpu(spec, tp) * spec.head_dim * b)


def kv_bytes_per_token_total(spec: ModelSpec, dtype: str = "fp16") -> float:
    """KV-cache bytes of one token for the whole model (one unsharded copy)."""
    return kv_bytes_per_token(spec, dtype, tp=1, pp=1)


def weights_bytes(spec: ModelSpec, dtype: str = "fp16") -> float:
    """Bytes of all weights: params x dtype bytes (norms/scales not kept apart)."""
    return spec.params * dtype_bytes(dtype, where="model.weight_dtype")


def weights_bytes_per_gpu(spec: ModelSpec, dtype: str = "fp16", tp: int = 1, pp: int = 1) -> float:
    """Weights per GPU: an even split over tp x pp (embeddings/norms not replicated)."""
    _check_parallel(tp, pp)
    return weights_bytes(spec, dtype) / (tp * pp)


# ================================================================= KV budget


def _not_fit_message(spec: ModelSpec, gpu: GpuSpec, weight_dtype: str, tp: int, pp: int,
                     reserve_gib: float) -> str:
    w = weights_bytes_per_gpu(spec, weight_dtype, tp, pp) / GIB
    return (
        f"model weights of {spec.name} ({weight_dtype}, {weights_bytes(spec, weight_dtype) / GIB:.1f} GiB"
        f" / (tp {tp} x pp {pp}) = {w:.1f} GiB per GPU) plus runtime reserve {reserve_gib:g} GiB do not fit"
        f" in {gpu.name} memory ({gpu.memory_gb:g} GiB); raise tp/pp, quantize the weights or pick a larger GPU"
    )


# GiB per GPU kept out of the KV budget for activations, CUDA graphs, NCCL buffers and allocator slack:
# the default of `hardware.runtime_reserve_gib`, `calc kv --reserve-gb` and `calc hit-rate --reserve-gb`.
DEFAULT_RESERVE_GIB = 4.0


def free_kv_bytes_per_gpu(spec: ModelSpec, gpu: GpuSpec, weight_dtype: str = "fp16", tp: int = 1,
                          pp: int = 1, reserve_gb: float = DEFAULT_RESERVE_GIB, *,
                          memory_gib: float | None = None, weight_overhead: float = 1.0) -> float:
    """The one KV budget of every command: GPU memory - weights per GPU x weight_overhead - reserve
    (bytes; may be <= 0).

    ``memory_gib`` None = the GPU preset's memory. ``weight_overhead`` 1 (the default everywhere) counts the
    weights once; the reserve is a fixed amount per GPU because what it stands for (activations of one
    ``max_num_batched_tokens`` iteration, CUDA graphs, NCCL buffers) does not grow with the weights.
    """
    memory = gpu.memory_gb if memory_gib is None else memory_gib
    return memory * GIB - weight_overhead * weights_bytes_per_gpu(spec, weight_dtype, tp, pp) - reserve_gb * GIB


def smallest_fitting_layout(spec: ModelSpec, gpu: GpuSpec, weight_dtype: str = "fp16", kv_dtype: str = "fp16",
                            pp: int = 1, reserve_gb: float = DEFAULT_RESERVE_GIB,
                            min_free_bytes: float = 1.0) -> tuple[int, int] | None:
    """The smallest (tp, pp) whose KV budget per GPU is at least ``min_free_bytes`` (and one token):
    TP first at the given pp (tp must split the model: ``check_parallelism``), then more pipeline stages.
    None when no layout up to the replica size limit fits."""
    from sim.config.models import MAX_REPLICA_GPUS, check_parallelism

    def fits(t: int, p: int) -> bool:
        try:
            check_parallelism(spec, t, p)
        except InputError:
            return False
        free = free_kv_bytes_per_gpu(spec, gpu, weight_dtype, t, p, reserve_gb)
        return free >= max(min_free_bytes, kv_bytes_per_token(spec, kv_dtype, t, p))

    tps = [t for t in range(1, min(spec.n_heads, MAX_REPLICA_GPUS) + 1) if spec.n_heads % t == 0]
    for p in range(pp, min(spec.n_layers, MAX_REPLICA_GPUS) + 1):
        for t in tps:
            if t * p <= MAX_REPLICA_GPUS and fits(t, p):
                return t, p
    return None


def kv_budget_bytes_per_gpu(cfg: Config) -> int:
    """KV-cache bytes per GPU for a resolved config.

    ``hardware.hbm.capacity_gib`` GiB when > 0 (taken as given: small budgets
    are how scaled-down simulations run); otherwise derived as GPU memory -
    weights/(tp x pp) - ``hardware.runtime_reserve_gib``. A derived budget <= 0
    is an InputError ("model weights ... do not fit").
    """
    hbm = cfg.hardware.hbm.capacity_gib
    if hbm > 0:
        return int(hbm * GIB)
    spec = model_spec(cfg.model.name)
    gpu = gpu_spec(cfg.hardware.gpu)
    m = cfg.model
    free = free_kv_bytes_per_gpu(spec, gpu, m.weight_dtype, m.tp, m.pp, cfg.hardware.runtime_reserve_gib)
    if free <= 0:
        raise InputError(
            _not_fit_message(spec, gpu, m.weight_dtype, m.tp, m.pp, cfg.hardware.runtime_reserve_gib),
            where="hardware.hbm.capacity_gib",
        )
    return int(free)
