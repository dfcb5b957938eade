"""The one router registry: each router registered once, with the scopes it serves.

``ROUTERS`` maps a name to its class (sim.routing.base.Router); the class's
``scopes`` say where it may be used: ``node`` (single-node workers),
``cluster`` (cluster GPUs), ``prefill`` and ``decode`` (PD replicas). The
built-in routers register themselves when ``sim.routing`` is imported
(blind.py, cache_aware.py, pd.py).
"""
from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, TypeVar

from sim.errors import InputError
from sim.registry import Registry
from sim.routing.base import SCOPES, Router, RouteView

ROUTERS: Registry[Router[Any]] = Registry("router")

# The config key naming each scope's router (where an error points) and the word used in messages.
CONFIG_KEYS = {"node": "cluster.router", "cluster": "cluster.router", "prefill": "pd.router",
               "decode": "pd.decode_router"}
_LABELS = {"node": "router", "cluster": "router", "prefill": "prefill router", "decode": "decode router"}


R = TypeVar("R", bound="type[Router[Any]]")


def register(cls: R) -> R:
    """Class decorator: add a router under its ``name`` (a name is defined once)."""
    bad = set(cls.scopes) - set(SCOPES)
    if bad or not cls.scopes:
        raise ValueError(f"router {cls.name!r}: scopes must be a non-empty subset of {SCOPES}, not {cls.scopes}")
    old = ROUTERS.get(cls.name)
    if old is not None and old is not cls:
        raise ValueError(f"router {cls.name!r} is already defined by {old.__module__}.{old.__qualname__}")
    ROUTERS.register(cls)
    return cls


class ScopeView(MutableMapping[str, "type[Router[Any]]"]):
    """The routers serving one scope, read live from ``ROUTERS``; writes go to ``ROUTERS``."""

    def __init__(self, scope: str) -> None:
        if scope not in SCOPES:
            raise ValueError(f"unknown routing scope {scope!r} (known: {', '.join(SCOPES)})")
        self.scope = scope

    def __getitem__(self, name: str) -> type[Router[Any]]:
        cls = ROUTERS[name]
        if self.scope not in cls.scopes:
            raise KeyError(name)
        return cls

    def __setitem__(self, name: str, cls: type[Router[Any]]) -> None:
        ROUTERS[name] = cls

    def __delitem__(self, name: str) -> None:
        del ROUTERS[name]

    def __iter__(self) -> Iterator[str]:
        return (n for n, cls in list(ROUTERS.items()) if self.scope in cls.scopes)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def scope(name: str) -> ScopeView:
    """The routers serving scope `name` (a live mapping)."""
    return ScopeView(name)


def names(scope_name: str) -> list[str]:
    """The router names serving a scope, sorted."""
    return sorted(ScopeView(scope_name))


def router_class(name: str, scope_name: str, where: str | None = None) -> type[Router[Any]]:
    """The class of router `name` in a scope; an InputError at `where` (default: the scope's config key) if none."""
    try:
        return ScopeView(scope_name)[name]
    except KeyError:
        raise InputError(f"unknown {_LABELS[scope_name]} {name!r} (known: {', '.join(names(scope_name))})",
                         where=where or CONFIG_KEYS[scope_name]) from None


def make(name: str, scope_name: str, view: RouteView, *, where: str | None = None, **params: Any) -> Router[Any]:
    """Router `name` for a scope, reading `view`; unknown or mis-scoped names are an InputError."""
    return router_class(name, scope_name, where)(view, **params)
