"""FastAPI app of `python main.py serve`: the calculators and the results browser.

The API validates with the same pydantic schema as the CLI
(sim.analytic.inputs.HitRateInputs); bad input is a 422 whose ``detail`` lists
``{"loc": ["body", FIELD], "msg": ...}`` - FastAPI's own format, also used for
errors the library raises (InputError naming the field), so the page can put
every message next to its field.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sim.analytic import SENSITIVITY_PARAMS, HitRateInputs, calc_hit_rate, reuse_breakeven
from sim.config.gpus import GPUS
from sim.config.models import PRESETS
from sim.errors import InputError
from sim.timing.step_cost import StepParams, step_params
from web import results

STATIC = Path(__file__).resolve().parent / "static"


class CalcRequest(HitRateInputs):
    """Calculator form: the model inputs plus the target box and the sensitivity chart."""

    target_hit_rate: float | None = Field(default=None, gt=0, le=1, description="0-1; None = no suggestion")
    vary: str | None = Field(default="kv_budget_gb", description="input of the sensitivity chart (None = no chart)")
    points: int = Field(default=25, ge=2, le=200, description="points of the sensitivity chart")


class ReuseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="llama-3-70b", min_length=1)
    gpu: str = Field(default="h100-sxm", min_length=1)
    gpus: int = Field(default=8, ge=1, le=1024)
    tp: int | None = Field(default=None, ge=1, le=1024)
    prefix_tokens: int = Field(default=8192, ge=1, le=10_000_000)
    gemm_efficiency: float | None = Field(default=None, gt=0, le=1)  # None: config.yaml's step-cost default
    kv_dtype: Literal["fp32", "fp16", "bf16", "fp8", "int4"] = "fp16"
    link_gb_s: float | None = Field(default=None, gt=0, le=100_000)


def _step_params(gemm_efficiency: float | None) -> StepParams:
    """The shipped step-cost figures, with the GEMM efficiency the page asked for."""
    params = step_params()
    return params if gemm_efficiency is None else replace(params, gemm_efficiency=gemm_efficiency)


def _field_error(where: str | None, msg: str, section: str = "body") -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [
        {"type": "value_error", "loc": [section, where or "input"], "msg": msg}]})


def create_app(results_dir: str | Path = "results") -> FastAPI:
    app = FastAPI(title="kvsim", description="KV-cache calculators and simulation results")
    app.state.results_dir = Path(results_dir)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        msg = str(exc).removeprefix(f"{exc.where}: ") if exc.where else str(exc)
        section = "query" if request.url.path.startswith("/api/results") else "body"
        return _field_error(exc.where, msg, section)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/app.js", include_in_schema=False)
    def app_js() -> FileResponse:
        return FileResponse(STATIC / "app.js", media_type="text/javascript")

    @app.get("/api/presets")
    def presets() -> dict:
        return {
            "models": sorted(PRESETS),
            "gpus": [{"name": g.name, "memory_gib": g.memory_gb} for g in GPUS.values()],
            "dtypes": ["fp32", "fp16", "bf16", "fp8", "int4"],
            "sensitivity_params": list(SENSITIVITY_PARAMS),
            "defaults": CalcRequest().model_dump(),
        }

    @app.post("/api/hit-rate")
    def hit_rate(req: CalcRequest) -> dict:
        inputs = req.model_dump(exclude={"target_hit_rate", "vary", "points"})
        return calc_hit_rate(inputs, target_hit_rate=req.target_hit_rate, vary=req.vary, points=req.points)

    @app.post("/api/reuse")
    def reuse(req: ReuseRequest) -> dict:
        return reuse_breakeven(req.model, req.gpu, gpus=req.gpus, prefix_tokens=req.prefix_tokens, tp=req.tp,
                               params=_step_params(req.gemm_efficiency), kv_dtype=req.kv_dtype,
                               link_gb_s=req.link_gb_s)

    @app.get("/api/results")
    def list_results() -> dict:
        return results.list_results(app.state.results_dir)

    @app.get("/api/results/report")
    def report(path: str = Query(..., min_length=1)) -> dict:
        return results.report_summary(app.state.results_dir, path)

    @app.get("/api/results/sweep")
    def sweep(path: str = Query(..., min_length=1)) -> dict:
        return results.sweep_table(app.state.results_dir, path)

    return app


def serve(host: str = "127.0.0.1", port: int = 8000, results_dir: str | Path = "results") -> int:
    """Run the UI until interrupted (uvicorn); returns the exit code."""
    if not 0 < port < 65536:
        raise InputError(f"must be in 1..65535 (got {port})", where="--port")
    import uvicorn

    rd = Path(results_dir)
    if rd.exists() and not rd.is_dir():
        raise InputError("not a directory", where=str(rd))
    print(f"kvsim UI on http://{host}:{port}/  (results from {rd.resolve()}; Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(create_app(rd), host=host, port=port, log_level="warning")
    return 0


__all__ = ["CalcRequest", "ReuseRequest", "create_app", "serve"]
