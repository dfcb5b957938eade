"""Where numba keeps compiled code, keyed by the sources that compile.

Numba's on-disk cache notices edits to a function's own file only, not to
the kernels it calls in other files, so after an edit it could run stale
machine code. kvsim therefore points ``NUMBA_CACHE_DIR`` at
``sim/__pycache__/numba-<digest>``, the digest taken over every file under
``sim/`` and ``trace/`` that uses numba: any edit to compiled code starts a fresh cache
(older folders are removed). It only sets the environment variable, so it
costs a few milliseconds and imports nothing; numba reads it when first
imported. When numba was imported first (a notebook or script that does
``import numba`` before ``import sim``), the variable comes too late, and
numba's default cache beside the sources could hold machine code compiled
against older kernels (seen: a timed replay looping forever): the setting is
then also written into numba's already-read config, which every ``cache=True``
function consults when it is decorated, i.e. when sim's modules import. A
user's own NUMBA_CACHE_DIR wins; a read-only checkout leaves numba's default
behaviour.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import sys

SIM = pathlib.Path(__file__).resolve().parent
ROOT = SIM / "__pycache__"


# the packages with compiled code (trace.prefix's fill runs inside the engines' loops)
PACKAGES = (SIM, SIM.parent / "trace")


def _digest() -> str:
    h = hashlib.sha1()
    for pkg in PACKAGES:
        for p in sorted(pkg.rglob("*.py")):
            text = p.read_bytes()
            if b"numba" in text:
                h.update(p.relative_to(SIM.parent).as_posix().encode())
                h.update(text)
    return h.hexdigest()[:12]


def cache_dir() -> pathlib.Path | None:
    """The folder numba caches into for this process (None: numba's default)."""
    d = os.environ.get("NUMBA_CACHE_DIR")
    return pathlib.Path(d) if d else None


def configure() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    try:
        ROOT.mkdir(exist_ok=True)
        if not os.access(ROOT, os.W_OK):
            return
        name = f"numba-{_digest()}"
        for old in ROOT.glob("numba-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
    except OSError:
        return
    os.environ["NUMBA_CACHE_DIR"] = str(ROOT / name)
    numba = sys.modules.get("numba")
    if numba is not None:  # imported before sim: its config has read the environment already
        numba.config.CACHE_DIR = str(ROOT / name)


configure()
