"""The saturation check fed in chunks (sim.report.saturation.SaturationStream): a run whose rows are streamed
gets the classification of the whole arrays."""
import numpy as np
import pytest

from sim.report.saturation import SaturationStream, classify


def test_backlog_by_hand():
    # 20 arrivals 1 s apart, each waiting 0.5 s for its first token: over the inject phase [0, 19] the backlog
    # is 1 for half of each second, except the last arrival's wait, which falls after the phase: 19 x 0.5 / 19
    arr = np.arange(20, dtype=float)
    out = classify(arr, np.full(20, 0.5), 0.0)
    assert out["backlog_mean_requests"] == pytest.approx(0.5, rel=1e-12)
    # last window [17.1, 19]: 17's wait 17.1-17.5 (0.4 s) and 18's (0.5 s) of 1.9 s
    assert out["backlog_end_requests"] == pytest.approx(0.9 / 1.9, rel=1e-12)
    assert out["ttft_trend_ratio"] == 1.0 and out["load_class"] == "stable"


def test_an_unserved_request_waits_to_the_end():
    arr = np.arange(20, dtype=float)
    ttft = np.full(20, 0.5)
    ttft[0] = np.nan  # never served: in the backlog for the whole phase
    out = classify(arr, ttft, 0.0)
    assert out["backlog_mean_requests"] == pytest.approx((19.0 + 18 * 0.5) / 19.0, rel=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chunks_give_the_whole_arrays_result(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    arr = np.sort(rng.uniform(0, 100, n))
    ttft = rng.lognormal(-3, 1, n) * np.linspace(1, 1 + 200 * (seed - 1), n)  # a queue growing in the later seeds
    ttft[rng.integers(0, n, 30)] = np.nan
    whole = classify(arr, ttft, 0.6, workers=2)
    s = SaturationStream(arr)
    cuts = np.sort(rng.integers(0, n, 12))
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True):
        s.add(arr[lo:hi], ttft[lo:hi])
    part = s.result(0.6, workers=2)
    assert part.keys() == whole.keys()
    for k, v in whole.items():
        if isinstance(v, float):
            assert part[k] == pytest.approx(v, rel=1e-12), k
        else:
            assert part[k] == v, k
    assert whole["load_class"] == ("stable", "overloaded", "overloaded")[seed - 1]
