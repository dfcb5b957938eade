"""FastAPI app of `python main.py serve`: the calculators and the results browser.

The API validates with the same pydantic schema as the CLI
(sim.analytic.inputs.HitRateInputs); bad input is a 422 whose ``detail`` lists
``{"loc": ["body", FIELD], "msg": ...}`` - FastAPI's own format, also used for
errors the library raises (InputError naming the field), so the page can put
every message next to its field. Errors never echo the request back in full.

The server opens no file a request names except under the results directory:
`model` is a preset name or the contents of a config.json posted by the page
(web.model_input). Bodies, concurrency and time are bounded (web.limits).
"""
from __future__ import annotations

import json
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sim.analytic import SENSITIVITY_PARAMS, HitRateInputs, calc_hit_rate, reuse_breakeven
from sim.config.gpus import GPUS
from sim.config.models import PRESETS, presets_only
from sim.errors import InputError
from sim.timing.step_cost import StepParams, step_params
from web import results
from web.limits import BodyCap, Busy, TooSlow, WebLimits, WorkerPool
from web.messages import friendly
from web.model_input import MAX_CONFIG_BYTES, CustomArchitecture, ModelField, resolve_model, short, tidy

STATIC = Path(__file__).resolve().parent / "static"
MAX_PATH = 1024  # characters of a results path
MAX_NAME_FIELD = 64  # characters of a GPU preset or sensitivity input name (messages quote them)
_WHERE = {"model.name": "model", "hardware.gpu": "gpu"}  # library key -> the request field
# NaN/Infinity are refused in every numeric field (JSON has no such numbers; the library would
# compute nonsense from them), and `model` is a preset name or config contents, never a path.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class CalcRequest(HitRateInputs):
    """Calculator form: the model inputs plus the target box and the sensitivity chart."""

    model_config = _STRICT

    model: ModelField = Field(default="llama-3-70b")  # type: ignore[assignment]
    architecture: CustomArchitecture | None = Field(default=None, description="typed architecture; replaces model")
    gpu: str = Field(default="h100-sxm", min_length=1, max_length=MAX_NAME_FIELD, description="GPU preset")
    target_hit_rate: float | None = Field(default=None, gt=0, le=1, description="0-1; None = no suggestion")
    vary: str | None = Field(default="kv_budget_gb", max_length=MAX_NAME_FIELD,
                             description="input of the sensitivity chart (None = no chart)")
    points: int = Field(default=25, ge=2, le=200, description="points of the sensitivity chart")


class ReuseRequest(BaseModel):
    model_config = _STRICT

    model: ModelField = Field(default="llama-3-70b")
    architecture: CustomArchitecture | None = None  # replaces model when given
    gpu: str = Field(default="h100-sxm", min_length=1, max_length=MAX_NAME_FIELD)
    gpus: int = Field(default=8, ge=1, le=1024)
    tp: int | None = Field(default=None, ge=1, le=1024)
    prefix_tokens: int = Field(default=8192, ge=1, le=10_000_000)
    gemm_efficiency: float | None = Field(default=None, gt=0, le=1)  # None: config.yaml's step-cost default
    kv_dtype: Literal["fp32", "fp16", "bf16", "fp8", "int4"] = "fp16"
    link_gb_s: float | None = Field(default=None, gt=0, le=100_000)


_REQUEST_MODELS: dict[str, type[BaseModel]] = {"/api/hit-rate": CalcRequest, "/api/reuse": ReuseRequest}


def _step_params(gemm_efficiency: float | None) -> StepParams:
    """The shipped step-cost figures, with the GEMM efficiency the page asked for."""
    params = step_params()
    return params if gemm_efficiency is None else replace(params, gemm_efficiency=gemm_efficiency)


def _preset_architectures() -> dict[str, dict[str, Any]]:
    """The dense presets as custom-architecture fields (the page's "fill from the preset")."""
    return {name: {"name": name, "layers": s.n_layers, "kv_heads": s.n_kv_heads, "head_dim": s.head_dim,
                   "params_b": s.params / 1e9, "attention_heads": s.n_heads, "hidden_size": s.hidden_size,
                   "vocab_size": s.vocab_size, "max_context": s.max_context}
            for name, s in PRESETS.items()
            if s.attention != "mla" and not s.is_moe and s.kv_cache_layer_count == s.n_layers}


def _field_error(where: str | None, msg: str, section: str = "body", status: int = 422) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": [
        {"type": "value_error", "loc": [section, short(where or "input", 80)], "msg": tidy(msg)}]})


def _json(out: Any) -> Response:
    """`out` as a JSON response; a non-finite number in it is bad input, not a 500."""
    try:
        text = json.dumps(out, allow_nan=False)
    except ValueError:
        raise InputError("these inputs give a number out of range (NaN or infinity)", where="input") from None
    return Response(text, media_type="application/json")


def _calc(req: CalcRequest) -> Response:
    key, posted = resolve_model(req.model, req.architecture)
    inputs = {**req.model_dump(exclude={"model", "architecture", "target_hit_rate", "vary", "points"}), "model": key}
    with presets_only(posted):  # the library opens no path while serving the web
        return _json(calc_hit_rate(inputs, target_hit_rate=req.target_hit_rate, vary=req.vary, points=req.points))


def _reuse(req: ReuseRequest) -> Response:
    key, posted = resolve_model(req.model, req.architecture)
    with presets_only(posted):
        return _json(reuse_breakeven(key, req.gpu, gpus=req.gpus, prefix_tokens=req.prefix_tokens, tp=req.tp,
                                     params=_step_params(req.gemm_efficiency), kv_dtype=req.kv_dtype,
                                     link_gb_s=req.link_gb_s))


def _install_error_handlers(app: FastAPI, limits: WebLimits) -> None:
    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        msg = str(exc).removeprefix(f"{exc.where}: ") if exc.where else str(exc)
        where = _WHERE.get(exc.where or "", exc.where)
        section = "query" if request.url.path.startswith("/api/results") else "body"
        return _field_error(where, msg, section)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own format minus "input"/"ctx": never echo the request back (it may be huge or
        # hold NaN, which JSON cannot carry); the message in the page's words (web.messages)
        model = _REQUEST_MODELS.get(request.url.path, CalcRequest)
        detail = [{"type": e.get("type", "value_error"),
                   "loc": [short(p, 80) for p in e.get("loc", ())][:4],
                   "msg": tidy(friendly(model, dict(e)))}
                  for e in exc.errors()[:20]]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        r = _field_error(None, f"server busy: {limits.workers} requests running and {limits.queue} waiting; "
                               "retry shortly", status=429)
        r.headers["Retry-After"] = "2"
        return r

    @app.exception_handler(TooSlow)
    async def _too_slow(request: Request, exc: TooSlow) -> JSONResponse:
        return _field_error(None, f"not finished within the {limits.timeout_s:g} s time limit", status=503)


def create_app(results_dir: str | Path = "results", limits: WebLimits | None = None) -> FastAPI:
    lim = limits or WebLimits()
    pool = WorkerPool(lim)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown()

    app = FastAPI(title="kvsim", description="KV-cache calculators and simulation results", lifespan=lifespan)
    app.state.results_dir = Path(results_dir)
    app.state.pool = pool
    app.add_middleware(BodyCap, limit=lim.body_bytes)
    _install_error_handlers(app, lim)

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await pool.run(fn, *args)

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
            "architectures": _preset_architectures(),
            "limits": {"body_bytes": lim.body_bytes, "config_bytes": MAX_CONFIG_BYTES},
        }

    @app.post("/api/hit-rate")
    async def hit_rate(req: CalcRequest) -> Response:
        return await run(_calc, req)

    @app.post("/api/reuse")
    async def reuse(req: ReuseRequest) -> Response:
        return await run(_reuse, req)

    @app.get("/api/results")
    async def list_results() -> dict:
        return await run(results.list_results, app.state.results_dir)

    @app.get("/api/results/report")
    async def report(path: str = Query(..., min_length=1, max_length=MAX_PATH)) -> Response:
        return await run(lambda: _json(results.report_summary(app.state.results_dir, path)))

    @app.get("/api/results/sweep")
    async def sweep(path: str = Query(..., min_length=1, max_length=MAX_PATH)) -> Response:
        return await run(lambda: _json(results.sweep_table(app.state.results_dir, path)))

    return app


def _check_can_listen(host: str, port: int) -> None:
    """Bind once before uvicorn does, so a busy port or an unknown host is one line, exit 2."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as e:
        raise InputError(f"cannot resolve {short(host)!r} ({short(e, 120)})", where="--host") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no obstacle
        try:
            s.bind(addr)
        except OSError as e:
            raise InputError(f"cannot listen on {short(host)}:{port} ({e.strerror or e})", where="--port") from None


def serve(host: str = "127.0.0.1", port: int = 8000, results_dir: str | Path = "results") -> int:
    """Run the UI until interrupted (uvicorn); returns the exit code."""
    if not 0 < port < 65536:
        raise InputError(f"must be in 1..65535 (got {port})", where="--port")
    import uvicorn

    rd = Path(results_dir)
    if rd.exists() and not rd.is_dir():
        raise InputError("not a directory", where=str(rd))
    _check_can_listen(host, port)
    print(f"kvsim UI on http://{host}:{port}/  (results from {rd.resolve()}; Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(create_app(rd), host=host, port=port, log_level="warning")
    return 0


__all__ = ["CalcRequest", "ReuseRequest", "WebLimits", "create_app", "serve"]
