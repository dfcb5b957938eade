"""Eviction/admission policies, found by name in ``REGISTRY``.

Every public module of this package (all but ``base`` and ``replay``, the
interface and the reference replays) is imported here, and each registers
its policies with ``@register``: adding a policy is adding one file.
``make_policy(name, capacity, ctx, **params)`` builds one by name. The
``learned`` policy lives in the ``learned`` package; it is listed now and
imported on its first lookup.
"""
import importlib
import pkgutil
from typing import Any

from sim.policies.base import NEVER, REGISTRY, AccessContext, Policy, register

__all__ = ["NEVER", "REGISTRY", "AccessContext", "Policy", "make_policy", "register"]

_NOT_POLICIES = {"base", "replay"}

# Sorted by module name, so the registry's order does not depend on the file system.
for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_") and _mod not in _NOT_POLICIES:
        importlib.import_module(f"{__name__}.{_mod}")

REGISTRY.lazy("learned", "learned.policy")  # the LightGBM policy (learned/)


def make_policy(name: str, capacity: int, ctx: AccessContext | None = None, **params: Any) -> Policy:
    """Instantiate a registered policy by name (raises KeyError listing the known names).

    It lives in the package, not in ``base``, because only the package has imported every policy.
    """
    policy: Policy = REGISTRY.make(name, capacity, ctx, **params)
    return policy
