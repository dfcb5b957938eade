"""Derive the step-cost model's shipped defaults from the calibration data and print the residuals.

    python benchmarks/fit_step_cost.py

Every stage is one call of ``sim.timing.calibrate.fit`` - the fit `calibrate
timing` runs - on one set of calibration points, fitting the parameters those
points identify and keeping the rest at the values of the stages before:

1. ``bandwidth``: Vidur's per-layer GEMM times (``../shared/profiling/vidur``
   ``<gpu>/<model>/mlp.csv``: H100 Llama-2-7B and CodeLlama-34B, A100
   Llama-3-70B, TP 1-8) at <= 16 tokens, where a layer is a pure weight read:
   ``hbm_efficiency`` and a per-layer fixed cost (a nuisance here, refitted
   in stage 4 on engine measurements).
2. ``gemm``: the same files at every token count: ``gemm_efficiency`` and
   ``ridge_softness`` (how compute and weight read combine near the ridge).
3. ``all_reduce``: Vidur's NCCL all-reduce times (``network/h100_dgx``):
   ``comm_efficiency``, ``comm_latency_us``.
4. ``engine``: the ``split=calibration`` rows of tests/validation/published.csv
   (serving engines end to end): ``gemm_efficiency_fp8`` (no FP8 in Vidur),
   ``layer_overhead_us`` and ``iteration_overhead_ms``.

The validation rows are never read here. tests/timing/test_fit_step_cost.py
checks that config.yaml ships what this prints (rounded as SHIPPED says).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.config import load_config  # noqa: E402
from sim.config.schema import ComputeCfg  # noqa: E402
from sim.timing import calibrate, vidur_profiles  # noqa: E402
from sim.timing.points import TimingPoint, read_points, resolve  # noqa: E402
from sim.timing.step_cost import StepParams  # noqa: E402
from sim.timing.validation import load_points, timing_points  # noqa: E402

TABLE = ROOT / "tests" / "validation" / "published.csv"
# How each fitted figure is rounded for config.yaml (decimals).
SHIPPED = {"hbm_efficiency": 2, "gemm_efficiency": 2, "ridge_softness": 2, "comm_efficiency": 2,
           "comm_latency_us": 0, "gemm_efficiency_fp8": 2, "layer_overhead_us": 0, "iteration_overhead_ms": 2}
# Where the fit starts (not a result): fixed, so the refit does not depend on what config.yaml ships.
START = StepParams(gemm_efficiency=0.5, gemm_efficiency_fp8=0.5, ridge_softness=0.5, attn_efficiency=0.45,
                   hbm_efficiency=0.5, comm_efficiency=0.5, comm_latency_us=10.0, layer_overhead_us=10.0,
                   iteration_overhead_ms=1.0)
BANDWIDTH_MAX_TOKENS = 16  # a layer's GEMMs at <= 16 tokens: compute < 2% of the weight read on H100/A100


@dataclass(frozen=True)
class Stage:
    name: str
    names: tuple[str, ...]
    result: calibrate.FitResult


def _mlp_points() -> list[TimingPoint]:
    return [p for g, m in vidur_profiles.MLP_FILES for p in read_points(vidur_profiles.VIDUR_DIR / g / m / "mlp.csv")]


def _all_reduce_points() -> list[TimingPoint]:
    # the message size is what an all-reduce point is about; any model of the GPU resolves the flag
    pts = read_points(vidur_profiles.VIDUR_DIR / "network" / "h100_dgx" / "all_reduce.csv")
    return resolve(pts, gpu="h100-sxm", model="llama-2-7b", tp=None)


def calibration_points() -> list[TimingPoint]:
    return timing_points([p for p in load_points(TABLE) if p.split == "calibration"])


def stages() -> list[Stage]:
    """The four fits in order, each starting from the parameters the ones before produced."""
    mlp = _mlp_points()
    small = [p for p in mlp if p.tokens <= BANDWIDTH_MAX_TOKENS]
    plan = (("bandwidth", small, ("hbm_efficiency", "layer_overhead_us")),
            ("gemm", mlp, ("gemm_efficiency", "ridge_softness")),
            ("all_reduce", _all_reduce_points(), ("comm_efficiency", "comm_latency_us")),
            ("engine", calibration_points(), ("gemm_efficiency_fp8", "layer_overhead_us", "iteration_overhead_ms")))
    params = START
    out = []
    for name, pts, names in plan:
        cfg = load_config(None, overrides=[f"compute.{f.name}={getattr(params, f.name)!r}" for f in fields(params)])
        res = calibrate.fit(pts, cfg, list(names))
        params = res.after
        out.append(Stage(name, names, res))
    return out


def rounded(st: list[Stage]) -> dict[str, float]:
    """The shipped figure of each fitted parameter (the last stage that fits it wins)."""
    out: dict[str, float] = {}
    for s in st:
        for n in s.names:
            out[n] = round(getattr(s.result.after, n), SHIPPED[n])
    return out


def _residuals(errs: np.ndarray) -> str:
    a = np.abs(errs)
    return f"{len(a)} points, median |error| {np.median(a):.1f}%, p90 {np.quantile(a, 0.9):.1f}%, max {a.max():.1f}%"


def main() -> int:
    if not vidur_profiles.available():
        print(f"no Vidur profiles at {vidur_profiles.VIDUR_DIR}", file=sys.stderr)
        return 2
    st = stages()
    for s in st:
        r = s.result
        print(f"{s.name}: " + ", ".join(f"{n}={getattr(r.after, n):.4g}" for n in s.names)
              + f"   ({_residuals(r.err_after_pct)})")
    shipped = rounded(st)
    # residuals of the shipped (rounded) parameters, per calibration source
    cfg = load_config(None, overrides=[f"compute.{k}={v!r}" for k, v in shipped.items()])
    final = calibrate.step_params(cfg)
    for s in st:
        pts = s.result.points
        if s.name in ("bandwidth", "gemm"):
            # Vidur's GEMM-only layers carry the stage's own per-layer cost, not the engines' (stage 4)
            err, how = s.result.err_after_pct, "the stage's own figures"
        else:
            pred = calibrate.predict(pts, final, calibrate.basis_of(cfg, pts[0].dep.gpu))
            err, how = 100.0 * (pred / s.result.measured_s - 1.0), "the shipped figures"
        print(f"\nresiduals with {how}, {s.name} points: {_residuals(err)}")
        if s.name == "engine":
            for p, e in zip(pts, err, strict=True):
                print(f"   {p.where.removeprefix('published.csv: '):40s} {p.describe():34s} {e:+6.1f}%")
        if s.name == "gemm":
            T = np.array([p.tokens for p in pts])
            tp = np.array([p.dep.tp for p in pts])
            mod = np.array([p.dep.model for p in pts])
            for m in dict.fromkeys(mod):
                for t in (1, 8):
                    cells = [f"T={x}: {np.median(err[(mod == m) & (tp == t) & (T == x)]):+.0f}%"
                             for x in (1, 64, 256, 1024, 4096) if ((mod == m) & (tp == t) & (T == x)).any()]
                    print(f"   {m} tp{t}: " + ", ".join(cells))
    current = ComputeCfg()
    print("\nshipped (config.yaml): " + ", ".join(f"{k}={getattr(current, k)}" for k in shipped))
    print("refit, rounded:        " + ", ".join(f"{k}={v}" for k, v in shipped.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
