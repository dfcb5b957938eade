"""Fit the step-cost model's linear-layer and communication figures to measured points.

Separate from the reader (``sim.timing.vidur_profiles``) so any source of
points can be fitted. The models fitted are exactly the step-cost terms
(``sim.timing.step_cost``), per layer and per GPU:

* linear: ``ms = max(2 P (T + h) / (tp x peak x g), 2 P / (tp x HBM x e))``
  with P the layer's projection weights (fp16, 2 bytes each); fitted
  parameters g = gemm_efficiency, h = gemm_half_tokens, e = hbm_efficiency.
* all-reduce: ``ms = lat + 2 (n-1)/n x bytes / (link x c)``; fitted lat =
  comm_latency_us and c = comm_efficiency for a given per-direction link.

Both minimise the squared *relative* (log) error, so a 10 us decode step
counts as much as a 10 ms prefill.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.config.gpus import gpu_spec
from sim.timing.vidur_profiles import CommPoint, LayerPoint


@dataclass(frozen=True)
class Fit:
    params: dict[str, float]
    rel_errors: np.ndarray  # predicted / measured - 1, per point

    def summary(self) -> dict[str, float]:
        a = np.abs(self.rel_errors)
        return {"points": float(len(a)), "median_abs_rel": float(np.median(a)),
                "p90_abs_rel": float(np.quantile(a, 0.9)), "max_abs_rel": float(a.max()),
                "mean_rel": float(self.rel_errors.mean())}


def _layer_arrays(points: Sequence[LayerPoint]):
    P = np.array([p.shape.linear_params for p in points], dtype=np.float64)
    T = np.array([p.tokens for p in points], dtype=np.float64)
    tp = np.array([p.tp for p in points], dtype=np.float64)
    peak = np.array([gpu_spec(p.gpu).fp16_tflops * 1e12 for p in points])
    hbm = np.array([gpu_spec(p.gpu).hbm_bandwidth_gb_s * 1e9 for p in points])
    ms = np.array([p.ms for p in points])
    return P, T, tp, peak, hbm, ms


def predict_layer_ms(points: Sequence[LayerPoint], gemm_efficiency: float, gemm_half_tokens: float,
                     hbm_efficiency: float) -> np.ndarray:
    """The step-cost model's per-layer linear time (ms) at each point."""
    P, T, tp, peak, hbm, _ms = _layer_arrays(points)
    compute = 2 * P * (T + gemm_half_tokens) / (tp * peak * gemm_efficiency)
    memory = 2 * P / (tp * hbm * hbm_efficiency)
    return np.maximum(compute, memory) * 1e3


def fit_linear(points: Sequence[LayerPoint]) -> Fit:
    """gemm_efficiency, gemm_half_tokens, hbm_efficiency minimising the squared log error."""
    from scipy.optimize import least_squares

    ms = np.array([p.ms for p in points])

    def resid(x):
        g, h, e = x
        return np.log(predict_layer_ms(points, g, h, e) / ms)

    best = None
    for x0 in ((0.7, 64.0, 0.8), (0.5, 200.0, 0.6), (0.9, 16.0, 0.9)):
        r = least_squares(resid, x0, bounds=([0.05, 0.0, 0.05], [1.0, 4096.0, 1.0]), method="trf")
        if best is None or r.cost < best.cost:
            best = r
    assert best is not None
    g, h, e = (float(v) for v in best.x)
    rel = predict_layer_ms(points, g, h, e) / ms - 1
    return Fit({"gemm_efficiency": g, "gemm_half_tokens": h, "hbm_efficiency": e}, rel)


def predict_all_reduce_ms(points: Sequence[CommPoint], link_gb_s: float, comm_efficiency: float,
                          comm_latency_us: float) -> np.ndarray:
    n = np.array([p.workers for p in points], dtype=np.float64)
    nbytes = np.array([p.nbytes for p in points], dtype=np.float64)
    return (comm_latency_us * 1e-6 + 2 * (n - 1) / n * nbytes / (link_gb_s * 1e9 * comm_efficiency)) * 1e3


def fit_all_reduce(points: Sequence[CommPoint], link_gb_s: float) -> Fit:
    """comm_latency_us, comm_efficiency: weighted linear least squares on the relative error."""
    n = np.array([p.workers for p in points], dtype=np.float64)
    x = 2 * (n - 1) / n * np.array([p.nbytes for p in points], dtype=np.float64) / (link_gb_s * 1e9)  # s at c=1
    y = np.array([p.ms for p in points]) * 1e-3
    A = np.stack([np.ones_like(x), x], axis=1) / y[:, None]  # rows scaled by 1/y: relative residuals
    (lat, inv_c), *_ = np.linalg.lstsq(A, np.ones_like(y), rcond=None)
    c = 1.0 / inv_c
    rel = predict_all_reduce_ms(points, link_gb_s, c, lat * 1e6) / (y * 1e3) - 1
    return Fit({"comm_latency_us": float(lat * 1e6), "comm_efficiency": float(c)}, rel)


__all__ = ["Fit", "fit_all_reduce", "fit_linear", "predict_all_reduce_ms", "predict_layer_ms"]
