"""Memory side of the analytic model: how many KV tokens a deployment can cache.

Per GPU: KV budget = GPU memory - weights per GPU x weight_overhead - reserve_gb
(``sim.config.kv_sizes.free_kv_bytes_per_gpu``, the function `calc kv` and the
simulator use too; weight_overhead 1 and a 4 GiB reserve by default), or the
explicit ``kv_budget_gb``. A replica is tp x pp GPUs;
each of its GPUs keeps a shard of every cached token (``kv_bytes_per_token``
per GPU, busiest pipeline stage), so one replica caches budget / per-GPU bytes
tokens and the fleet ``gpus / (tp x pp)`` times that (data parallelism: the
replicas hold different conversations).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sim.analytic.inputs import HitRateInputs
from sim.config.gpus import GpuSpec, gpu_spec
from sim.config.kv_sizes import (
    GIB,
    free_kv_bytes_per_gpu,
    kv_bytes_per_token,
    kv_bytes_per_token_total,
    weights_bytes_per_gpu,
)
from sim.config.models import ModelSpec, check_parallelism, model_spec
from sim.errors import InputError


@dataclass(frozen=True)
class Deployment:
    spec: ModelSpec
    gpu: GpuSpec
    tp: int
    pp: int
    tp_auto: bool
    replicas: int
    memory_gib: float            # per GPU
    weights_bytes_per_gpu: float
    kv_budget_bytes_per_gpu: float
    kv_bytes_per_token_per_gpu: float
    kv_bytes_per_token: float    # whole model, one copy

    @property
    def tokens_per_replica(self) -> int:
        return int(self.kv_budget_bytes_per_gpu // self.kv_bytes_per_token_per_gpu)

    @property
    def cacheable_tokens(self) -> int:
        return self.replicas * self.tokens_per_replica


def _budget(spec: ModelSpec, gpu: GpuSpec, memory_gib: float, inp: HitRateInputs, tp: int,
            pp: int) -> tuple[float, float]:
    """(weights bytes per GPU, KV budget bytes per GPU) for one tp x pp layout."""
    w = weights_bytes_per_gpu(spec, inp.weight_dtype, tp, pp)
    if inp.kv_budget_gb is not None:
        return w, inp.kv_budget_gb * GIB
    return w, free_kv_bytes_per_gpu(spec, gpu, inp.weight_dtype, tp, pp, inp.reserve_gb, memory_gib=memory_gib,
                                    weight_overhead=inp.weight_overhead)


# Auto TP leaves at least this share of each GPU's memory to the KV cache when it can:
# "the smallest TP at which the weights fit" would leave a useless sliver of KV
# memory (Llama-3-70B at TP 2 on 80 GiB: ~1 GiB), which is not how anyone deploys.
AUTO_TP_KV_SHARE = 0.5


def _auto_tp(spec: ModelSpec, memory_gib: float, inp: HitRateInputs) -> int:
    """Smallest power-of-two TP dividing gpus/pp whose weights x overhead + reserve take at most half of
    the GPU memory; else the smallest at which they fit at all."""
    per_pp = inp.gpus // inp.pp if inp.gpus % inp.pp == 0 else 0
    cands = sorted({t for t in (2**k for k in range(11)) if per_pp and per_pp % t == 0}
                   | ({per_pp} if per_pp else set()))
    mem = memory_gib * GIB
    need = [inp.weight_overhead * weights_bytes_per_gpu(spec, inp.weight_dtype, t, inp.pp) + inp.reserve_gb * GIB
            for t in cands]
    for share in (1 - AUTO_TP_KV_SHARE, 1.0):
        for t, w in zip(cands, need, strict=True):
            if w < mem * share:
                return t
    raise InputError(
        f"the weights of {spec.name} x overhead {inp.weight_overhead:g} + reserve {inp.reserve_gb:g} GiB do not "
        f"fit in {inp.gpus} x "
        f"{memory_gib:g} GiB at any tensor-parallel degree; add GPUs, quantize the weights or pick a larger GPU",
        where="gpus",
    )


def resolve(inp: HitRateInputs) -> Deployment:
    """Model, GPU, parallel layout and KV budget of `inp`; InputError naming the field when it cannot work."""
    try:
        spec = model_spec(inp.model)
    except InputError as e:
        raise InputError(str(e).removeprefix(f"{e.where}: "), where="model") from None
    try:
        gpu = gpu_spec(inp.gpu)
    except InputError as e:
        raise InputError(str(e).removeprefix(f"{e.where}: "), where="gpu") from None
    memory = inp.memory_gb if inp.memory_gb is not None else float(gpu.memory_gb)
    tp_auto = inp.tp is None
    if inp.tp is not None:  # an explicit layout must be one the model splits into (auto picks fitting ones)
        check_parallelism(spec, int(inp.tp), inp.pp, where_tp="tp", where_pp="pp")
    else:
        check_parallelism(spec, 1, inp.pp, where_tp="tp", where_pp="pp")
    tp = _auto_tp(spec, memory, inp) if inp.tp is None else int(inp.tp)
    pp = inp.pp
    if inp.gpus % (tp * pp):
        raise InputError(f"{inp.gpus} GPUs do not split into replicas of tp {tp} x pp {pp} = {tp * pp} GPUs",
                         where="gpus")
    w, budget = _budget(spec, gpu, memory, inp, tp, pp)
    if budget <= 0:
        raise InputError(
            f"weights of {spec.name} ({inp.weight_dtype}) = {w / GIB:.1f} GiB per GPU at tp {tp} x pp {pp}, times "
            f"overhead {inp.weight_overhead:g}, plus the reserve of {inp.reserve_gb:g} GiB, leave no KV memory in "
            f"{memory:g} GiB; raise tp, quantize the "
            f"weights or pick a larger GPU", where="tp",
        )
    per_gpu = kv_bytes_per_token(spec, inp.kv_dtype, tp, pp)
    if budget < per_gpu:
        raise InputError(f"the KV budget of {budget / GIB:.3g} GiB per GPU holds no token", where="kv_budget_gb")
    return Deployment(
        spec=spec, gpu=gpu, tp=tp, pp=pp, tp_auto=tp_auto, replicas=inp.gpus // (tp * pp), memory_gib=memory,
        weights_bytes_per_gpu=w, kv_budget_bytes_per_gpu=budget, kv_bytes_per_token_per_gpu=per_gpu,
        kv_bytes_per_token=kv_bytes_per_token_total(spec, inp.kv_dtype),
    )


def gpu_memory_for_kv(dep: Deployment, inp: HitRateInputs, kv_bytes_per_gpu: float) -> float:
    """GiB of GPU memory one GPU needs to hold `kv_bytes_per_gpu` of KV next to its weights."""
    if inp.kv_budget_gb is not None:  # explicit budget: memory beyond it is not modelled
        return kv_bytes_per_gpu / GIB
    return (kv_bytes_per_gpu + inp.weight_overhead * dep.weights_bytes_per_gpu) / GIB + inp.reserve_gb


def replicas_for_tokens(dep: Deployment, tokens_needed: float, tokens_per_replica_overhead: float) -> int | None:
    """Replicas whose cacheable tokens (less a per-replica overhead) reach `tokens_needed`; None if never."""
    usable = dep.tokens_per_replica - tokens_per_replica_overhead
    if usable <= 0:
        return None
    return max(1, math.ceil(tokens_needed / usable - 1e-12))


__all__ = ["Deployment", "gpu_memory_for_kv", "replicas_for_tokens", "resolve"]
