"""Trace formats: one module per format, found here by name, plus sniffing and `load_trace`.

Every public module of this package is a format (see :class:`TraceFormat`):
``NAME``, ``ORDER`` (its place in :func:`names` and in auto-detection),
``SUFFIXES`` (file name suffixes that decide the format on their own),
``sniff(head) -> bool`` and ``load(path, *, strict, limit) -> (Workload,
LoadStats)``. Adding a format is adding one module; :func:`register` adds one
from elsewhere (a test, a plug-in). Shared row machinery lives in
:mod:`trace.rowio` and :mod:`trace.collector`.

Loaders reject bad rows and count them by reason in LoadStats (``strict=True``
turns the first one into an InputError naming the file and line); a missing,
empty or unrecognizable file is an InputError. Any input may be gzipped.

The format modules are imported on first use, not with this package, because
the config schema validates ``trace.format`` against :func:`names`.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sim.errors import InputError
from trace.remote import is_url
from trace.rowio import Head, check_file

if TYPE_CHECKING:
    from trace.workload import LoadStats, Workload

__all__ = ["TraceFormat", "names", "choices", "get", "register", "unregister", "sniff_format", "load_trace"]


class TraceFormat(Protocol):
    NAME: str
    ORDER: int
    SUFFIXES: tuple[str, ...]

    def sniff(self, head: Head) -> bool: ...

    def load(self, path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]: ...


_formats: dict[str, TraceFormat] = {}
_discovered = False


def _registry() -> dict[str, TraceFormat]:
    global _discovered
    if not _discovered:
        _discovered = True
        for mod in pkgutil.iter_modules(__path__):
            if not mod.name.startswith("_"):
                register(importlib.import_module(f"{__name__}.{mod.name}"))
    return _formats


def register(fmt: TraceFormat) -> TraceFormat:
    """Add a format (a module or any object with the TraceFormat attributes); returns it."""
    missing = [a for a in ("NAME", "ORDER", "SUFFIXES", "sniff", "load") if not hasattr(fmt, a)]
    if missing:
        raise TypeError(f"trace format {fmt!r} lacks {', '.join(missing)}")
    formats = _registry()
    if fmt.NAME == "auto" or fmt.NAME in formats:
        raise ValueError(f"trace format name {fmt.NAME!r} is taken")
    formats[fmt.NAME] = fmt
    return fmt


def unregister(name: str) -> None:
    _registry().pop(name, None)


def _ordered() -> list[TraceFormat]:
    return sorted(_registry().values(), key=lambda f: (f.ORDER, f.NAME))


def names() -> tuple[str, ...]:
    """The registered format names, in detection order (what ``trace.format`` accepts besides "auto")."""
    return tuple(f.NAME for f in _ordered())


def choices() -> tuple[str, ...]:
    """The values ``trace.format`` and ``--trace-format`` accept: "auto", then :func:`names`."""
    return ("auto", *names())


def get(name: str) -> TraceFormat | None:
    return _registry().get(name)


def _printable(value: object, n: int = 120) -> str:
    """Input for an error line: ASCII only (binary bytes and control characters escaped), at most n characters."""
    text = ascii(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def sniff_format(path: str | Path) -> str:
    """The format name of a trace file: a suffix a format claims decides, else the
    first format (in :func:`names` order) whose sniffer accepts the first bytes/lines.
    InputError when no format does."""
    head = Head(check_file(local_path(path)))
    ordered = _ordered()
    for fmt in ordered:
        if head.suffix in fmt.SUFFIXES:
            return fmt.NAME
    for fmt in ordered:
        if fmt.sniff(head):
            return fmt.NAME
    where = str(head.path)
    if not head.lines:
        raise InputError("empty trace file: cannot detect its format", where=where)
    known = ", ".join(f.NAME for f in ordered)
    if head.lines[0].startswith("{"):
        if head.json_row is None:
            raise InputError("cannot detect the trace format: the first lines are not valid JSON", where=where)
        raise InputError(
            f"unrecognized JSON trace: fields {_printable(sorted(head.json_row))} match no known format "
            f"(pass --trace-format: {known})",
            where=where,
        )
    raise InputError(
        f"cannot detect the trace format from the first line {_printable(head.lines[0])}; "
        f"pass --trace-format ({known})",
        where=where,
    )


def load_trace(
    path: str | Path, fmt: str = "auto", *, strict: bool = False, limit: int | None = None
) -> tuple[Workload, LoadStats]:
    """Load a trace file into a Workload plus LoadStats.

    fmt: "auto" (sniffed) or one of :func:`names`. strict: the first rejected
    row raises InputError("line N: reason: detail", where=path). limit: keep
    the first N loaded requests and stop reading.
    """
    p = check_file(local_path(path))
    if fmt is None or fmt == "auto":
        fmt = sniff_format(p)
    loader = get(fmt)
    if loader is None:
        raise InputError(f"unknown trace format {fmt!r} (known: {', '.join(choices())})", where=str(p))
    w, st = loader.load(p, strict=strict, limit=limit)
    if w.extra:
        _measured_notes(w, st)
    return w, st


def local_path(path: str | Path) -> str | Path:
    """`path` itself, or for an http(s) URL the cached download (trace.remote): the one place traces are opened."""
    if is_url(path):
        from trace.remote import fetch

        return fetch(str(path))
    return path


def _measured_notes(w: Workload, st: LoadStats) -> None:
    cols = ", ".join(w.extra)
    st.notes.append(f"measured latencies kept per request ({cols}): compare with run --compare-measured")
    if w.synthetic_blocks:
        st.notes.append("block ids are synthetic (made from token counts when converted): prefix hit rates are 0 "
                        "unless the source had a prefix structure the conversion could see")
