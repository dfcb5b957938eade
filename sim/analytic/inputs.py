"""The inputs of the closed-form hit-rate model: one pydantic schema that the
CLI (`calc hit-rate`) and the web API both validate with.

Units: rates per second, times in seconds, token counts in tokens, memory in
GiB (1024**3 bytes). A bad value raises InputError naming the field (CLI) or
is a 422 naming the field (web API, where FastAPI validates the same model).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.config.kv_sizes import DEFAULT_RESERVE_GIB
from sim.errors import InputError

Dtype = Literal["fp32", "fp16", "bf16", "fp8", "int4"]

# Upper bounds reject absurd input (a typo of a few zeros) with a clear message
# instead of returning a meaningless number; they sit far above real fleets.
MAX_GPUS = 1_000_000
MAX_TOKENS = 10_000_000


class HitRateInputs(BaseModel):
    """Workload and deployment of the analytic hit-rate model (see sim.analytic.hit_rate)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="llama-3-70b", min_length=1,
                       description="model preset or path to a HuggingFace config.json")
    gpu: str = Field(default="h100-sxm", min_length=1, description="GPU preset")
    gpus: int = Field(default=8, ge=1, le=MAX_GPUS, description="GPUs serving the workload (count)")
    tp: int | None = Field(default=None, ge=1, le=1024,
                           description="tensor-parallel degree (None = smallest that fits)")
    pp: int = Field(default=1, ge=1, le=1024, description="pipeline-parallel degree")
    kv_dtype: Dtype = Field(default="fp16", description="KV-cache element type")
    weight_dtype: Dtype = Field(default="fp16", description="weight element type")
    arrival_rate: float = Field(default=2.0, gt=0, le=100_000, description="new conversations per second")
    turns: float = Field(default=5.0, ge=1, le=1000, description="turns (requests) per conversation (mean)")
    turns_dist: Literal["fixed", "geometric"] = Field(
        default="fixed",
        description="conversation lengths: all equal to turns (a floor/ceil mix if fractional), or "
                    "geometric with mean turns (as the synthetic generator draws them)")
    interval_s: float = Field(default=60.0, gt=0, le=7 * 86400,
                              description="seconds between two turns of a conversation")
    prompt_tokens: int = Field(default=400, ge=1, le=MAX_TOKENS, description="new user tokens per turn")
    response_tokens: int = Field(default=200, ge=0, le=MAX_TOKENS, description="generated tokens per turn")
    system_prompt_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, description="shared system prompt, tokens")
    system_prompts: int = Field(default=1, ge=1, le=100_000, description="distinct system prompts (count)")
    weight_overhead: float = Field(default=1.0, ge=1, le=10,
                                   description="GPU memory per weight byte (1 = the weights once; the reserve "
                                               "covers activations and graphs)")
    reserve_gb: float = Field(default=DEFAULT_RESERVE_GIB, ge=0, le=100_000,
                              description="GPU memory per GPU kept for activations, CUDA graphs and buffers, GiB "
                                          "(the simulator's hardware.runtime_reserve_gib)")
    memory_gb: float | None = Field(default=None, gt=0, le=100_000,
                                    description="GPU memory per GPU, GiB (None = preset)")
    kv_budget_gb: float | None = Field(default=None, gt=0, le=100_000,
                                       description="KV-cache budget per GPU, GiB "
                                                   "(None = memory - weights x overhead - reserve)")
    cache_outputs: bool = Field(default=False,
                                description="generated tokens are cached too (the simulator caches prompts only)")


def cli_flag(field: str) -> str:
    """The `calc hit-rate` flag of an input field (for messages that name what the user typed)."""
    return "--dtype" if field == "kv_dtype" else "--" + field.replace("_", "-")


def first_error(e: ValidationError) -> tuple[str, str]:
    """(field name, message) of a pydantic error, with the bad value quoted."""
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"] if p != "body") or "input"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif "input" in err and not isinstance(err["input"], (dict, list)):
        msg = f"{msg} (got {err['input']!r})"
    return field, msg


def parse_inputs(values: dict[str, Any] | HitRateInputs) -> HitRateInputs:
    """Validate a dict of inputs; InputError naming the field on bad input."""
    if isinstance(values, HitRateInputs):
        return values
    try:
        return HitRateInputs.model_validate(values)
    except ValidationError as e:
        field, msg = first_error(e)
        raise InputError(msg, where=field) from None


__all__ = ["cli_flag", "Dtype", "HitRateInputs", "first_error", "parse_inputs"]
