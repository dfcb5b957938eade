"""Fit the step-cost model's efficiencies (``StepParams``) to measured timing points.

The residual of a point is ``log(predicted / measured)``, so a 10% miss on a
0.1 ms all-reduce weighs as much as a 10% miss on a 2 s prefill; the fit is
``scipy.optimize.least_squares`` (trust-region reflective, bounds (0, 1] for
efficiencies and >= 0 for the rest), deterministic for given points and config.

Only what the points can identify is fitted: a parameter is a candidate when
the residuals move with it (sensitivity of the log time to the log parameter,
at the starting values) and its sensitivity vector is not (nearly) a
combination of those of the parameters picked before it, in ``PRIORITY``
order. The rest keep their config values; ``--fit`` overrides the choice.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import numpy as np

from sim.config.gpus import gpu_spec, intra_node_link_gb_s
from sim.config.models import model_spec
from sim.errors import InputError
from sim.timing.points import Deployment, TimingPoint
from sim.timing.step_cost import ACT_BYTES, BOUNDED_0_1, StepModel, StepParams, is_efficiency, linear_params
from sim.timing.validation import itl_s

if TYPE_CHECKING:  # pragma: no cover
    from sim.config import Config

PARAMS = tuple(f.name for f in fields(StepParams))
# Efficiencies first (the figures a profile is about), fixed costs after: when two parameters explain
# the same residuals, the earlier one is fitted and the later one keeps its value.
PRIORITY = ("gemm_efficiency", "gemm_efficiency_fp8", "hbm_efficiency", "attn_efficiency", "comm_efficiency",
            "iteration_overhead_ms", "ridge_softness", "layer_overhead_us", "comm_latency_us")
# Perturbation size of the parameters whose value may be 0 (their units: -, us, us, ms).
TYPICAL = {"ridge_softness": 0.5, "comm_latency_us": 10.0, "layer_overhead_us": 10.0, "iteration_overhead_ms": 1.0}
MIN_SENSITIVITY = 1e-3   # RMS d log(time) / d log(param) under which the points do not see a parameter
MIN_INDEPENDENCE = 0.05  # share of a sensitivity vector not explained by the ones picked before
AUTO_ROUNDS = 3  # re-judgings of what the points identify, at the fit (`fit` without names)


def step_params(cfg: Config) -> StepParams:
    return StepParams(**{n: float(getattr(cfg.compute, n)) for n in PARAMS})


@dataclass(frozen=True)
class Basis:
    """The figures efficiencies are fractions of; the overlay records them so it stays self-consistent."""

    hbm_bandwidth_gb_s: float   # 0 = the GPU's datasheet figure
    link_bandwidth_gb_s: float  # per direction (network.nvlink_bandwidth_gb_s; 0 = each GPU's NVLink / 2)
    compute_dtype: str
    weight_dtype: str
    kv_dtype: str


def basis_of(cfg: Config, gpu: str) -> Basis:
    same_gpu = gpu_spec(cfg.hardware.gpu).name == gpu_spec(gpu).name
    link = intra_node_link_gb_s(cfg.network.nvlink_bandwidth_gb_s, gpu_spec(gpu),
                                cfg.hardware.dram.bandwidth_gb_s)
    return Basis(cfg.hardware.hbm.bandwidth_gb_s if same_gpu else 0.0, link if same_gpu else
                 cfg.network.nvlink_bandwidth_gb_s, cfg.compute.dtype, cfg.model.weight_dtype, cfg.model.kv_dtype)


def model_for(dep: Deployment, basis: Basis, params: StepParams) -> StepModel:
    wdt = dep.dtype or basis.weight_dtype
    cdt = dep.compute_dtype or (("fp8" if wdt == "fp8" else "fp16") if dep.dtype else basis.compute_dtype)
    return StepModel(model_spec(dep.model), gpu_spec(dep.gpu), params, tp=dep.tp, pp=dep.pp or 1,
                     compute_dtype=cdt, weight_dtype=wdt, kv_dtype=dep.kv_dtype or basis.kv_dtype,
                     hbm_bandwidth_gb_s=basis.hbm_bandwidth_gb_s, link_bandwidth_gb_s=basis.link_bandwidth_gb_s)


# ---------------------------------------------------------------- predictions by point kind

def _prefill(m: StepModel, p: TimingPoint) -> float:
    return m.iteration_s([(p.prompt_tokens - p.cached_tokens, p.cached_tokens)] * max(1, p.batch))


def _step(m: StepModel, p: TimingPoint) -> float:
    return m.iteration_s(decode_batch=p.batch, decode_kv_tokens=p.batch * p.context)


def _linear(m: StepModel, p: TimingPoint) -> float:
    # Every layer of a dense model has the same shape, so one layer's GEMMs are its share of the linear weights;
    # the per-layer fixed cost is one layer's.
    fixed = m.spec.n_layers * m.params.layer_overhead_us * 1e-6
    lin = m.iteration(decode_batch=p.tokens).linear_s - fixed
    return lin * p.layer_params / linear_params(m.spec)[0] + fixed / m.spec.n_layers


def _allreduce(m: StepModel, p: TimingPoint) -> float:
    # The model's communication term is affine in the tokens T of an iteration and made of 2 all-reduces per
    # layer of T x hidden x ACT_BYTES bytes (step_cost module doc): one all-reduce of M bytes follows from
    # the term at T = 1 and 2, so the formula itself lives only in step_cost.
    per_ar = 2.0 * m.spec.n_layers
    c1 = m.iteration(decode_batch=1).communication_s / per_ar
    c2 = m.iteration(decode_batch=2).communication_s / per_ar
    token_bytes = m.spec.hidden_size * ACT_BYTES
    return c1 + (c2 - c1) * (p.message_bytes / token_bytes - 1.0)


def _itl(m: StepModel, p: TimingPoint) -> float:
    return itl_s(m, p.prompt_tokens, p.cached_tokens, p.batch, p.context, p.output_tokens)


PREDICT: dict[str, Callable[[StepModel, TimingPoint], float]] = {
    "prefill": _prefill, "step": _step, "itl": _itl, "linear": _linear, "allreduce": _allreduce,
}


def predict(points: Sequence[TimingPoint], params: StepParams, basis: Basis) -> np.ndarray:
    """Seconds the step-cost model predicts for each point."""
    models: dict[Deployment, StepModel] = {}
    out = np.empty(len(points))
    for i, p in enumerate(points):
        m = models.get(p.dep)
        if m is None:
            m = models[p.dep] = model_for(p.dep, basis, params)
        out[i] = PREDICT[p.kind](m, p)
    return out


# ---------------------------------------------------------------- identifiability and the fit

def _with(params: StepParams, names: Sequence[str], x: Sequence[float] | np.ndarray) -> StepParams:
    return replace(params, **{n: float(v) for n, v in zip(names, x, strict=True)})


def sensitivities(points: Sequence[TimingPoint], params: StepParams, basis: Basis) -> dict[str, np.ndarray]:
    """d log(predicted) / d log(parameter) per point (a 1% step; >= 0 parameters step at least 1% of TYPICAL)."""
    base = np.log(predict(points, params, basis))
    out = {}
    for n in PARAMS:
        v = getattr(params, n)
        step = max(abs(v), TYPICAL.get(n, 0.0)) * 0.01
        up = v + step if not (is_efficiency(n) or n in BOUNDED_0_1) or v + step <= 1 else v - step
        moved = np.log(predict(points, _with(params, [n], [up]), basis))
        out[n] = (moved - base) / ((up - v) / max(abs(v), TYPICAL.get(n, 0.0)))
    return out


def identifiable(points: Sequence[TimingPoint], params: StepParams, basis: Basis) -> list[str]:
    """The parameters the points can pin down, in PRIORITY order (module doc)."""
    sens = sensitivities(points, params, basis)
    picked: list[str] = []
    basis_vecs: list[np.ndarray] = []
    n = len(points)
    for name in PRIORITY:
        s = sens[name]
        norm = float(np.linalg.norm(s))
        if norm < MIN_SENSITIVITY * math.sqrt(n) or len(picked) >= n:
            continue
        rest = s.copy()
        for b in basis_vecs:
            rest -= (rest @ b) * b
        if np.linalg.norm(rest) < MIN_INDEPENDENCE * norm:
            continue
        picked.append(name)
        basis_vecs.append(rest / np.linalg.norm(rest))
    return picked


@dataclass(frozen=True)
class FitResult:
    points: list[TimingPoint]
    basis: Basis
    fitted: list[str]
    kept: list[str]
    before: StepParams
    after: StepParams
    measured_s: np.ndarray
    before_s: np.ndarray
    after_s: np.ndarray
    converged: bool

    @staticmethod
    def _err(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
        return 100.0 * (pred / meas - 1.0)

    @property
    def err_before_pct(self) -> np.ndarray:
        return self._err(self.before_s, self.measured_s)

    @property
    def err_after_pct(self) -> np.ndarray:
        return self._err(self.after_s, self.measured_s)

    def summary(self) -> dict[str, float]:
        b, a = np.abs(self.err_before_pct), np.abs(self.err_after_pct)
        return {"median_abs_err_before_pct": float(np.median(b)), "max_abs_err_before_pct": float(b.max()),
                "median_abs_err_after_pct": float(np.median(a)), "max_abs_err_after_pct": float(a.max())}


def check_shapes(points: Sequence[TimingPoint]) -> None:
    """A per-layer measurement only scales to a dense model of the same width."""
    for p in points:
        if p.kind != "linear":
            continue
        spec = model_spec(p.dep.model)
        if spec.is_moe:
            raise InputError(f"per-layer GEMM times cannot calibrate the MoE model {spec.name}", where=p.where)
        if p.hidden != spec.hidden_size:
            raise InputError(f"the profiled layer has n_embd {p.hidden} but {spec.name} has hidden size "
                             f"{spec.hidden_size}: pass the --model it was profiled for", where=p.where)


def fit(points: Sequence[TimingPoint], cfg: Config, names: Sequence[str] | None = None) -> FitResult:
    """Fit ``names`` (default: the identifiable parameters) to the points, the rest at their config values."""
    pts = list(points)
    if not pts:
        raise InputError("no points to fit", where="--points")
    check_shapes(pts)
    basis = basis_of(cfg, pts[0].dep.gpu)
    start = step_params(cfg)
    auto = names is None
    if names is None:
        names = identifiable(pts, start, basis)
    else:
        unknown = [n for n in names if n not in PARAMS]
        if unknown:
            raise InputError(f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(PARAMS)})", where="--fit")
        if len(names) > len(pts):
            raise InputError(f"{len(names)} parameters but only {len(pts)} points", where="--fit")
    names = list(names)
    meas = np.array([p.measured_s for p in pts])
    before = predict(pts, start, basis)
    if not names:
        return FitResult(pts, basis, [], list(PARAMS), start, start, meas, before, before, True)
    after, cost, ok = _least_squares(pts, basis, meas, start, names)
    # What the points identify is judged locally (at the config's values): a term that dominates there
    # can mask one that matters at the fit (e.g. a per-layer cost set for another engine). Re-judge at
    # the fit and refit with what became identifiable, keeping the better fit; a few rounds at most.
    for _ in range(AUTO_ROUNDS if auto else 0):
        more = [n for n in identifiable(pts, after, basis) if n not in names]
        if not more:
            break
        wider = [n for n in PRIORITY if n in names or n in more][:len(pts)]
        after2, cost2, ok2 = _least_squares(pts, basis, meas, after, wider)
        if cost2 >= cost:
            break
        names, after, cost, ok = wider, after2, cost2, ok2
    return FitResult(pts, basis, names, [n for n in PARAMS if n not in names], start, after, meas, before,
                     predict(pts, after, basis), ok)


def _least_squares(pts: list[TimingPoint], basis: Basis, meas: np.ndarray, base: StepParams,
                   names: list[str]) -> tuple[StepParams, float, bool]:
    """``names`` fitted from ``base`` (the rest at base's values): (parameters, cost, converged)."""
    from scipy.optimize import least_squares

    eff = [is_efficiency(n) for n in names]
    lo = np.array([1e-6 if e else 0.0 for e in eff])
    hi = np.array([1.0 if e or n in BOUNDED_0_1 else np.inf for n, e in zip(names, eff, strict=True)])
    x0 = np.clip([getattr(base, n) for n in names], lo, hi)
    scale = np.array([max(abs(v), TYPICAL.get(n, 0.1)) for n, v in zip(names, x0, strict=True)])

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.log(predict(pts, _with(base, names, x), basis) / meas)

    # The max(compute, weight read) of the linear term makes local minima possible: two fixed starts,
    # the base values and mid-range ones, keep the lower cost (deterministic).
    mid = np.clip([0.5 if e else TYPICAL.get(n, 1.0) for n, e in zip(names, eff, strict=True)], lo, hi)
    res = min((least_squares(residuals, x, bounds=(lo, hi), x_scale=scale, method="trf", xtol=1e-12, ftol=1e-12,
                             gtol=1e-12, max_nfev=200 * (len(names) + 1)) for x in (x0, mid)),
              key=lambda r: r.cost)
    return _with(base, names, res.x), float(res.cost), bool(res.success)


# ---------------------------------------------------------------- the profile overlay

def overlay_text(res: FitResult, label: str, sources: Sequence[str]) -> str:
    """A `--profile` overlay: the hardware/model keys the points were measured on, the bandwidths the
    efficiencies are fractions of, all seven StepParams (fitted or kept) and compute.calibrated_for."""
    deps = {p.dep for p in res.points}
    gpu = next(iter(deps)).gpu
    model = next(iter(deps)).model
    tps = sorted({d.tp for d in deps})
    tp = tps[0] if len(tps) == 1 else 0
    s = res.summary()
    q = json.dumps  # a JSON string is a valid YAML scalar
    lines = [
        "# Step-cost calibration written by `python main.py calibrate timing`.",
        f"# Points: {', '.join(sources)}",
        f"# Fitted: {', '.join(res.fitted) or 'nothing'}; kept (not identified by these points): "
        f"{', '.join(res.kept) or 'none'}.",
        f"# |predicted / measured - 1| over {len(res.points)} points: median {s['median_abs_err_before_pct']:.1f}% -> "
        f"{s['median_abs_err_after_pct']:.1f}%, max {s['max_abs_err_before_pct']:.1f}% -> "
        f"{s['max_abs_err_after_pct']:.1f}%.",
        "# Valid only for the gpu/model/tp below: the config loader rejects it under another one.",
        "model:",
        f"  name: {q(model)}",
    ]
    if tp:
        lines.append(f"  tp: {tp}")
    lines += [
        "hardware:",
        f"  gpu: {q(gpu)}",
        "  hbm:",
        f"    bandwidth_gb_s: {res.basis.hbm_bandwidth_gb_s:g}   # GB/s hbm_efficiency is a fraction of "
        "(0 = datasheet)",
        "network:",
        f"  nvlink_bandwidth_gb_s: {res.basis.link_bandwidth_gb_s:g}   # GB/s per direction comm_efficiency is a "
        "fraction of",
        "compute:",
    ]
    for n in PARAMS:
        how = "fitted" if n in res.fitted else "kept: the config value"
        lines.append(f"  {n}: {getattr(res.after, n):.6g}   # {how}")
    lines += [f"  calibration: {q(label)}",
              f"  calibrated_for: {{gpu: {q(gpu)}, model: {q(model)}, tp: {tp}}}   # tp 0 = fitted on several"]
    return "\n".join(lines) + "\n"
