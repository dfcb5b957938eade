"""How far to trust a run's latencies: is the step model calibrated for it, and how well does it match the
published measurements nearest to the run (README "How far to trust TTFT/TPOT").

``confidence(cfg)`` returns the report's top-level ``confidence`` dict:

* ``level`` - one of ``LEVELS``:

  - ``calibrated``: ``compute.calibration`` names a fit and
    ``compute.calibrated_for`` names the run's GPU (the config loader has
    already rejected a run whose GPU, model or TP differs from what the fit
    was made on);
  - ``validated``: shipped or hand-set efficiencies, and published
    measurements of the run's GPU and model architecture exist and are
    predicted within the validation targets (median |error| <=
    ``MEDIAN_TARGET_PCT``, every point within ``MAX_TARGET_PCT``, the
    issue's targets, also asserted by tests/validation/test_published.py);
  - ``extrapolated``: anything else - no published point of this GPU and
    model, or the ones there are miss the targets;
  - ``not applicable``: a hit-rate-only run has no latencies.

* ``nearest_points``: up to ``MAX_POINTS`` rows of the validation table
  (tests/validation/published.csv), nearest first: same GPU, model
  architecture and TP; then same GPU and architecture; then same GPU; then
  same architecture on another GPU (ties: closest TP, then id). Each is
  predicted with the *run's* step parameters at the *point's* own
  deployment (its model, GPU datasheet, TP/PP and dtypes), so a calibrated
  run is checked with its calibrated efficiencies.

"Model architecture" compares the figures the step model reads (layers,
widths, heads, parameters, experts), not names: Llama-3-70B and
Llama-3.1-70B are the same architecture.

The table is read once per process (``_points``); without it (kvsim
installed without its tests) the dict says "no published points available".
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from sim.config import Config
from sim.config.gpus import gpu_spec
from sim.config.models import ModelSpec, model_spec
from sim.errors import InputError
from sim.timing.step_cost import StepModel, step_params
from sim.timing.validation import Point, error_pct, load_points, predict_ms

TABLE = Path(__file__).resolve().parents[2] / "tests" / "validation" / "published.csv"
LEVELS = ("calibrated", "validated", "extrapolated", "not applicable")
# The accuracy targets for the validation table (issue #15), the same numbers the validation test
# asserts: median |error| within 15%, every point within 35%.
MEDIAN_TARGET_PCT = 15.0
MAX_TARGET_PCT = 35.0
MAX_POINTS = 5
README_SECTION = "README 'How far to trust TTFT/TPOT'"
# match kinds, nearest first; the first two are "this GPU and this model"
MATCHES = ("gpu+model+tp", "gpu+model", "gpu", "model")
_OWN = MATCHES[:2]


def _points(path: str) -> tuple[tuple[Point, ...], str]:
    """The table's rows and "" - or no rows and why (absent or unreadable file). Read once per version."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return (), f"no published points available ({p.name} not found)"
    return _read(str(p), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=4)
def _read(path: str, _mtime_ns: int, _size: int) -> tuple[tuple[Point, ...], str]:
    try:
        return tuple(load_points(path)), ""
    except InputError as e:
        return (), f"no published points available ({e})"


def _arch(spec: ModelSpec) -> tuple:
    return tuple(getattr(spec, f.name) for f in fields(spec) if f.name not in ("name", "max_context"))


@lru_cache(maxsize=64)
def _arch_of(name: str) -> tuple | None:
    try:
        return _arch(model_spec(name))
    except InputError:
        return None


def _match(p: Point, gpu: str, arch: tuple, tp: int) -> int | None:
    """Index in MATCHES of how the point relates to the run (None: unrelated)."""
    same_gpu = gpu_spec(p.gpu).name == gpu
    same_model = _arch_of(p.model) == arch
    if same_gpu and same_model:
        return 0 if p.tp == tp else 1
    if same_gpu:
        return 2
    return 3 if same_model else None


def _level(cfg: Config, rows: list[dict]) -> str:
    cal = cfg.compute
    if cal.calibration and cal.calibrated_for.gpu:
        return "calibrated"
    own = [abs(r["error_pct"]) for r in rows if r["match"] in _OWN]
    if own and statistics.median(own) <= MEDIAN_TARGET_PCT and max(own) <= MAX_TARGET_PCT:
        return "validated"
    return "extrapolated"


def _summary(level: str, rows: list[dict], median: float | None, note: str) -> str:
    if not rows:
        return f"{level} - {note or 'no published points for this GPU or model'}; see {README_SECTION}"
    own = [abs(r["error_pct"]) for r in rows if r["match"] in _OWN]
    if own:  # the points the level is decided on, not the farther ones listed after them
        return (f"{level} - {len(own)} published point(s) of this GPU and model: median error "
                f"{statistics.median(own):.0f}%, max {max(own):.0f}% (targets {MEDIAN_TARGET_PCT:.0f}% / "
                f"{MAX_TARGET_PCT:.0f}%); see {README_SECTION}")
    gpus = ", ".join(dict.fromkeys(gpu_spec(r["gpu"]).name for r in rows))
    models = ", ".join(dict.fromkeys(r["model"] for r in rows))
    tps = sorted({r["tp"] for r in rows})
    tp = f"TP{tps[0]}" if len(tps) == 1 else f"TP{tps[0]}-{tps[-1]}"
    return (f"{level} - nearest published points ({gpus}, {models}, {tp}) median error {median:.0f}%; "
            f"see {README_SECTION}")


def _source(label: str, params) -> str:
    if label:
        return "calibrated"
    return "shipped defaults" if params == step_params() else "set in the config (not a calibration)"


def confidence(cfg: Config, table: str | Path | None = None) -> dict[str, Any]:
    """The report's ``confidence`` dict for a timed run of `cfg` (see the module docstring)."""
    c, m = cfg.compute, cfg.model
    params = step_params(c)
    gpu = gpu_spec(cfg.hardware.gpu).name
    arch = _arch(model_spec(m.name))
    points, note = _points(str(table if table is not None else TABLE))
    ranked = []
    for p in points:
        k = _match(p, gpu, arch, m.tp)
        if k is not None:
            ranked.append((k, abs(math.log2(p.tp / m.tp)), p.id, p))
    ranked.sort(key=lambda t: t[:3])

    def factory(p: Point) -> StepModel:
        # the run's efficiencies at the point's deployment (datasheet HBM, the default NVLink figure)
        return StepModel(model_spec(p.model), gpu_spec(p.gpu), params, tp=p.tp, pp=p.pp,
                         compute_dtype=p.compute_dtype, weight_dtype=p.weight_dtype, kv_dtype=p.kv_dtype)

    rows: list[dict[str, Any]] = []
    errs: list[float] = []
    for k, _d, _id, p in ranked[:MAX_POINTS]:
        pred = predict_ms(p, factory)
        rows.append({"id": p.id, "match": MATCHES[k], "gpu": p.gpu, "model": p.model, "tp": p.tp,
                     "metric": p.metric, "measured_ms": p.measured_ms, "predicted_ms": pred,
                     "error_pct": error_pct(pred, p.measured_ms), "source_url": p.source_url})
        errs.append(abs(rows[-1]["error_pct"]))
    median = statistics.median(errs) if errs else None
    level = _level(cfg, rows)
    if points and not rows:
        note = "no published points for this GPU or model"
    return {
        "level": level,
        "summary": _summary(level, rows, median, note),
        "run": {"gpu": gpu, "model": m.name, "tp": m.tp, "pp": m.pp, "compute_dtype": c.dtype,
                "weight_dtype": m.weight_dtype},
        "calibration": {"label": c.calibration, "calibrated_for": c.calibrated_for.model_dump(),
                        "source": _source(c.calibration, params)},
        "params": asdict(params),
        "nearest_points": rows,
        "median_abs_error_pct": median,
        "max_abs_error_pct": max(errs) if errs else None,
        "targets": {"median_abs_error_pct": MEDIAN_TARGET_PCT, "max_abs_error_pct": MAX_TARGET_PCT},
        "note": note,
    }


def not_applicable(reason: str = "hit-rate-only run: no latencies simulated") -> dict[str, Any]:
    """The ``confidence`` dict of a run without timing."""
    return {"level": "not applicable", "summary": f"not applicable - {reason}", "note": reason}


def for_run(cfg: Config, timing: bool) -> dict[str, Any]:
    """``confidence(cfg)`` for a timed run, ``not_applicable()`` otherwise."""
    return confidence(cfg) if timing else not_applicable()


__all__ = ["LEVELS", "MATCHES", "MAX_TARGET_PCT", "MEDIAN_TARGET_PCT", "TABLE", "confidence", "for_run",
           "not_applicable"]
