"""``run_to_end(env)``: ``env.run()`` (no ``until``) as one tight loop.

SimPy's ``run`` calls ``Environment.step`` once per event, inside a ``try``;
a timed single-node replay processes about twenty events per request, so the
per-event call is a visible share of its time. This loop does what ``step``
does - pop the next (time, priority, id) entry, run its callbacks, crash on a
failed event nobody defused - in the same order, until the queue is empty.
Without ``until`` nothing raises ``StopSimulation``, the only case ``step``
handles beyond that.
"""
from __future__ import annotations

from heapq import heappop

import simpy


def run_to_end(env: simpy.Environment) -> None:
    """Process every scheduled event, as ``env.run()`` does."""
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


__all__ = ["run_to_end"]
