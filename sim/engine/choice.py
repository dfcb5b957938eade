"""``cache.engine``: which implementation of the cache runs a policy.

"python" runs the reference classes (``sim.cache``), "compiled" the numba
engine and fails for a policy without a kernel, "auto" (the default) the
compiled engine whenever the policy has a kernel. Every mode resolves the
choice here, so the values and the error messages are the same everywhere.
"""
from __future__ import annotations

from sim.errors import InputError

ENGINES = ("auto", "compiled", "python")


def resolve_engine(requested: str, policy: str, has_kernel: bool, *, kernel: str = "compiled kernel",
                   compiled: str = "") -> bool:
    """Run `policy` on the compiled engine? `kernel` names what a compiled policy has and
    `compiled` lists those policies, both for the error message."""
    if requested not in ENGINES:
        raise InputError(f"unknown cache engine {requested!r} (known: {', '.join(ENGINES)})", where="cache.engine")
    if requested == "python":
        return False
    if has_kernel:
        return True
    if requested == "compiled":
        raise InputError(f"policy {policy!r} has no {kernel} (compiled: {compiled}); use cache.engine=auto or python",
                         where="cache.engine")
    return False
