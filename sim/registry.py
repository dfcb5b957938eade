"""A name -> class registry for plug-ins (routers, policies...).

A dict, so callers can list and test membership; ``register`` is the class
decorator (keyed by the class's ``name``) and ``make`` builds one by name with
an error that lists the known names. ``lazy`` lists a name whose module is
imported only when the name is first looked up (a plug-in living outside the
package, or one that is costly to import).
"""
from __future__ import annotations

import importlib
from typing import Any, ClassVar, Generic, NamedTuple, Protocol

from typing_extensions import TypeVar


class _Deferred(NamedTuple):
    module: str  # importing it registers the name


class Named(Protocol):
    """What a registered class offers: the name it is registered under."""

    name: ClassVar[str]


# The base class of the registered classes (Router, Policy); Any for a registry left unannotated.
T = TypeVar("T", bound=Named, default=Any)


class Registry(dict[str, "type[T] | _Deferred"], Generic[T]):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, cls: type[T]) -> type[T]:
        self[cls.name] = cls
        return cls

    def lazy(self, name: str, module: str) -> None:
        """List `name` now; import `module` (which registers it) on the first lookup."""
        self.setdefault(name, _Deferred(module))

    def __getitem__(self, name: str) -> type[T]:
        cls = super().__getitem__(name)
        if isinstance(cls, _Deferred):
            importlib.import_module(cls.module)
            cls = super().__getitem__(name)
            if isinstance(cls, _Deferred):
                raise RuntimeError(f"{cls.module} did not register the {self.kind} {name!r}")
        return cls

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    # Lists of the resolved classes, not dict views (which would show the deferred entries).
    def values(self) -> list[type[T]]:  # type: ignore[override]
        return [self[k] for k in self]

    def items(self) -> list[tuple[str, type[T]]]:  # type: ignore[override]
        return [(k, self[k]) for k in self]

    def make(self, name: str, *args: Any, **params: Any) -> T:
        try:
            cls = self[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r} (known: {', '.join(sorted(self))})") from None
        return cls(*args, **params)
