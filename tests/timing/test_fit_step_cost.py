"""The shipped step-cost defaults are what benchmarks/fit_step_cost.py derives from the calibration data
(the `calibrate timing` fit, staged); skips without ../shared/profiling/vidur."""
import importlib.util
import sys

import pytest

from sim.config.schema import ComputeCfg
from sim.timing import vidur_profiles
from tests.conftest import ROOT


def _module():
    spec = importlib.util.spec_from_file_location("fit_step_cost", ROOT / "benchmarks" / "fit_step_cost.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # @dataclass looks its module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not vidur_profiles.available(), reason="no ../shared/profiling/vidur")
def test_shipped_defaults_are_the_refit_on_calibration_data_only():
    mod = _module()
    stages = mod.stages()
    shipped = ComputeCfg()
    for k, v in mod.rounded(stages).items():
        assert getattr(shipped, k) == pytest.approx(v, abs=10 ** -mod.SHIPPED[k]), k
    # no validation row is fitted on
    assert all("published.csv" not in p.where or p.where.split(": ")[1] in mod_calibration_ids(mod)
               for s in stages for p in s.result.points)
    # residuals stay what README reports (stage fits: GEMMs ~3%, all-reduce ~7%, engine rows ~17%)
    med = {s.name: s.result.summary()["median_abs_err_after_pct"] for s in stages}
    assert med["gemm"] < 5 and med["all_reduce"] < 10 and med["engine"] < 20


def mod_calibration_ids(mod) -> set[str]:
    return {p.id for p in mod.load_points(mod.TABLE) if p.split == "calibration"}


def test_missing_profile_file_is_input_error(tmp_path):
    from sim.errors import InputError

    with pytest.raises(InputError) as e:
        vidur_profiles.layer_points("h100", "nope", root=tmp_path)
    assert "mlp.csv" in e.value.where
    assert not vidur_profiles.available(tmp_path)
