"""KV memory calculator behind ``python main.py calc kv``.

Per token, per block, per request and per GPU, paged (vLLM-style blocks) vs
contiguous (pre-paging systems that reserve the model's max context per
request). All byte counts are bytes; ``_gib`` values are GiB (1024**3 B).

"Per GPU" figures are what one GPU of a tp x pp replica holds; a request's KV
is spread over all GPUs of its replica, so ``max_requests_*`` is the number of
requests one replica (= one GPU when tp = pp = 1) can keep resident at once.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from sim.config.gpus import gpu_spec
from sim.config.kv_sizes import (
    GIB,
    _not_fit_message,
    dtype_bytes,
    free_kv_bytes_per_gpu,
    kv_bytes_per_token,
    kv_bytes_per_token_total,
    smallest_fitting_layout,
    weights_bytes,
    weights_bytes_per_gpu,
)
from sim.config.models import check_parallelism, model_spec
from sim.config.units import parse_tokens
from sim.errors import InputError, check_number

MAX_BLOCK_TOKENS = 1 << 20
MAX_CONTEXT_TOKENS = 1 << 30  # 1G tokens: far above any model's context window
DEFAULT_CONTEXTS = (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


def parse_contexts(text: str, where: str = "--contexts") -> tuple[int, ...]:
    """"1K,8K,128K" / "4096,1M" -> token counts (K = 1024, M = 1024**2)."""
    out = tuple(parse_tokens(p, where) for p in str(text).split(",") if p.strip())
    if not out:
        raise InputError("no context lengths given", where=where)
    return out


def _num(x: float) -> float | int:
    """Whole numbers as int so JSON shows 327680, not 327680.0."""
    return int(x) if float(x).is_integer() else float(x)


def kv_report(model: str, gpu: str, kv_dtype: str = "fp16", weight_dtype: str = "fp16", tp: int = 1,
              pp: int = 1, contexts: Iterable[int] = DEFAULT_CONTEXTS, block_tokens: int = 16,
              reserve_gb: float = 4.0) -> dict:
    """KV sizes of `model` on `gpu` and how many requests of each context fit.

    When the weights plus reserve do not fit, ``fits`` is false, the free memory 0 and ``smallest_fit``
    names the smallest tp (then pp) that fits (None if none does); the per-token sizes are there either way.
    """
    spec = model_spec(model)
    g = gpu_spec(gpu)
    dtype_bytes(kv_dtype, where="--dtype")
    dtype_bytes(weight_dtype, where="--weight-dtype")
    check_parallelism(spec, tp, pp, where_tp="--tp", where_pp="--pp")
    check_number(block_tokens, "--block-tokens", lo=1, hi=MAX_BLOCK_TOKENS, integer=True)
    check_number(reserve_gb, "--reserve-gb", lo=0, hi=g.memory_gb)
    contexts = [int(c) for c in contexts]
    if not contexts or min(contexts) < 1 or max(contexts) > MAX_CONTEXT_TOKENS:
        raise InputError(f"context lengths must be 1..{MAX_CONTEXT_TOKENS:,} tokens", where="--contexts")

    per_gpu = kv_bytes_per_token(spec, kv_dtype, tp, pp)
    logical = kv_bytes_per_token_total(spec, kv_dtype)
    free = free_kv_bytes_per_gpu(spec, g, weight_dtype, tp, pp, reserve_gb)
    block_gpu = block_tokens * per_gpu
    # A layout whose weights leave no KV memory still has per-token sizes worth printing; the report says it
    # does not fit (free memory 0, no request resident) and names the smallest layout that fits (the
    # simulator's rule, sim.config.kv_sizes.kv_budget_bytes_per_gpu: KV memory > 0).
    fits = free > 0
    fit_layout = None
    if not fits:
        found = smallest_fitting_layout(spec, g, weight_dtype, kv_dtype, pp, reserve_gb, min_free_bytes=1.0)
        if found is not None:
            ft, fp = found
            fit_layout = {"tp": ft, "pp": fp, "free_kv_gib_per_gpu":
                          free_kv_bytes_per_gpu(spec, g, weight_dtype, ft, fp, reserve_gb) / GIB}
        free = 0
    max_ctx = spec.max_context

    per_gpu, logical, free = _num(per_gpu), _num(logical), _num(free)
    rows = []
    for ctx in contexts:
        blocks = math.ceil(ctx / block_tokens)
        paged = blocks * block_gpu
        contig_tokens = max(ctx, max_ctx)
        contig = contig_tokens * per_gpu
        rows.append({
            "context_tokens": ctx,
            "exceeds_max_context": ctx > max_ctx,
            "bytes_per_request": _num(ctx * logical),          # whole model, one copy
            "bytes_per_request_per_gpu": _num(ctx * per_gpu),  # exact, no allocation rounding
            "blocks_per_request": blocks,
            "paged_bytes_per_request_per_gpu": _num(paged),
            "contiguous_bytes_per_request_per_gpu": _num(contig),
            "max_requests_paged": int(free // paged),
            "max_requests_contiguous": int(free // contig),
            "paged_waste_share": (blocks * block_tokens - ctx) / (blocks * block_tokens),
            "contiguous_waste_share": (contig_tokens - ctx) / contig_tokens,
        })

    return {
        "model": {
            "name": spec.name, "attention": spec.attention, "n_layers": spec.n_layers,
            "kv_cache_layer_count": spec.kv_cache_layer_count, "n_heads": spec.n_heads,
            "n_kv_heads": spec.n_kv_heads, "head_dim": spec.head_dim, "kv_lora_rank": spec.kv_lora_rank,
            "qk_rope_head_dim": spec.qk_rope_head_dim, "params": spec.params,
            "active_params": spec.active_params, "max_context": max_ctx,
        },
        "gpu": {
            "name": g.name, "memory_gib": g.memory_gb, "hbm_bandwidth_gb_s": g.hbm_bandwidth_gb_s,
            "fp16_tflops": g.fp16_tflops, "fp8_tflops": g.fp8_tflops,
        },
        "kv_dtype": kv_dtype, "weight_dtype": weight_dtype, "tp": tp, "pp": pp,
        "gpus_per_replica": tp * pp, "block_tokens": block_tokens, "reserve_gib": reserve_gb,
        "kv_bytes_per_token": logical,
        "kv_bytes_per_token_per_gpu": per_gpu,
        "kv_bytes_per_token_replica": _num(per_gpu * tp * pp),
        "kv_bytes_per_block": _num(block_tokens * logical),
        "kv_bytes_per_block_per_gpu": _num(block_gpu),
        "weights_bytes": _num(weights_bytes(spec, weight_dtype)),
        "weights_bytes_per_gpu": _num(weights_bytes_per_gpu(spec, weight_dtype, tp, pp)),
        "weights_gib_per_gpu": weights_bytes_per_gpu(spec, weight_dtype, tp, pp) / GIB,
        "fits": fits,
        "does_not_fit": None if fits else _not_fit_message(spec, g, weight_dtype, tp, pp, reserve_gb),
        "smallest_fit": fit_layout,
        "free_kv_bytes_per_gpu": free,
        "free_kv_gib_per_gpu": free / GIB,
        "kv_blocks_per_gpu": int(free // block_gpu),
        "max_kv_tokens_per_replica": int(free // per_gpu),
        "contexts": rows,
        "notes": [
            "bytes are bytes, _gib are GiB (1024^3)",
            "kv_bytes_per_token: whole model, one copy; _per_gpu: one GPU of the tp x pp replica"
            " (busiest pipeline stage); _replica: per_gpu x tp x pp, including KV heads replicated when"
            " tp > kv heads and the MLA latent that every TP rank keeps whole",
            "max_requests_*: requests one replica holds at once (each of its GPUs keeps a shard)",
            "paged: ceil(ctx/block) blocks per request; contiguous: the model's max context reserved"
            " per request",
        ],
    }


def _fmt_bytes(n: float) -> str:
    for unit, div in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= div:
            return f"{n / div:,.2f} {unit}"
    return f"{n:,.0f} B"


def render_kv(report: dict) -> list:
    """Two rich tables: a summary and one row per context length."""
    from rich.table import Table

    m, g = report["model"], report["gpu"]
    summary = Table(title=f"KV cache: {m['name']} on {g['name']}  (tp {report['tp']} x pp {report['pp']},"
                          f" kv {report['kv_dtype']}, weights {report['weight_dtype']})")
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    attn = m["attention"]
    if attn == "mla":
        arch = f"MLA, latent {m['kv_lora_rank']} + rope {m['qk_rope_head_dim']}"
    else:
        arch = f"{attn.upper()}, {m['n_kv_heads']} KV heads x {m['head_dim']}"
    for k, v in (
        ("attention", arch),
        ("KV layers / layers", f"{m['kv_cache_layer_count']} / {m['n_layers']}"),
        ("params (active)", f"{m['params'] / 1e9:,.2f} B ({m['active_params'] / 1e9:,.2f} B)"),
        ("max context", f"{m['max_context']:,} tokens"),
        ("KV bytes / token (model)", f"{report['kv_bytes_per_token']:,.0f} B"),
        ("KV bytes / token / GPU", f"{report['kv_bytes_per_token_per_gpu']:,.0f} B"),
        ("KV bytes / token / replica", f"{report['kv_bytes_per_token_replica']:,.0f} B"),
        (f"KV block ({report['block_tokens']} tokens) / GPU", _fmt_bytes(report["kv_bytes_per_block_per_gpu"])),
        ("weights / GPU", f"{report['weights_gib_per_gpu']:,.2f} GiB"),
        ("GPU memory", f"{g['memory_gib']:,.0f} GiB"),
        ("runtime reserve", f"{report['reserve_gib']:,.2f} GiB"),
        ("free KV memory / GPU", f"{report['free_kv_gib_per_gpu']:,.2f} GiB"),
        ("KV tokens / replica", f"{report['max_kv_tokens_per_replica']:,}"),
    ):
        summary.add_row(k, v)

    per_ctx = Table(title="Requests resident per replica: paged vs contiguous (max-context) allocation")
    for col in ("context", "KV / request", "KV / request / GPU", "paged max", "paged waste",
                "contiguous max", "contiguous waste"):
        per_ctx.add_column(col, justify="right")
    for r in report["contexts"]:
        ctx = f"{r['context_tokens']:,}" + (" (>max)" if r["exceeds_max_context"] else "")
        per_ctx.add_row(
            ctx, _fmt_bytes(r["bytes_per_request"]), _fmt_bytes(r["bytes_per_request_per_gpu"]),
            f"{r['max_requests_paged']:,}", f"{r['paged_waste_share']:.1%}",
            f"{r['max_requests_contiguous']:,}", f"{r['contiguous_waste_share']:.1%}",
        )
    if report["fits"]:
        return [summary, per_ctx]
    fit = report["smallest_fit"]
    where = (f"smallest TP that fits: {fit['tp']}" + (f" (with pp {fit['pp']})" if fit["pp"] != report["pp"] else "")
             + f" ({fit['free_kv_gib_per_gpu']:,.2f} GiB KV per GPU)") if fit else "no tp x pp layout fits"
    return [summary, f"[yellow]does not fit at tp {report['tp']} x pp {report['pp']}: {report['does_not_fit']}[/]",
            f"[bold]{where}[/]"]


__all__ = ["DEFAULT_CONTEXTS", "kv_report", "parse_contexts", "render_kv"]
