"""The single-node timed replay gives, bit for bit, the per-request results pinned before its
speed-up (tests/data/timed_pin.npz, written by tests/data/make_timed_pin.py from the earlier code)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
_spec = importlib.util.spec_from_file_location("make_timed_pin", DATA / "make_timed_pin.py")
assert _spec is not None and _spec.loader is not None
pin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pin)


def _diff(got: np.ndarray, exp: np.ndarray) -> list[int]:
    """The first few request indices whose values differ (NaN equals NaN)."""
    bad = got != exp
    if exp.dtype.kind == "f":
        bad &= ~(np.isnan(got) & np.isnan(exp))
    return np.flatnonzero(bad.reshape(len(exp), -1).any(axis=1))[:5].tolist()


@pytest.mark.parametrize("case", list(pin.CASES))
def test_timed_results_equal_the_pinned_ones(case):
    want = np.load(pin.OUT)
    res = pin.run_case(case)
    for f in pin.FIELDS:
        got, exp = np.asarray(getattr(res, f)), want[f"{case}.{f}"]
        assert got.shape == exp.shape, f
        assert np.array_equal(got, exp, equal_nan=exp.dtype.kind == "f"), f"{case}: {f} differs at {_diff(got, exp)}"
    assert res.sim_time_s == want[f"{case}.sim_time_s"][0]
    assert pin.io_figures(res).tolist() == want[f"{case}.io"].tolist()
