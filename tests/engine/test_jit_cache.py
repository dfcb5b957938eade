"""sim.jit_cache: compiled code is cached in the digest folder even when numba was imported first."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def _cache_path_after(first: str) -> str:
    code = (f"{first}\n"
            "import sim.engine.timed_ops as t\n"
            "print(t.arrive._cache._cache_path)\n")
    env_clean = {k: v for k, v in __import__("os").environ.items() if k != "NUMBA_CACHE_DIR"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env_clean, capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_numba_imported_first_still_uses_the_digest_folder():
    plain = _cache_path_after("import sim")
    numba_first = _cache_path_after("import numba")
    assert "numba-" in plain
    assert numba_first == plain  # not the default cache beside the sources (stale across edits)
