"""The ETA of every progress display (run lines and bars, sweep lines and bars): work left at the recent rate.

A run's first step can hold a one-off stall: the cluster kernels' first compile took 83 s for the first
60 of 12,000 requests, and the rate since the start then gave an ETA of 275 min for a run of 86 s. So the
time from the start to the first tick that advances is never counted (it holds the compile, a pool's
start-up, a workload's load), and the rate is taken over the last `window_s` seconds of ticks (from the
newest tick at least that old), so a later change of pace shows within a window. Until two ticks follow
that first one over at least `min_span_s` with progress, the ETA is unknown (None): the callers show none.

Clock-free: callers pass the times, so a test can feed a hand-made sequence.
"""
from __future__ import annotations

from collections import deque

WINDOW_S = 30.0  # the rate's window (rich's bars used the same 30 s for theirs)
MIN_SPAN_S = 1.0  # a shorter span says little about the pace (a sweep's pool finishing two points at once)
MIN_TICKS = 2  # ticks after the base: one tick is a single step, which can be a burst


class Eta:
    """Feed `tick(t, done)` (t: seconds on any monotonic clock, done: items so far); read `eta_s(total)`."""

    def __init__(self, window_s: float = WINDOW_S, min_span_s: float = MIN_SPAN_S) -> None:
        self.window_s = window_s
        self.min_span_s = min_span_s
        self._start_done: int | None = None
        self._ticks: deque[tuple[float, int]] = deque()  # the base (oldest) and every tick after it

    def tick(self, t: float, done: int) -> None:
        if self._start_done is None:
            self._start_done = done  # the start: its time is not a rate's base
            return
        if not self._ticks and done <= self._start_done:
            return  # still inside the first step (e.g. a tick before the first compiled call returns)
        self._ticks.append((t, done))
        # the base is the newest tick at least window_s older than the latest; older ones are never read
        while len(self._ticks) > 1 and self._ticks[1][0] <= t - self.window_s:
            self._ticks.popleft()

    def eta_s(self, total: int) -> float | None:
        """Seconds left for `total - done` items at the rate over the window; None while unknown."""
        if len(self._ticks) < MIN_TICKS + 1:
            return None
        (t0, d0), (t1, d1) = self._ticks[0], self._ticks[-1]
        if t1 - t0 < self.min_span_s or d1 <= d0:
            return None
        return max(0, total - d1) * (t1 - t0) / (d1 - d0)


def secs_text(v: float) -> str:
    """`42 s` below two minutes, else `3.5 min`."""
    v = max(0.0, v)
    return f"{v:.0f} s" if v < 120 else f"{v / 60:.1f} min"


def eta_text(eta_s: float | None) -> str:
    """`ETA 42 s`, or empty while the ETA is unknown."""
    return "" if eta_s is None else f"ETA {secs_text(eta_s)}"


__all__ = ["MIN_SPAN_S", "WINDOW_S", "Eta", "eta_text", "secs_text"]
