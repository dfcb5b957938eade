"""The one exception type for bad user input.

sim.cli turns it into a single line on stderr and exit code 2, so every
message must name where the bad input came from (file and line, or key path).
"""
from __future__ import annotations


class InputError(Exception):
    """Bad input from the user: config, flags, trace files, model files."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


def check_number(value: object, where: str, *, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, integer: bool = False) -> float:
    """`value` as a float if it is a finite number in [lo, hi] (lo excluded with lo_open), else InputError.

    The one check for numeric flags: NaN and infinity are refused by name
    rather than falling through a comparison (NaN compares false to every bound).
    """
    kind = "an integer" if integer else "a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value in (float("inf"), float("-inf")) or (integer and int(value) != value):
        raise InputError(f"must be {kind} (got {value!r})", where=where)
    v = float(value)
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise InputError(f"must be {'>' if lo_open else '>='} {lo:g} (got {value!r})", where=where)
    if hi is not None and v > hi:
        raise InputError(f"must be <= {hi:g} (got {value!r})", where=where)
    return v
