"""Reuse vs recompute: the KV loading bandwidth at which a cached prefix pays.

Built on the step-cost model the simulators use (sim.timing.step_cost):
loading the prefix's KV over a link of B GB/s per GPU takes prefix x KV bytes
per token per GPU / B; recomputing it takes one prefill iteration on the tp
GPUs of a replica. Above the break-even bandwidth loading is faster. The
break-even falls as the prefix grows: the KV size is linear in the prefix,
the recompute cost superlinear (attention term).
"""
from __future__ import annotations

from typing import Any

from sim.config.gpus import gpu_spec
from sim.config.kv_sizes import GIB, dtype_bytes, kv_bytes_per_token
from sim.config.models import MAX_REPLICA_GPUS, check_parallelism, model_spec
from sim.errors import InputError, check_number
from sim.timing.step_cost import StepModel, StepParams, step_params

# A link faster than 1 PB/s per GPU, or a prefix above 100M tokens, is a typo.
MAX_LINK_GB_S = 1e6
MAX_PREFIX_TOKENS = 100_000_000


def reuse_breakeven(model: str, gpu: str, gpus: int = 8, prefix_tokens: int = 8192, tp: int | None = None,
                    params: StepParams | None = None, kv_dtype: str = "fp16",
                    link_gb_s: float | None = None) -> dict[str, Any]:
    """Break-even KV loading bandwidth for one prefix length.

    ``gpus`` is the tensor-parallel group that serves the request (tp = gpus
    unless ``tp`` is given, which must divide it). Bandwidths are GB/s
    (1e9 B/s) per GPU; ``_replica`` figures are tp times that (every GPU
    loads its own shard in parallel). With ``link_gb_s`` (per GPU) the load
    time over that link is compared with the recompute time. ``params``: the
    step-cost efficiencies (default: config.yaml's shipped ``compute:`` defaults).
    """
    spec, g = model_spec(model), gpu_spec(gpu)
    dtype_bytes(kv_dtype, where="kv_dtype")
    if not isinstance(gpus, int) or gpus < 1:
        raise InputError(f"must be an integer >= 1 (got {gpus!r})", where="gpus")
    tp = gpus if tp is None else tp
    if gpus > MAX_REPLICA_GPUS:
        raise InputError(f"must be <= {MAX_REPLICA_GPUS} (one tensor-parallel group; got {gpus})", where="gpus")
    check_parallelism(spec, tp, 1, where_tp="tp")
    if gpus % tp:
        raise InputError(f"tp {tp} must divide the {gpus} GPUs", where="tp")
    if isinstance(prefix_tokens, bool) or not isinstance(prefix_tokens, int) or prefix_tokens > MAX_PREFIX_TOKENS:
        raise InputError(f"must be an integer <= {MAX_PREFIX_TOKENS:,} (got {prefix_tokens!r})",
                         where="prefix_tokens")
    if prefix_tokens <= 0:
        raise InputError(f"must be > 0 (got {prefix_tokens!r})", where="prefix_tokens")
    if link_gb_s is not None:  # finite: NaN or infinity would print "nan ms" / "0 ms"
        check_number(link_gb_s, "link_gb_s", lo=0, lo_open=True, hi=MAX_LINK_GB_S)
    params = params or step_params()
    recompute_s = StepModel(spec, g, params, tp=tp, kv_dtype=kv_dtype).prefill_s(prefix_tokens)
    per_gpu_bytes = prefix_tokens * kv_bytes_per_token(spec, kv_dtype, tp, 1)
    be = per_gpu_bytes / recompute_s / 1e9
    out: dict[str, Any] = {
        "model": spec.name, "gpu": g.name, "gpus": gpus, "tp": tp, "gemm_efficiency": params.gemm_efficiency,
        "kv_dtype": kv_dtype,
        "prefix_tokens": prefix_tokens,
        "breakeven_gb_s": be,
        "breakeven_gb_s_replica": be * tp,
        "kv_bytes_per_gpu": per_gpu_bytes,
        "kv_gib_replica": per_gpu_bytes * tp / GIB,
        "recompute_ms": recompute_s * 1000,
        "notes": ["breakeven_gb_s is per GPU (each GPU loads its own KV shard); latency ignored"],
    }
    if link_gb_s is not None:
        load_s = per_gpu_bytes / (link_gb_s * 1e9)
        out.update(link_gb_s=link_gb_s, load_ms=load_s * 1000, loading_pays=load_s < recompute_s,
                   speedup=recompute_s / load_s)
    return out


__all__ = ["reuse_breakeven"]
