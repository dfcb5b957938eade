"""Writing result files so a failure never leaves one looking complete.

Each file is written under a temporary name in its own folder and renamed
into place (os.replace is atomic on POSIX), so a reader sees the old file,
the new file, or none, never half of one.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from sim.errors import InputError


def output_dir(path: str | Path, where: str) -> Path:
    """`path` as an output folder (created if missing); InputError naming `where` if it cannot be one."""
    p = Path(path)
    if "\0" in str(path):
        raise InputError("contains a NUL byte", where=where)
    if p.exists() and not p.is_dir():
        raise InputError(f"{str(p)[:200]!r} exists and is not a directory", where=where)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output folder ({e.strerror})", where=where) from None
    return p


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` via a temporary file in the same folder and a rename."""
    p = Path(path)
    return atomic_write(p, lambda tmp: tmp.write_text(text, encoding=encoding))


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary path in `path`'s folder, then rename it to `path`.

    On any failure the temporary file is removed and `path` is left as it was.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def output_file(path: str | Path, where: str) -> Path:
    """`path` as a file to (over)write, checked before any work: not a folder, its folder creatable."""
    p = Path(path)
    if "\0" in str(path):
        raise InputError("contains a NUL byte", where=where)
    if p.is_dir():
        raise InputError(f"{str(p)[:200]!r} is a directory, not a file", where=where)
    output_dir(p.parent, where)
    return p
