"""Safe file input/output for user-given paths: checked up front, bounded reads, atomic outputs.

A command's result files are staged under temporary names beside their
targets and moved into place only when every one of them was written, so a
failure (a bad --report-csv path, a full disk, a plot error) never leaves a
report that looks complete. A single file is written under a temporary name
in its own folder and renamed into place (``atomic_write``): a reader sees
the old file, the new one, or none, never half of one. Every failure is an
InputError naming the flag.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from sim.errors import InputError

# Virtual filesystems: a result written there is lost or does something else entirely.
_VIRTUAL_ROOTS = ("/proc", "/sys")


def _plain_path(path: str | Path, where: str) -> tuple[str, Path]:
    """The path's text and Path; InputError for a NUL byte, an empty path or one on /proc or /sys."""
    text = os.fspath(path)
    if "\0" in text:
        raise InputError("path contains a NUL byte", where=where)
    if not text.strip():
        raise InputError("empty path", where=where)
    p = Path(text)
    resolved = str(p.resolve())
    if any(resolved == r or resolved.startswith(r + "/") for r in _VIRTUAL_ROOTS):
        raise InputError(f"{text[:200]!r} is on a virtual filesystem ({resolved.split('/')[1]}); give a real path",
                         where=where)
    return text, p


def check_output_path(path: str | Path, where: str) -> Path:
    """The path as a Path, or InputError: NUL byte, a directory, a device/FIFO, under /proc or /sys."""
    text, p = _plain_path(path, where)
    try:
        st = p.stat()
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise InputError(f"cannot use {text!r}: {e.strerror}", where=where) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise InputError(f"{text!r} is a directory; give a file name", where=where)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InputError(f"{text!r} is not a regular file (device, FIFO or socket)", where=where)
    parent = p.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{str(parent)!r} is not a directory", where=where)
    return p


def check_input_file(path: str | Path, where: str, max_bytes: int) -> Path:
    """A regular, readable file of at most max_bytes, or InputError (directories, devices, huge files)."""
    text = os.fspath(path)
    if "\0" in text:
        raise InputError("path contains a NUL byte", where=where)
    p = Path(text)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError("file not found", where=text) from None
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror}", where=text) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"is a directory, not a file ({where})", where=text)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"not a regular file (device, FIFO or socket) ({where})", where=text)
    if st.st_size > max_bytes:
        raise InputError(f"file is {st.st_size:,} bytes; the limit is {max_bytes:,} ({where})", where=text)
    return p


def read_text_file(path: str | Path, where: str, max_bytes: int) -> str:
    """The UTF-8 text of a checked input file; binary content is one InputError, not a traceback."""
    p = check_input_file(path, where, max_bytes)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", where=str(p)) from None
    if b"\0" in data:
        raise InputError(f"binary file, expected text ({where})", where=str(p))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start}) ({where})", where=str(p)) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class OutputSet:
    """Result files of one command, staged beside their targets and moved into place together.

    ``stage(final, where)`` checks the target and returns a temporary path in
    the same folder (same suffix, so matplotlib picks the format). ``commit()``
    renames all of them; ``discard()`` (also on an exception inside ``with``)
    removes every temporary and anything already moved by a failed commit.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path, str]] = []
        self._made_dirs: list[Path] = []  # folders this set created; removed again if it fails

    def stage(self, final: str | Path, where: str) -> Path:
        p = check_output_path(final, where)
        try:
            missing = [d for d in (p.parent, *p.parent.parents) if not d.exists()]
            p.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.extend(missing)  # deepest first, so removal can go in this order
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=f".tmp{p.suffix}")
        except OSError as e:
            raise InputError(f"cannot write in {str(p.parent)!r}: {e.strerror}", where=where) from None
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result file gets the usual permissions
        self._staged.append((Path(tmp), p, where))
        return Path(tmp)

    def write(self, final: str | Path, where: str, writer: Callable[[Path], object]) -> Path:
        """Stage `final` and let `writer` fill the temporary; a write error is an InputError naming `where`."""
        tmp = self.stage(final, where)
        try:
            writer(tmp)
        except OSError as e:
            raise InputError(f"cannot write {os.fspath(final)!r}: {e.strerror or e}", where=where) from None
        return Path(final)

    def commit(self) -> None:
        moved: list[Path] = []
        for tmp, final, where in self._staged:
            try:
                if not tmp.exists() or tmp.stat().st_size == 0:
                    raise InputError("nothing was written", where=where)
                os.replace(tmp, final)
            except OSError as e:
                for m in moved:
                    m.unlink(missing_ok=True)
                self.discard()
                raise InputError(f"cannot write {str(final)!r}: {e.strerror}", where=where) from None
            except InputError:
                for m in moved:
                    m.unlink(missing_ok=True)
                self.discard()
                raise
            moved.append(final)
        self._staged.clear()
        self._made_dirs.clear()

    def discard(self) -> None:
        for tmp, _, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged.clear()
        for d in self._made_dirs:
            with contextlib.suppress(OSError):  # not empty (someone else wrote there): keep it
                d.rmdir()
        self._made_dirs.clear()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()


# ---------------------------------------------------------------- single files and output folders

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


def check_output_dir(path: str | Path, where: str) -> Path:
    """`path` as a future output folder, checked before any work but not created.

    The folder is made when the results are committed (OutputSet), so a run
    that fails leaves no empty folder behind.
    """
    text, p = _plain_path(path, where)
    if p.exists() and not p.is_dir():
        raise InputError(f"{text[:200]!r} exists and is not a directory", where=where)
    anchor = p.resolve()
    while not anchor.exists():
        anchor = anchor.parent
    if not anchor.is_dir():
        raise InputError(f"{str(anchor)[:200]!r} is not a directory", where=where)
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise InputError(f"cannot write in {str(anchor)[:200]!r} (permission denied)", where=where)
    return p


def write_text_set(files: dict[str, tuple[str, Path]], where: str) -> dict[str, Path]:
    """Write every {key: (text, path)} as one set: all files appear, or none (OutputSet)."""
    def writer(text: str) -> Callable[[Path], object]:
        return lambda tmp: tmp.write_text(text, encoding="utf-8")

    with OutputSet() as outs:
        for text, path in files.values():
            outs.write(path, where, writer(text))
        outs.commit()
    return {k: Path(path) for k, (_, path) in files.items()}


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` via a temporary file in the same folder and a rename."""
    p = Path(path)
    return atomic_write(p, lambda tmp: tmp.write_text(text, encoding=encoding))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name in `path`'s folder, renamed onto `path` when the block ends without error.

    The temporary name keeps the suffix (``.name.XXXX.tmp.png``) so writers that pick the format
    from it (matplotlib) write the same bytes; it is created with mode 0o666 (not mkstemp's 0o600),
    so the result gets the umask's usual permissions. A crash or kill -9 leaves the previous file or
    the new one, never half of one; on an error the temporary is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary path in `path`'s folder, then rename it to `path` (atomic_path)."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def output_file(path: str | Path, where: str) -> Path:
    """`path` as a file to (over)write, checked before any work (check_output_path), its folder created."""
    p = check_output_path(path, where)
    output_dir(p.parent, where)
    return p


# ---------------------------------------------------------------- per-run folders

def new_run_dir(parent: str | Path, prefix: str, stamp: str, where: str) -> Path:
    """Create and return `parent/<prefix>-<stamp>`, or `...-2`, `-3`... if that exists (two runs in the same
    second never share a folder: mkdir is the reservation)."""
    base = Path(parent)
    output_dir(base, where)
    for n in range(1, 10_000):
        p = base / (f"{prefix}-{stamp}" if n == 1 else f"{prefix}-{stamp}-{n}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
        except OSError as e:
            raise InputError(f"cannot create {str(p)!r}: {e.strerror}", where=where) from None
    raise InputError(f"no free folder name for {prefix}-{stamp} in {str(base)!r}", where=where)


def point_latest(run_dir: str | Path) -> Path:
    """Make `<parent>/latest` point at `run_dir`: a relative symlink, replaced atomically; where symlinks
    cannot be made (some filesystems, Windows without privileges) a small text file holding the folder name.
    Never fails the run: a `latest` that cannot be written is skipped (returns the path anyway)."""
    d = Path(run_dir)
    latest = d.parent / "latest"
    tmp = d.parent / f".latest.{secrets.token_hex(4)}.tmp"
    try:
        os.symlink(d.name, tmp, target_is_directory=True)
        os.replace(tmp, latest)
        return latest
    except (OSError, NotImplementedError):
        with contextlib.suppress(OSError):
            tmp.unlink()
    with contextlib.suppress(OSError):
        atomic_write_text(latest, d.name + "\n")
    return latest
