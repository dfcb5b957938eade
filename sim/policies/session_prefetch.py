"""LRU eviction; the class flag tells the simulator to prefetch sessions.

With ``prefetch = True`` the simulator warms a session's context into the
tier ahead of the session's next turn (``cache.prefetch_lookahead`` turns).
Eviction itself is exactly LRU.
"""
from __future__ import annotations

from sim.policies.base import register
from sim.policies.lru import LRU


@register
class SessionPrefetch(LRU):
    name = "session_prefetch"
    prefetch = True
