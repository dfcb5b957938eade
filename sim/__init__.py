"""kvsim simulation library: config, hardware, caches, simulators, reports."""
from sim import jit_cache as _jit_cache  # noqa: F401  (must run before numba is imported)
