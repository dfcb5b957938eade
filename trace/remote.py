"""Traces by URL: `--trace https://...` is downloaded once into a cache folder and read from there.

Cache folder: ``$KVSIM_CACHE/traces`` when KVSIM_CACHE is set, else ``~/.cache/kvsim/traces``. A URL's
file is ``<sha256(url without #fragment)[:16]>-<its file name>`` (the name keeps the suffix format detection looks at)
with ``.meta.json`` beside it: url, bytes, sha256, ETag/Last-Modified, when. A cached file is used only
when its meta exists and its sha256 still matches; otherwise it is fetched again.

Downloading goes to ``<file>.part``: an interrupted download (dropped connection, timeout, Ctrl-C)
keeps the part and the next attempt asks the server for the rest (HTTP Range); a server that ignores
Range sends the whole file again. Only a complete file (its Content-Length reached) is hashed, given its
meta and renamed into place, so a partial download never looks complete. ``#sha256=<hex>`` at the end of
the URL is checked. Failures (HTTP errors, refused connections, unknown hosts, timeouts, the size limit)
are one InputError naming the URL. A ``.lock`` file (flock) makes parallel runs wait for one download.
Standard library only (urllib).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from sim.errors import InputError
from sim.io_safe import atomic_write_text

TIMEOUT_S = 30.0              # per connect / read
MAX_BYTES = 64 << 30          # a trace larger than 64 GiB is refused
ATTEMPTS = 3                  # connections per download (a dropped one resumes where it stopped)
PROGRESS_MIN_BYTES = 16 << 20  # downloads at least this large print progress lines
PROGRESS_INTERVAL_S = 5.0
CHUNK = 1 << 20


def is_url(path: object) -> bool:
    return isinstance(path, str) and path[:8].lower().startswith(("http://", "https://"))


def cache_dir() -> Path:
    root = os.environ.get("KVSIM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "kvsim") / "traces"


def cached_name(url: str) -> str:
    """The cache file name of `url`: a hash of the whole URL, then its file name (suffix kept)."""
    parts = urllib.parse.urlsplit(url)
    name = Path(urllib.parse.unquote(parts.path)).name or "trace"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-100:]
    return f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fetch(url: str, *, cache: Path | None = None, timeout_s: float = TIMEOUT_S, max_bytes: int = MAX_BYTES,
          attempts: int = ATTEMPTS, progress: Callable[[str], None] | None = _stderr) -> Path:
    """The local copy of `url` (downloaded now, resumed, or reused from the cache)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InputError("not an http(s) URL with a host", where=url)
    want = _fragment_sha256(url, parts.fragment)
    folder = cache or cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the trace cache folder {str(folder)!r}: {e.strerror or e} "
                         "(set KVSIM_CACHE)", where=url) from None
    plain = urllib.parse.urlunsplit(parts._replace(fragment=""))
    final = folder / cached_name(plain)
    meta = final.with_name(final.name + ".meta.json")
    if _cached_ok(final, meta, want):
        return final
    with _locked(final.with_name(final.name + ".lock"), url):  # parallel runs (a sweep) download it once
        if _cached_ok(final, meta, want):
            return final
        return _fetch_into(plain, url, final, meta, want, timeout_s, max_bytes, attempts, progress)


@contextlib.contextmanager
def _locked(path: Path, url: str) -> Iterator[None]:
    """An exclusive lock on `path` (POSIX flock; no locking where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        fh = open(path, "a")
    except OSError as e:
        raise InputError(f"cannot write in the trace cache: {e.strerror or e} (set KVSIM_CACHE)", where=url) from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _fetch_into(plain: str, url: str, final: Path, meta: Path, want: str, timeout_s: float, max_bytes: int,
                attempts: int, progress: Callable[[str], None] | None) -> Path:
    final.unlink(missing_ok=True)
    part = final.with_name(final.name + ".part")
    headers = _download(plain, part, url, timeout_s, max_bytes, attempts, progress)
    digest = _sha256(part)
    if want and digest != want:
        part.unlink(missing_ok=True)
        raise InputError(f"sha256 mismatch: got {digest}, the URL says {want}", where=url)
    info = {"url": url, "bytes": part.stat().st_size, "sha256": digest, "etag": headers.get("ETag"),
            "last_modified": headers.get("Last-Modified"),
            "downloaded_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    atomic_write_text(meta, json.dumps(info, indent=1) + "\n")
    os.replace(part, final)
    return final


def _fragment_sha256(url: str, fragment: str) -> str:
    if not fragment.startswith("sha256="):
        return ""
    want = fragment.removeprefix("sha256=").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", want):
        raise InputError("#sha256= must be followed by 64 hex digits", where=url)
    return want


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _cached_ok(final: Path, meta: Path, want: str) -> bool:
    """A complete cached copy: the file, its meta, and a sha256 that still matches both."""
    if not final.is_file() or not meta.is_file():
        return False
    try:
        info = json.loads(meta.read_text())
        digest = _sha256(final)
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("sha256") == digest and (not want or digest == want)


def _download(url: str, part: Path, shown: str, timeout_s: float, max_bytes: int, attempts: int,
              progress: Callable[[str], None] | None) -> dict[str, str]:
    """Fill `part` with the whole body of `url`, resuming what is there; returns the last response's headers."""
    import urllib.error  # here, not at the top: every trace load imports this module for is_url
    import urllib.request
    from http.client import HTTPException, IncompleteRead

    last_error = ""
    for _ in range(max(1, attempts)):
        have = part.stat().st_size if part.exists() else 0
        hdrs = {"User-Agent": "kvsim", **({"Range": f"bytes={have}-"} if have else {})}
        req = urllib.request.Request(url, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                headers = {k: v for k, v in resp.headers.items()}
                if resp.status == 206:
                    m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
                    if not m or int(m.group(1)) != have:
                        raise InputError(f"the server resumed at the wrong offset "
                                         f"({resp.headers.get('Content-Range')!r}, have {have} bytes)", where=shown)
                else:
                    have = 0  # a full response: Range ignored (or nothing to resume)
                length = resp.headers.get("Content-Length")
                total = have + int(length) if length and length.isdigit() else None
                if total is not None and total > max_bytes:
                    raise InputError(f"the file has {total:,} bytes, more than the limit of {max_bytes:,} bytes",
                                     where=shown)
                if _copy(resp, part, have, total, shown, max_bytes, progress):
                    return headers
                last_error = "the connection closed before the end of the file"
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # the part is not a prefix of what the server has now: start over
                part.unlink(missing_ok=True)
                last_error = "HTTP 416 (range not satisfiable)"
                continue
            raise InputError(f"download failed: HTTP {e.code} {e.reason}", where=shown) from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                last_error = f"timed out after {timeout_s:g} s"
                continue
            raise InputError(f"download failed: {getattr(reason, 'strerror', None) or reason}", where=shown) from None
        except TimeoutError:
            last_error = f"timed out after {timeout_s:g} s"
        except (IncompleteRead, ConnectionError, HTTPException, OSError) as e:
            last_error = f"the connection broke ({type(e).__name__})"
    kept = part.stat().st_size if part.exists() else 0
    raise InputError(f"download failed after {max(1, attempts)} attempt(s): {last_error}"
                     + (f"; {kept:,} bytes kept, the next run resumes" if kept else ""), where=shown)


def _copy(resp, part: Path, have: int, total: int | None, shown: str, max_bytes: int,
          progress: Callable[[str], None] | None) -> bool:
    """Append the response body to `part` (truncated first when have == 0); True when it is complete."""
    loud = progress is not None and (total is None or total >= PROGRESS_MIN_BYTES)
    start = last = time.monotonic()
    got = have
    if loud and progress:
        size = "size unknown" if total is None else f"{total / 2**20:,.1f} MiB"
        progress(f"download: {shown} -> {part.parent} ({size}"
                 + (f", resuming at {have / 2**20:,.1f} MiB" if have else "") + ")")
    with open(part, "ab" if have else "wb") as fh:
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            fh.write(chunk)
            got += len(chunk)
            if got > max_bytes:
                fh.close()
                part.unlink(missing_ok=True)
                raise InputError(f"more than the limit of {max_bytes:,} bytes", where=shown)
            now = time.monotonic()
            if loud and progress and now - last >= PROGRESS_INTERVAL_S:
                last = now
                of = f" of {total / 2**20:,.1f}" if total else ""
                progress(f"download: {got / 2**20:,.1f}{of} MiB, {now - start:.0f} s")
    return total is None or got >= total
