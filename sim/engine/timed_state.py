"""The compiled timed single-node replay's state as one reference (a numba StructRef).

sim.engine.timed_node's functions take the replay's tables - events, links, replicas, requests, rows, counters,
constants, the workload and the cache - as one argument. Passed as a tuple, every compiled function and every
call between them carried ~60 arrays by value, and compiling them took ~110 s; as a StructRef each takes one
pointer (its fields are read where used). ``make_state`` builds one (compiled and cached, as the functions
are); the driver (sim.engine.timed_run) builds a new one whenever a table grows.
"""
from __future__ import annotations

from numba import njit, types
from numba.experimental import structref

# what each field holds: sim.engine.timed_node's module doc
FIELDS = ("E", "L", "WK", "RQ", "ROWS", "X", "C", "CF", "STEP", "HIST", "W", "CACHE", "OCC")


@structref.register
class TimedStateType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class TimedState(structref.StructRefProxy):
    """The Python side of a state: only passed back to the compiled functions."""


structref.define_proxy(TimedState, TimedStateType, list(FIELDS))


@njit(cache=True)
def make_state(E, L, WK, RQ, ROWS, X, C, CF, STEP, HIST, W, CACHE, OCC):
    return TimedState(E, L, WK, RQ, ROWS, X, C, CF, STEP, HIST, W, CACHE, OCC)
