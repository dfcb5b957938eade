"""Optimization suggestion: the smallest change that reaches a target hit rate.

Three levers, each evaluated with the same closed form (sim.analytic.hit_rate):

* ``gpus``: more replicas of the same tp x pp layout (more KV memory in total);
* ``memory``: more KV memory per GPU at the same count - the GPU memory that
  would take, and the GPU presets that have it;
* ``kv_dtype``: store the KV cache in fp8 (half the bytes of fp16/bf16), no
  new hardware.

The suggestion is the lever that reaches the target with the smallest
relative hardware increase (the dtype change counts as none; it trades some
accuracy instead, which the note says).
"""
from __future__ import annotations

from typing import Any

from sim.analytic.deployment import replicas_for_tokens, resolve
from sim.analytic.hit_rate import hit_rate, memory_for_hit_rate
from sim.analytic.inputs import HitRateInputs, parse_inputs
from sim.config.gpus import GPUS
from sim.errors import InputError

_SMALLER_KV = {"fp32": "fp8", "fp16": "fp8", "bf16": "fp8"}


def _with(inp: HitRateInputs, **changes) -> HitRateInputs:
    return inp.model_copy(update=changes)


def _try(inp: HitRateInputs) -> dict | None:
    try:
        return hit_rate(inp)
    except InputError:
        return None


def _gpu_option(inp: HitRateInputs, cur: dict, target: float, need: dict) -> dict:
    dep = resolve(inp)
    system_tokens = inp.system_prompt_tokens * inp.system_prompts
    conv = need["tokens"] - dep.replicas * system_tokens
    reps = replicas_for_tokens(dep, conv, system_tokens)
    if reps is None:
        return {"lever": "gpus", "reaches": False, "reason": "one replica cannot even hold the system prompts"}
    unit = dep.tp * dep.pp
    gpus = max(inp.gpus, reps * unit)
    res = hit_rate(_with(inp, gpus=gpus, tp=dep.tp))
    while res["hit_rate"] < target - 1e-12:  # floor() of tokens per replica may leave it a hair short
        gpus += unit
        res = hit_rate(_with(inp, gpus=gpus, tp=dep.tp))
    return {"lever": "gpus", "reaches": True, "gpus": gpus, "change": f"{inp.gpus} -> {gpus} GPUs",
            "relative_increase": gpus / inp.gpus - 1, "hit_rate": res["hit_rate"]}


def _memory_option(inp: HitRateInputs, cur: dict, need: dict) -> dict:
    if inp.kv_budget_gb is not None:
        have, want, what = cur["kv_budget_gib_per_gpu"], need["kv_gib_per_gpu"], "KV budget per GPU"
    else:
        have, want, what = cur["gpu_memory_gib"], need["gpu_memory_gib_per_gpu"], "GPU memory per GPU"
    fits = []
    if inp.kv_budget_gb is None and inp.memory_gb is None:
        for name in GPUS:
            r = _try(_with(inp, gpu=name, tp=cur["tp"]))
            if r is not None and r["hit_rate"] >= need["target_hit_rate"] - 1e-12:
                fits.append({"gpu": name, "memory_gib": r["gpu_memory_gib"], "hit_rate": r["hit_rate"]})
        fits.sort(key=lambda f: f["memory_gib"])
    return {"lever": "memory", "reaches": True, "what": what, "gib": want,
            "change": f"{what}: {have:,.1f} -> {want:,.1f} GiB", "relative_increase": max(0.0, want / have - 1),
            "gpu_presets": fits}


def _dtype_option(inp: HitRateInputs, target: float) -> dict | None:
    new = _SMALLER_KV.get(inp.kv_dtype)
    if new is None:
        return None
    r = _try(_with(inp, kv_dtype=new))
    if r is None:
        return None
    return {"lever": "kv_dtype", "reaches": r["hit_rate"] >= target - 1e-12, "kv_dtype": new,
            "change": f"KV cache {inp.kv_dtype} -> {new}", "relative_increase": 0.0, "hit_rate": r["hit_rate"],
            "note": "no new hardware; fp8 KV costs a little accuracy"}


def suggest(inputs: dict[str, Any] | HitRateInputs, target: float) -> dict[str, Any]:
    """For `target` hit rate: the memory it needs and the smallest change (GPUs, memory, KV dtype) that reaches it."""
    inp = parse_inputs(inputs)
    need = memory_for_hit_rate(inp, target)
    cur = hit_rate(inp)
    out: dict[str, Any] = {"target_hit_rate": target, "hit_rate": cur["hit_rate"], "memory": need}
    if cur["hit_rate"] >= target - 1e-12:
        return {**out, "met": True, "options": [], "suggestion": None,
                "message": f"already met: {cur['hit_rate']:.1%} >= {target:.1%}"}
    if not need["reachable"]:
        return {**out, "met": False, "options": [], "suggestion": None, "message": need["reason"]}
    options = [_gpu_option(inp, cur, target, need), _memory_option(inp, cur, need)]
    dt = _dtype_option(inp, target)
    if dt is not None:
        options.append(dt)
    ok = [o for o in options if o["reaches"]]
    best = min(ok, key=lambda o: (o["relative_increase"], o["lever"] != "kv_dtype")) if ok else None
    msg = "no single lever reaches the target" if best is None else (
        f"{best['change']} reaches {target:.1%}" + (f" ({best['note']})" if best.get("note") else "")
    )
    return {**out, "met": False, "options": options, "suggestion": best, "message": msg}


__all__ = ["suggest"]
