"""A name -> class registry for plug-ins (routers, policies...).

A dict, so callers can list and test membership; ``register`` is the class
decorator (keyed by the class's ``name``) and ``make`` builds one by name with
an error that lists the known names.
"""
from __future__ import annotations

from typing import Any


class Registry(dict):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, cls: type) -> type:
        self[cls.name] = cls
        return cls

    def make(self, name: str, *args: Any, **params: Any) -> Any:
        try:
            cls = self[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r} (known: {', '.join(sorted(self))})") from None
        return cls(*args, **params)
