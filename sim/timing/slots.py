"""A k-slot FIFO server for SimPy processes, without simpy.Resource's request objects.

``simpy.Resource`` builds a request object, a context manager and a put/get
queue pass for every use; the single-node replay takes a prefill slot and a
decode-batch slot per request, so that machinery was a tenth of its run
time. This keeps the same FIFO semantics: ``acquire()`` returns None when a
slot is free (the caller goes on at once) or an event that fires when a
releasing job hands its slot over, in arrival order.
"""
from __future__ import annotations

from collections import deque

import simpy


class SlotServer:
    def __init__(self, env: simpy.Environment, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.env = env
        self.capacity = capacity
        self.in_use = 0
        self._waiting: deque[simpy.Event] = deque()

    def acquire(self) -> simpy.Event | None:
        if self.in_use < self.capacity:
            self.in_use += 1
            return None
        ev = self.env.event()
        self._waiting.append(ev)
        return ev

    def release(self) -> None:
        if self._waiting:
            self._waiting.popleft().succeed()  # the slot passes straight to the next job
        else:
            self.in_use -= 1

    @property
    def queued(self) -> int:
        return len(self._waiting)
