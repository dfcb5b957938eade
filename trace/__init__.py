"""Traces: the columnar Workload, the formats (trace.formats), the synthetic generator, stats.

Note: this package shadows the standard library's `trace` module; run
everything from the repository root.
"""
import sim.jit_cache  # noqa: F401  (before numba is imported: trace.prefix compiles; sim.jit_cache)
from trace.workload import LoadStats, Workload

__all__ = ["Workload", "LoadStats"]
