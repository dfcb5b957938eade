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
