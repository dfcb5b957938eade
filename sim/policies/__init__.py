"""Eviction/admission policies, found by name in ``REGISTRY``.

Importing this package imports every policy module below, so each registers
itself. ``make_policy(name, capacity, ctx, **params)`` builds one by name.
(The ``learned`` policy lives in the ``learned`` package; it is imported at
the end of this file so that it registers too.)
"""
from sim.policies.base import NEVER, REGISTRY, AccessContext, Policy, make_policy, register
from sim.policies import arc, belady, fifo, lfu, lru, s3fifo, selective_write, session_prefetch  # noqa: F401

__all__ = ["NEVER", "REGISTRY", "AccessContext", "Policy", "make_policy", "register"]

try:  # the LightGBM policy (learned/) registers itself as "learned"
    from learned import policy as _learned_policy  # noqa: F401,E402
except ModuleNotFoundError as e:  # only a missing learned package is tolerated, not a broken one
    if e.name not in ("learned", "learned.policy"):
        raise
