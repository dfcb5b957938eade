"""The shipped step-cost defaults are what the fit on the Vidur calibration profiles gives (skips without them)."""
import importlib.util
from pathlib import Path

import pytest

from sim.config.schema import ComputeCfg
from sim.timing import step_fit, vidur_profiles
from sim.timing.vidur_profiles import CommPoint, LayerPoint, LayerShape

ROOT = Path(__file__).resolve().parents[2]


def test_fits_recover_known_parameters():
    # points generated from the model itself: the fit must give the parameters back
    shape = LayerShape(32, 8, 4096, 14336, 128256, True)
    pts = [LayerPoint("h100-sxm", "m", shape, t, tp, 0.0) for t in (1, 8, 64, 256, 1024, 4096) for tp in (1, 2, 8)]
    ms = step_fit.predict_layer_ms(pts, 0.6, 100.0, 0.7)
    pts = [LayerPoint(p.gpu, p.model, p.shape, p.tokens, p.tp, float(v)) for p, v in zip(pts, ms, strict=True)]
    f = step_fit.fit_linear(pts)
    assert f.params == pytest.approx({"gemm_efficiency": 0.6, "gemm_half_tokens": 100.0, "hbm_efficiency": 0.7},
                                     rel=1e-3)
    comm = [CommPoint(n, b, 0.0) for n in (2, 4, 8) for b in (2048, 1 << 20, 1 << 26)]
    ms = step_fit.predict_all_reduce_ms(comm, 450, 0.8, 15.0)
    comm = [CommPoint(p.workers, p.nbytes, float(v)) for p, v in zip(comm, ms, strict=True)]
    f = step_fit.fit_all_reduce(comm, 450)
    assert f.params == pytest.approx({"comm_latency_us": 15.0, "comm_efficiency": 0.8}, rel=1e-9)


@pytest.mark.skipif(not vidur_profiles.available(), reason="no ../shared/profiling/vidur")
def test_shipped_defaults_are_the_refit():
    spec = importlib.util.spec_from_file_location("fit_step_cost", ROOT / "benchmarks" / "fit_step_cost.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fits = mod.fits()
    shipped = ComputeCfg()
    for k, v in mod.rounded(fits).items():
        assert getattr(shipped, k) == pytest.approx(v, abs=10 ** -mod.SHIPPED[k]), k
    # the residuals stay what README reports (median |error| of the layer fit ~12%, all-reduce ~7%)
    assert fits["linear"].summary()["median_abs_rel"] < 0.15
    assert fits["all_reduce"].summary()["median_abs_rel"] < 0.10


def test_missing_profile_file_is_input_error(tmp_path):
    from sim.errors import InputError

    with pytest.raises(InputError) as e:
        vidur_profiles.layer_points("h100", "nope", root=tmp_path)
    assert "mlp.csv" in e.value.where
    assert not vidur_profiles.available(tmp_path)
