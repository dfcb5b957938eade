"""The progress ETA (sim.eta): the recent rate, the first step (a compile) never counted; checked by hand."""
from __future__ import annotations

import pytest

from sim.eta import Eta, eta_text
from tests.cli.test_output_fit import clocked_progress

TOTAL = 12_000
EVERY = 60  # progress_every(12,000): a tick every 60 requests


def _compile_then_fast(eta: Eta, upto: int) -> float:
    """Start at t=0, a tick at 0 before the first call returns, 83 s for the first 60 requests (the compile),
    then 1 ms a request, a tick every 60. Returns the time of the tick at `upto` requests."""
    eta.tick(0.0, 0)
    eta.tick(0.0, 0)
    t = 0.0
    for done in range(EVERY, upto + 1, EVERY):
        t = 83.0 + (done - EVERY) * 0.001
        eta.tick(t, done)
    return t


def test_a_compile_in_the_first_step_does_not_inflate_the_eta():
    e = Eta()
    _compile_then_fast(e, 60)
    assert e.eta_s(TOTAL) is None  # only the first step so far: no rate to speak of (was 83 * 11,940 / 60 s)
    e = Eta()
    _compile_then_fast(e, 120)
    assert e.eta_s(TOTAL) is None  # one step after it: 0.06 s, under the 1 s it takes to say anything
    e = Eta()
    t = _compile_then_fast(e, 5_100)
    assert t == pytest.approx(88.04)
    # rate (5,100 - 60) / (88.04 - 83) = 1,000 a second; 6,900 left -> 6.9 s (since the start: 119 s)
    assert e.eta_s(TOTAL) == pytest.approx(6.9)


def test_the_rate_follows_the_last_window():
    e = Eta(window_s=30.0)
    e.tick(0.0, 0)
    t, done = 0.0, 0
    for _ in range(100):  # 100 requests a second for 100 s
        t, done = t + 1.0, done + 100
        e.tick(t, done)
    assert e.eta_s(20_000) == pytest.approx(100.0)  # 10,000 left at 100/s
    for _ in range(40):  # then 50 a second for 40 s: the window (30 s) now holds only the slower pace
        t, done = t + 1.0, done + 50
        e.tick(t, done)
    assert done == 12_000
    assert e.eta_s(20_000) == pytest.approx(160.0)  # 8,000 left at 50/s
    assert len(e._ticks) == 31  # the base 30 s back and the ticks after it: bounded by the window


def test_a_stall_with_no_progress_shows_no_rate_and_done_is_zero_left():
    e = Eta()
    for t in (0.0, 5.0, 10.0, 15.0):
        e.tick(t, 7)  # reused work at the start, then nothing advances
    assert e.eta_s(100) is None
    e.tick(20.0, 17)
    e.tick(21.0, 27)
    e.tick(22.0, 37)
    assert e.eta_s(100) == pytest.approx(63 * 2 / 20)  # (37 - 17) over 2 s: the reused 7 are not a rate
    assert e.eta_s(37) == 0.0


def test_eta_text():
    assert eta_text(None) == ""
    assert eta_text(6.9) == "ETA 7 s"
    assert eta_text(600.0) == "ETA 10.0 min"


def test_line_progress_after_a_compile():
    """The in-pod lines of a 12,000-request run whose first 60 requests took the compile's 83 s."""
    p, now, lines = clocked_progress()
    p("lru", 0, TOTAL)  # the start line
    p("lru", 0, TOTAL)  # the pod's first call, before its first compiled step
    for done in range(EVERY, TOTAL, EVERY):
        now[0] = 83.0 + (done - EVERY) * 0.001
        p("lru", done, TOTAL)
    assert lines == [
        "progress: lru: started, 12,000 requests",
        "progress: lru: 60/12,000 requests (0%), 83 s elapsed",  # ETA unknown: the old one said 275 min
        "progress: lru: 5,100/12,000 requests (42%), 88 s elapsed, ETA 7 s",  # 6,900 left at 1,000/s
        "progress: lru: 10,140/12,000 requests (84%), 93 s elapsed, ETA 2 s",  # 1,860 left at 1,000/s
    ]


def test_sweep_eta_skips_the_first_point_and_reused_ones():
    from experiments.engine import SweepProgress

    st = SweepProgress(total=10, done=2, reused=2, started=0.0)  # 2 points reused from a previous run
    assert st.eta_s() is None
    for t in (60.0, 62.0, 64.0):  # the first point took the workers' start and compile; then 2 s a point
        st.done += 1
        st.tick(t)
    # (5 - 3) points over 64 - 60 s; 5 left -> 10 s (the old pace since the start said 64 / 3 * 5 = 107 s)
    assert st.eta_s() == pytest.approx(10.0)
