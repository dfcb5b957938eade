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
from hypothesis import strategies as st

from trace.prefix import PrefixBlocks
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


@st.composite
def distinct_parent_forms(draw):
    """Random distinct parent forms: branching trees, partial shares, empty requests, stored or dense ids."""
    n = draw(st.integers(1, 30))
    parent, shared, own_len = [], [], []
    for i in range(n):
        p = draw(st.integers(-1, i - 1))
        plen = shared[p] + own_len[p] if p >= 0 else 0
        parent.append(p)
        shared.append(draw(st.integers(0, plen)) if p >= 0 else 0)
        own_len.append(draw(st.integers(0, 5)))
    own_off = np.concatenate([[0], np.cumsum(own_len)]).astype(np.int64)
    ids = None
    if draw(st.booleans()):  # stored ids: any distinct values
        ids = np.array(draw(st.permutations(range(1000, 1000 + int(own_off[-1])))), dtype=np.int64)
    return PrefixBlocks(np.array(parent, dtype=np.int64), np.array(shared, dtype=np.int64), own_off, ids,
                        distinct=True)


def prefix_workload(pb: PrefixBlocks, short: Sequence[int] | None = None) -> Workload:
    """A workload of 4-token blocks holding `pb`; request i's last block is `short[i]` tokens short (0-3)."""
    n = len(pb)
    offs = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(pb.counts(), out=offs[1:])
    cut = np.zeros(n, dtype=np.int64) if short is None else np.asarray(short, dtype=np.int64) % 4
    inp = np.where(pb.counts() > 0, pb.counts() * 4 - cut, 0)
    return Workload(name="t", arrival_ms=np.arange(n, dtype=np.float64), input_tokens=inp,
                    output_tokens=np.ones(n, dtype=np.int64), session_id=np.full(n, -1, dtype=np.int64),
                    block_offsets=offs, block_ids=None, block_tokens=4, prefix=pb)  # type: ignore[arg-type]


def pytest_sessionstart(session) -> None:
    """On a cold numba cache, compile the kernels once, in parallel, before the xdist workers start
    (tests.compile_warmup)."""
    from tests import compile_warmup

    if compile_warmup.wanted(session.config):
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        compile_warmup.run_parts(tr.write_line if tr is not None else print)
