"""Shared test paths and workload builders.

Test modules import these plain names (``from tests.conftest import ...``).
Real-trace tests check ``MOONCAKE.exists()`` and skip where ``../shared`` is absent.
"""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trace.workload import Workload

ROOT = Path(__file__).resolve().parents[1]


def run_main(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python main.py ARGS` from the repository root, as a user runs it (output captured)."""
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
DATA = ROOT / "tests" / "data"
MOONCAKE = ROOT.parent / "shared" / "traces" / "mooncake_conversation.jsonl"


def micro_workload(reqs: Sequence[Sequence[int]], arrivals_s: Sequence[float] | None = None,
                   sessions: Sequence[int] | None = None, outputs: Sequence[int] | None = None,
                   name: str = "micro") -> Workload:
    """Requests as block-id lists (16-token blocks), arriving at `arrivals_s` seconds (default 0, 1, 2, ...)."""
    arrivals = np.arange(len(reqs), dtype=float) if arrivals_s is None else np.asarray(arrivals_s, dtype=float)
    return Workload.from_requests(reqs, arrival_ms=arrivals * 1000, output_tokens=outputs, session_id=sessions,
                                  name=name)


def multi_turn(requests: int, sessions: int, block_tokens: int = 16):
    """(config, prepared workload, its AccessContext) of the built-in multi-turn generator."""
    from sim.config import Config
    from sim.modes.common import prepare_workload
    from trace.synthetic import generate

    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"kind": "multi_turn", "requests": requests,
                                                     "sessions": sessions, "block_tokens": block_tokens})
    pw, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    return cfg, pw, ctx
