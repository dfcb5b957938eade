"""Eviction/admission policies, found by name in ``REGISTRY``.

Importing this package imports every policy module below, so each registers
itself. ``make_policy(name, capacity, ctx, **params)`` builds one by name.
(The ``learned`` policy lives in the ``learned`` package and registers when
that package is imported.)
"""
from sim.policies.base import NEVER, REGISTRY, AccessContext, Policy, make_policy, register
from sim.policies import arc, belady, fifo, lfu, lru, s3fifo, selective_write, session_prefetch  # noqa: F401

__all__ = ["NEVER", "REGISTRY", "AccessContext", "Policy", "make_policy", "register"]
