"""kvsim's version and, when run from a git checkout, the commit: for `--version` and every report."""
from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def version() -> str:
    """The installed package's version, else pyproject.toml's (a source checkout), else "unknown"."""
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        return dist_version("kvsim")
    except PackageNotFoundError:
        pass
    try:
        m = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    except OSError:
        m = None
    return m.group(1) if m else "unknown"


@functools.cache
def git_commit() -> str | None:
    """The checkout's HEAD commit (with "-dirty" if tracked files changed); None outside a git checkout,
    without git, or on any error: a report never fails for want of it."""
    if not (ROOT / ".git").exists():  # an installed copy: a surrounding repository is not kvsim's
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
