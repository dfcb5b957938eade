"""Processor sharing without per-byte or per-token events.

Jobs share a server whose per-job service rate depends on the set of active
jobs (a link's bandwidth split n ways; a decode batch whose iteration time
grows with its size). All active jobs advance equally, so one *virtual clock*
V (service per job so far) describes them all: a job of size s that starts at
V0 finishes when V reaches V0 + s. Between arrivals and departures the rate
is constant, so the only events are one per arrival and one per departure -
the classic virtual-time trick of fair-queueing schedulers.
"""
from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable

import simpy

from sim.timing.event_loop import Wake, succeed, wake_after


class FluidShare:
    """A processor-sharing server on a SimPy environment.

    ``rate_fn(n_active, load)`` returns the service rate *per job* (units of
    size per second) when `n_active` jobs with summed `load` are active.
    ``serve(size, load)`` returns an event that fires when the job is done.
    """

    def __init__(self, env: simpy.Environment, rate_fn: Callable[[int, float], float], *,
                 pausable: bool = False) -> None:
        self.env = env
        # A pausable server may get rate 0 (an idle-priority class while others use its link):
        # its jobs then wait, without a wake-up, until a retime gives it a positive rate.
        self.pausable = pausable
        self.rate_fn = rate_fn
        self._v = 0.0  # virtual clock: service per job delivered so far
        self._t = env.now  # real time of the last virtual-clock update
        self._heap: list[tuple[float, int, simpy.Event | None, float]] = []  # (finish V, seq, event, load)
        self._load = 0.0
        self._seq = itertools.count()
        self._timer: Wake | None = None  # the live wake-up timer (older ones are stale)
        self._wake_cbs = (self._wake,)  # every wake-up's callbacks (event_loop.wake_after)
        self._r = 0.0  # rate_fn at the current active set (cached: it changes only with the set)
        self.busy_time = 0.0  # seconds with at least one active job
        self.served = 0.0  # total size served
        # Called after every change of the active set (a server whose rate depends on another
        # server's set, e.g. the two classes of sim.timing.priority_link, re-times itself here).
        self.on_change: Callable[[], None] | None = None

    @property
    def active(self) -> int:
        return len(self._heap)

    def _set_changed(self) -> None:
        """The active set changed: recompute the per-job rate."""
        self._r = self.rate_fn(len(self._heap), self._load) if self._heap else 0.0

    def retime(self) -> None:
        """rate_fn's answer changed for a reason outside this server: serve at the old rate up to
        now, then continue at the new one."""
        if not self._heap:  # idle (a link's other class, mostly): the three steps reduce to this
            self._t = self.env._now
            self._r = 0.0
            self._timer = None
            return
        heap = self._heap
        # self._advance() and self._set_changed() (the heap is not empty), inlined
        now = self.env._now
        dt = now - self._t
        r = self._r
        if dt > 0 and r > 0:
            self._v += r * dt
            self.served += r * dt * len(heap)
            self.busy_time += dt
        self._t = now
        self._r = self.rate_fn(len(heap), self._load)
        self._reschedule()

    def rate_if_joined(self, load: float = 0.0) -> float:
        """The per-job rate a job arriving now would get (its share of the server at this moment)."""
        return self.rate_fn(len(self._heap) + 1, self._load + load)

    def _advance(self) -> None:
        now = self.env._now  # env.now without the property call
        dt = now - self._t
        if dt > 0 and self._heap and self._r > 0:
            r = self._r
            self._v += r * dt
            self.served += r * dt * len(self._heap)
            self.busy_time += dt
        self._t = now

    def serve(self, size: float, load: float = 0.0) -> simpy.Event:
        done = self.env.event()
        if size <= 0:
            done.succeed()
            return done
        self._join(size, load, done)
        return done

    def serve_quiet(self, size: float, load: float = 0.0) -> None:
        """``serve`` for a job nobody waits for (a background write-back): no completion event.
        The server's timeline is the same; only an event without callbacks is not scheduled."""
        if size > 0:
            self._join(size, load, None)

    def _join(self, size: float, load: float, done: simpy.Event | None) -> None:
        heap = self._heap
        # self._advance(), inlined (a join per transfer per hop)
        now = self.env._now
        dt = now - self._t
        if dt > 0 and heap and self._r > 0:
            r = self._r
            self._v += r * dt
            self.served += r * dt * len(heap)
            self.busy_time += dt
        self._t = now
        heapq.heappush(heap, (self._v + size, next(self._seq), done, load))
        self._load += load
        self._r = self.rate_fn(len(heap), self._load)  # _set_changed (the heap is not empty)
        self._reschedule()
        if self.on_change is not None:
            self.on_change()

    def _reschedule(self) -> None:
        old = self._timer
        if old is not None:
            # superseded: it stays in the queue (no removal from a heap) but calls nobody when it comes
            # up; the event order is unchanged (the wake-up it would call returns at once)
            old.callbacks = ()
        self._timer = None
        heap = self._heap
        if not heap:
            return
        rate = self._r
        if rate <= 0:
            if self.pausable:
                return
            raise RuntimeError("FluidShare rate_fn returned a non-positive rate")
        delay = (heap[0][0] - self._v) / rate
        # max(0.0, delay), without the call; a Timeout's queue entry without the Timeout
        self._timer = wake_after(self.env, delay if delay > 0.0 else 0.0, self._wake_cbs)

    def _wake(self, timer: Wake) -> None:
        if timer is not self._timer:
            return  # a newer arrival/departure rescheduled us
        heap = self._heap
        # self._advance(), inlined
        now = self.env._now
        dt = now - self._t
        if dt > 0 and heap and self._r > 0:
            r = self._r
            self._v += r * dt
            self.served += r * dt * len(heap)
            self.busy_time += dt
        self._t = now
        # Float slack: finish every job whose virtual finish is (almost) reached. The slack also
        # covers what the server delivers in a few ulps of the clock: a smaller remainder would
        # give a wake-up delay that does not advance env.now, and the timer would refire forever.
        v = abs(self._v)
        eps = 1e-9 * (v if v > 1.0 else 1.0)  # max(1.0, |V|), without the call (a wake per job or two)
        if heap:
            tick = 4.0 * math.ulp(now) * self._r
            if tick > eps:
                eps = tick
        popped = False
        reached = self._v + eps
        while heap and heap[0][0] <= reached:
            _, _, ev, load = heapq.heappop(heap)
            self._load -= load
            if ev is not None:
                succeed(ev)
            popped = True
        if not heap:
            self._load = 0.0
            if popped:
                self._r = 0.0  # self._set_changed(), inlined
        elif popped:
            self._r = self.rate_fn(len(heap), self._load)
        self._reschedule()
        if popped and self.on_change is not None:
            self.on_change()


def link_share(env: simpy.Environment, bandwidth_bytes_s: float, contention: bool = True) -> FluidShare:
    """A link whose bandwidth is split equally among concurrent transfers.

    With ``contention=False`` every transfer gets the full bandwidth (an
    uncontended what-if), which is also what a single transfer sees.
    """
    if bandwidth_bytes_s <= 0:
        raise ValueError("bandwidth must be positive")
    if contention:
        return FluidShare(env, lambda n, _load: bandwidth_bytes_s / n)
    return FluidShare(env, lambda _n, _load: bandwidth_bytes_s)
