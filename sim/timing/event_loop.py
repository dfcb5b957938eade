"""SimPy, lean: ``run_to_end(env)`` is ``env.run()`` (no ``until``) as one tight loop;
``first_of(env, events)`` is ``env.any_of(events)`` for callers that do not read its value.

SimPy's ``run`` calls ``Environment.step`` once per event, inside a ``try``;
a timed single-node replay processes about twenty events per request, so the
per-event call is a visible share of its time. This loop does what ``step``
does - pop the next (time, priority, id) entry, run its callbacks, crash on a
failed event nobody defused - in the same order, until the queue is empty.
Without ``until`` nothing raises ``StopSimulation``, the only case ``step``
handles beyond that.

While it runs, Python's cycle collector is tuned for a long replay: what was built before (workload,
caches, result arrays) is frozen out of its view (``gc.freeze``) and young collections run every
``GC_GEN0`` allocations instead of 700. The collector took 8-12 % of a timed cluster replay (perf);
this gives ~10 % there. It frees the same objects, only cycles wait a little longer: results cannot
change. Garbage earlier runs left is collected before the freeze (else frozen for good), once every
``COLLECT_AFTER_S`` seconds of runs.
"""
from __future__ import annotations

import gc
from heapq import heappop, heappush
from time import perf_counter

import simpy


class FirstOf(simpy.Event):
    """Succeeds (scheduled now) when the first of the events it is a callback of is processed."""

    def fire(self, _event: simpy.Event) -> None:
        # ``if not self.triggered: self.succeed()`` without the property and the two calls of succeed
        # and schedule: the same fields, the same (time, priority, id) entry (a decode stretch ends here)
        if self._value is _PENDING:
            self._ok = True
            self._value = None
            env = self.env
            heappush(env._queue, (env._now, _NORMAL, next(env._eid), self))

    def fire_last(self, event: simpy.Event) -> None:
        """``fire`` for an event it is the last callback of: ``succeed_last`` (no queue entry when
        nothing else is due at this instant)."""
        if self._value is _PENDING:
            succeed_last(self)


def first_of(env: simpy.Environment, events: list[simpy.Event], last: bool = False) -> simpy.Event:
    """``env.any_of(events)`` without a Condition's bookkeeping, for pending events whose values
    nobody reads: the same events are scheduled in the same order (it fires one hop after the
    first of them is processed), its value is None. ``last``: the caller adds no callback to
    `events` after this one, so it fires through ``fire_last`` (the same order, a hop less)."""
    first = FirstOf(env)
    fire = first.fire_last if last else first.fire
    for ev in events:
        ev.callbacks.append(fire)
    return first


def succeed(ev: simpy.Event) -> None:
    """``ev.succeed()`` (value None) without its two Python calls (succeed, then schedule): the same
    fields, the same (time, priority, id) queue entry. Raises as succeed does on a triggered event."""
    if ev._value is not _PENDING:
        raise RuntimeError(f"{ev} has already been triggered")
    ev._ok = True
    ev._value = None
    env = ev.env
    heappush(env._queue, (env._now, _NORMAL, next(env._eid), ev))


def succeed_last(ev: simpy.Event) -> None:
    """``succeed(ev)`` from the last callback of the event being processed: when no other entry is due
    at this instant, process `ev` at once (run its callbacks here) instead of through a queue entry.

    Exact: its entry would have been (now, NORMAL, a new id), after every entry already due now and
    before any pushed later, so with none due the loop would pop it next - nothing runs in between
    (the caller is the last callback). A hop less per chained event (a decode stretch's end, a
    transfer's completion)."""
    env = ev.env
    queue = env._queue
    if queue and queue[0][0] <= env._now:
        succeed(ev)
        return
    if ev._value is not _PENDING:
        raise RuntimeError(f"{ev} has already been triggered")
    ev._ok = True
    ev._value = None
    callbacks, ev.callbacks = ev.callbacks, None  # type: ignore[assignment]  # as the loop does
    for callback in callbacks:
        callback(ev)


def hop_last(env: simpy.Environment, callbacks: tuple) -> None:
    """From the last callback of the event being processed, run `callbacks` one hop later, as an
    event succeeded now would (a Condition that just fired): at once when nothing else is due at
    this instant (``succeed_last``'s argument), else through a (now, NORMAL, new id) queue entry."""
    queue = env._queue
    if queue and queue[0][0] <= env._now:
        ev = _new(Wake)
        ev.callbacks = callbacks
        ev._ok = True
        heappush(queue, (env._now, _NORMAL, next(env._eid), ev))  # type: ignore[misc]
        return
    for callback in callbacks:
        callback(None)


def timer(env: simpy.Environment, delay: float) -> simpy.Timeout:
    """``env.timeout(delay)`` for a delay the caller knows is >= 0: the same Timeout, scheduled at the
    same (time, priority, id), without the two Python calls of its constructor and ``schedule``
    (the fluid links make several per request)."""
    ev = _new(_Timeout)
    ev.env = env
    ev.callbacks = []
    ev._value = None
    ev._delay = delay
    ev._ok = True
    heappush(env._queue, (env._now + delay, _NORMAL, next(env._eid), ev))
    return ev


class Wake:
    """A queue entry's event for one fixed callback that nobody else waits on (a fluid link's wake-up,
    ``wake_after``): the two fields the event loop reads, ``callbacks`` and ``_ok``."""

    __slots__ = ("callbacks", "_ok")
    callbacks: tuple | None
    _ok: bool


def wake_after(env: simpy.Environment, delay: float, callbacks: tuple) -> Wake:
    """Schedule `callbacks` (a tuple, shared by the caller's wake-ups) `delay` >= 0 from now at the
    (time, priority, id) ``timer`` would give them, without a Timeout: the event loop
    (``run_to_end``, and ``Environment.step``) only reads an entry's ``callbacks`` and ``_ok``.
    Cancel by setting ``callbacks = ()``: the entry stays in the queue and calls nobody."""
    ev = _new(Wake)
    ev.callbacks = callbacks
    ev._ok = True
    heappush(env._queue, (env._now + delay, _NORMAL, next(env._eid), ev))  # type: ignore[misc]
    return ev


_new = object.__new__
_Timeout = simpy.Timeout
_NORMAL = simpy.events.NORMAL
_PENDING = simpy.events.PENDING


def _same_as_timeout() -> bool:
    """Does ``timer`` build exactly what this SimPy's ``env.timeout`` does? (it writes SimPy's private
    fields; simpy is not pinned to one release)"""
    try:
        a, b = simpy.Environment(), simpy.Environment()
        ta, tb = a.timeout(0.5), timer(b, 0.5)
        return vars(ta).keys() == vars(tb).keys() and all(
            getattr(ta, k) == getattr(tb, k) for k in vars(ta) if k not in ("env", "callbacks")) and \
            a._queue[0][:3] == b._queue[0][:3]
    except Exception:  # noqa: BLE001  (any mismatch of internals: use the public call)
        return False


def _same_as_succeed() -> bool:
    """Does ``FirstOf.fire`` do exactly what ``succeed`` does (the same fields, the same queue entry)?"""
    try:
        a, b = simpy.Environment(), simpy.Environment()
        ea, eb = FirstOf(a), FirstOf(b)
        simpy.Event.succeed(ea)
        eb.fire(eb)
        eb.fire(eb)  # a second fire is a no-op, as ``if not triggered`` made it
        ec = simpy.Event(b)
        succeed(ec)
        return vars(ea).keys() == vars(eb).keys() == vars(ec).keys() and all(
            getattr(ea, k) == getattr(eb, k) == getattr(ec, k) for k in vars(ea) if k not in ("env", "callbacks")) \
            and a._queue[0][:3] == b._queue[0][:3] and len(b._queue) == 2 and b._queue[1][:2] == a._queue[0][:2]
    except Exception:  # noqa: BLE001  (any mismatch of internals: use the public calls)
        return False


if not _same_as_timeout():
    def timer(env: simpy.Environment, delay: float) -> simpy.Timeout:  # noqa: F811
        return env.timeout(delay)

    def wake_after(env: simpy.Environment, delay: float, callbacks: tuple) -> Wake:  # type: ignore[misc]  # noqa: F811
        ev = env.timeout(delay)
        ev.callbacks.extend(callbacks)
        return ev  # type: ignore[return-value]

if not _same_as_succeed():
    def _fire(self: FirstOf, _event: simpy.Event) -> None:
        if not self.triggered:
            self.succeed()

    FirstOf.fire = _fire  # type: ignore[method-assign]

    def succeed(ev: simpy.Event) -> None:  # noqa: F811
        ev.succeed()

    succeed_last = succeed  # noqa: F811

if not (_same_as_timeout() and _same_as_succeed()):
    def hop_last(env: simpy.Environment, callbacks: tuple) -> None:  # noqa: F811
        env.timeout(0).callbacks.extend(callbacks)  # always the queue entry

GC_GEN0 = 50_000
COLLECT_AFTER_S = 2.0  # seconds of runs after which the next run first collects what they left
_RUN_S = [0.0]  # seconds of runs since that collection (this process)


def run_to_end(env: simpy.Environment) -> None:
    """Process every scheduled event, as ``env.run()`` does (collector tuned: module doc)."""
    old = gc.get_threshold()
    # Garbage first: freeze would hide the cycles earlier runs left (their environments, processes and
    # replicas, holding the engine's arrays) for good, since with GC_GEN0 full collections almost never
    # come. Measured: 8 timed pods in one process grew 56 MiB a pod (a 10M-request run in 32 pods was
    # killed at 18.7 GB); with this collection they stay at 250 MiB. A full collection costs ~20-100 ms,
    # so it runs once COLLECT_AFTER_S of runs have passed since the last one (many small runs - a test
    # suite, a sweep of small points - would otherwise pay it each time: the timed tests took twice as
    # long); what short runs leave meanwhile is small.
    if _RUN_S[0] >= COLLECT_AFTER_S:
        gc.collect()
        _RUN_S[0] = 0.0
    gc.freeze()
    gc.set_threshold(GC_GEN0, *old[1:])
    t0 = perf_counter()
    try:
        _drain(env)
    finally:
        _RUN_S[0] += perf_counter() - t0
        gc.set_threshold(*old)
        gc.unfreeze()


def _drain(env: simpy.Environment) -> None:
    queue = env._queue
    while queue:
        env._now, _, _, event = heappop(queue)
        callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]  # as SimPy does
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            # as Environment.step: a copy of the failure with a new traceback
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc


__all__ = ["FirstOf", "Wake", "first_of", "hop_last", "run_to_end", "succeed", "succeed_last", "timer", "wake_after"]
