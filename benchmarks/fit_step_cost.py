"""Refit the step-cost model's calibrated defaults and print the residuals.

    python benchmarks/fit_step_cost.py

Reads ../shared/profiling/vidur (sim.timing.vidur_profiles) and fits
(sim.timing.step_fit): gemm_efficiency, gemm_half_tokens, hbm_efficiency on
the per-layer non-attention operator times of three model/GPU files, and
comm_efficiency, comm_latency_us on the H100 DGX all-reduce times with the
per-direction NVLink bandwidth of config.yaml. tests/timing/test_step_fit.py
checks that config.yaml ships what this prints (rounded as SHIPPED says).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.config.schema import ComputeCfg, NetworkCfg  # noqa: E402
from sim.timing import step_fit, vidur_profiles  # noqa: E402

# How each fitted figure is rounded for config.yaml.
SHIPPED = {"gemm_efficiency": 2, "gemm_half_tokens": 0, "hbm_efficiency": 2, "comm_efficiency": 2,
           "comm_latency_us": 0}


def fits() -> dict[str, step_fit.Fit]:
    layer = [p for g, m in vidur_profiles.MLP_FILES for p in vidur_profiles.layer_points(g, m)]
    comm = vidur_profiles.all_reduce_points()
    return {"linear": step_fit.fit_linear(layer),
            "all_reduce": step_fit.fit_all_reduce(comm, NetworkCfg().nvlink_bandwidth_gb_s)}


def rounded(f: dict[str, step_fit.Fit]) -> dict[str, float]:
    return {k: round(v, SHIPPED[k]) for fit in f.values() for k, v in fit.params.items()}


def main() -> int:
    if not vidur_profiles.available():
        print(f"no Vidur profiles at {vidur_profiles.VIDUR_DIR}", file=sys.stderr)
        return 2
    f = fits()
    shipped = ComputeCfg()
    for name, fit in f.items():
        print(f"{name}: " + ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items()))
        print("   residuals (predicted/measured - 1): " + ", ".join(f"{k}={v:.3f}" for k, v in fit.summary().items()))
    layer = [p for g, m in vidur_profiles.MLP_FILES for p in vidur_profiles.layer_points(g, m)]
    r = rounded(f)
    for g, m in vidur_profiles.MLP_FILES:
        pts = [p for p in layer if p.model == m]
        rel = step_fit.predict_layer_ms(pts, r["gemm_efficiency"], r["gemm_half_tokens"], r["hbm_efficiency"])
        rel = rel / [p.ms for p in pts] - 1
        for tp in (1, 8):
            sub = [(p.tokens, e) for p, e in zip(pts, rel, strict=True)
                   if p.tp == tp and p.tokens in (1, 64, 512, 4096)]
            print(f"   {g}/{m} tp{tp}: " + ", ".join(f"T={t}: {e:+.0%}" for t, e in sub))
    print("shipped (config.yaml): " + ", ".join(f"{k}={getattr(shipped, k)}" for k in r))
    print("refit, rounded:        " + ", ".join(f"{k}={v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
