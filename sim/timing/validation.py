"""Published latency measurements (tests/validation/published.csv) and kvsim's prediction of each.

A row is one measured number from a public source: a prefill (first-token
latency at batch 1), a decode step at a batch and context, or the
inter-token latency of a serving engine under ``C`` concurrent requests.
``predict_ms`` maps each metric onto the step-cost API
(``sim.timing.step_cost.StepModel``) built from a ``Config`` with only the
row's model / GPU / parallelism / dtypes overridden, so a prediction uses the
shipped defaults exactly as a user run would. The columns are documented in
tests/validation/README.md.
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sim.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from sim.timing.points import TimingPoint
    from sim.timing.step_cost import StepModel

COLUMNS = ("id", "source_url", "source_table", "engine", "gpu", "model", "weight_dtype", "kv_dtype",
           "compute_dtype", "tp", "pp", "metric", "prompt_tokens", "cached_tokens", "batch", "context",
           "output_tokens", "concurrency", "measured_ms", "split", "quote", "notes")
_INT_COLUMNS = ("tp", "pp", "prompt_tokens", "cached_tokens", "batch", "context", "output_tokens", "concurrency")
SPLITS = ("calibration", "validation")


@dataclass(frozen=True)
class Point:
    """One published measurement (units: tokens, requests, milliseconds)."""

    id: str
    source_url: str
    source_table: str
    engine: str
    gpu: str
    model: str
    weight_dtype: str
    kv_dtype: str
    compute_dtype: str
    tp: int
    pp: int
    metric: str            # prefill_ms | step_ms | itl_ms
    prompt_tokens: int
    cached_tokens: int
    batch: int             # requests in the iteration (prefill/step) or concurrency (itl)
    context: int           # KV tokens per decoding request (step, itl)
    output_tokens: int     # output length per request (itl)
    concurrency: int
    measured_ms: float
    split: str             # calibration | validation
    quote: str
    notes: str

    def overrides(self) -> list[str]:
        """``--set`` overrides that describe this row's deployment."""
        return [f"model.name={self.model}", f"hardware.gpu={self.gpu}", f"model.tp={self.tp}",
                f"model.pp={self.pp}", f"model.weight_dtype={self.weight_dtype}",
                f"model.kv_dtype={self.kv_dtype}", f"compute.dtype={self.compute_dtype}"]


def _prefill_ms(p: Point, m: StepModel) -> float:
    # batch b: one iteration carrying b identical prompts (b = 1 for every first-token latency row)
    chunk = (p.prompt_tokens - p.cached_tokens, p.cached_tokens)
    return m.iteration_s([chunk] * p.batch) * 1e3


def _step_ms(p: Point, m: StepModel) -> float:
    return m.iteration_s(decode_batch=p.batch, decode_kv_tokens=float(p.batch * p.context)) * 1e3


def itl_s(m: StepModel, prompt: int, cached: int, concurrency: int, context: float, output: int) -> float:
    """Steady-state inter-token latency (s) of a continuous-batching engine under ``C`` concurrent requests.

    C requests decode, each holding ``context`` (= I + O/2 on average) KV
    tokens. While one request produces its O tokens, every other request
    finishes once and is replaced, so C - 1 prefills of I tokens are mixed
    into that request's decode iterations (its own prefill happens before its
    first token, outside the ITL). Each costs the difference between an
    iteration carrying the prefill and the plain decode iteration:

        itl = (O x decode(C) + (C - 1) x [iteration(prefill I + decode C) - decode(C)]) / O
    """
    c, o = concurrency, output
    kv = float(c * context)
    decode = m.iteration_s(decode_batch=c, decode_kv_tokens=kv)
    mixed = m.iteration_s([(prompt - cached, cached)], decode_batch=c, decode_kv_tokens=kv)
    return (o * decode + (c - 1) * (mixed - decode)) / o


def _itl_ms(p: Point, m: StepModel) -> float:
    return itl_s(m, p.prompt_tokens, p.cached_tokens, p.concurrency, p.context, p.output_tokens) * 1e3


def timing_points(points: Sequence[Point]) -> list[TimingPoint]:
    """The rows as `calibrate timing` points (kinds prefill / step / itl), each on its own deployment."""
    from sim.timing.points import Deployment, TimingPoint

    kind = {"prefill_ms": "prefill", "step_ms": "step", "itl_ms": "itl"}
    out = []
    for p in points:
        dep = Deployment(p.gpu, p.model, p.tp, p.pp, p.weight_dtype, p.kv_dtype, p.compute_dtype)
        batch = p.concurrency if p.metric == "itl_ms" else p.batch
        out.append(TimingPoint(kind[p.metric], f"published.csv: {p.id}", dep, p.measured_ms / 1e3,
                               prompt_tokens=p.prompt_tokens, cached_tokens=p.cached_tokens, batch=batch,
                               context=float(p.context), output_tokens=p.output_tokens))
    return out


METRICS: dict[str, Callable[[Point, StepModel], float]] = {
    "prefill_ms": _prefill_ms,
    "step_ms": _step_ms,
    "itl_ms": _itl_ms,
}


def config_step_model(point: Point, config_path: str | Path | None = None,
                      extra_overrides: Sequence[str] = ()) -> StepModel:
    """StepModel of the row's deployment: config file (default config.yaml) + the row's overrides."""
    from sim.config import load_config
    from sim.timing.step_cost import StepModel

    cfg = load_config(config_path, overrides=[*point.overrides(), *extra_overrides])
    return StepModel.from_config(cfg)


def predict_ms(point: Point, step_model_factory: Callable[[Point], StepModel] = config_step_model) -> float:
    """kvsim's prediction of the row's measured quantity, in ms."""
    return METRICS[point.metric](point, step_model_factory(point))


def _parse_row(row: dict[str, str | None], where: str) -> Point:
    values: dict[str, object] = {}
    for col in COLUMNS:
        raw = row.get(col)
        if raw is None:
            raise InputError(f"missing column {col!r}", where=where)
        values[col] = raw.strip()
    for col in _INT_COLUMNS:
        text = str(values[col]) or "0"
        try:
            n = int(text)
        except ValueError:
            raise InputError(f"column {col!r} must be a whole number (got {text!r})", where=where) from None
        if n < 0:
            raise InputError(f"column {col!r} must be >= 0 (got {n})", where=where)
        values[col] = n
    try:
        ms = float(str(values["measured_ms"]))
    except ValueError:
        raise InputError(f"column 'measured_ms' must be a number (got {values['measured_ms']!r})",
                         where=where) from None
    if not ms > 0:
        raise InputError(f"column 'measured_ms' must be > 0 (got {ms})", where=where)
    values["measured_ms"] = ms
    if values["metric"] not in METRICS:
        raise InputError(f"unknown metric {values['metric']!r} (known: {', '.join(METRICS)})", where=where)
    if values["split"] not in SPLITS:
        raise InputError(f"unknown split {values['split']!r} (known: {', '.join(SPLITS)})", where=where)
    point = Point(**values)  # type: ignore[arg-type]
    if point.tp < 1 or point.pp < 1 or point.batch < 1 or point.concurrency < 1:
        raise InputError("tp, pp, batch and concurrency must be >= 1", where=where)
    if point.cached_tokens >= point.prompt_tokens and point.metric != "step_ms":
        raise InputError("cached_tokens must be below prompt_tokens", where=where)
    if point.metric == "itl_ms" and point.output_tokens < 1:
        raise InputError("itl_ms needs output_tokens >= 1", where=where)
    return point


def load_points(path: str | Path) -> list[Point]:
    """Every row of a validation table; a bad row is an InputError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read validation table: {e.strerror}", where=str(path)) from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", where=f"{path}:1")
    points, seen = [], set()
    for row in reader:
        where = f"{path}:{reader.line_num}"
        point = _parse_row(row, where)
        if point.id in seen:
            raise InputError(f"duplicate id {point.id!r}", where=where)
        seen.add(point.id)
        points.append(point)
    return points


def error_pct(predicted_ms: float, measured_ms: float) -> float:
    """Signed relative error of a prediction, percent of the measurement."""
    return (predicted_ms - measured_ms) / measured_ms * 100.0


__all__ = ["COLUMNS", "METRICS", "Point", "SPLITS", "config_step_model", "error_pct", "itl_s", "load_points",
           "predict_ms", "timing_points"]
