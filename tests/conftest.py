"""Shared test paths and workload/config builders.

Test modules import the plain names (``from tests.conftest import ...``); the
fixtures below wrap the real trace so a test that needs it skips cleanly
where ``../shared`` is absent.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from sim.config import Config, load_config
from trace.workload import Workload

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
MOONCAKE = ROOT.parent / "shared" / "traces" / "mooncake_conversation.jsonl"
GiB = 1024**3
# llama-3-8b fp16: 2 x 32 layers x 8 KV heads x 128 x 2 B = 128 KiB per token; 16-token blocks are 2 MiB
LLAMA3_8B_BLOCK_BYTES = 16 * 131072

requires_mooncake = pytest.mark.skipif(not MOONCAKE.exists(), reason="real trace not present (../shared/traces)")


def micro_workload(reqs: Sequence[Sequence[int]], arrivals_s: Sequence[float] | None = None, *,
                   sessions: Sequence[int] | None = None, outputs: Sequence[int] | None = None,
                   name: str = "micro") -> Workload:
    """Requests as block-id lists (16-token blocks), arriving at `arrivals_s` seconds (default 0, 1, 2, ...)."""
    arrivals = np.arange(len(reqs), dtype=float) if arrivals_s is None else np.asarray(arrivals_s, dtype=float)
    return Workload.from_requests(reqs, arrival_ms=arrivals * 1000, output_tokens=outputs, session_id=sessions,
                                  name=name)


def blocks_gb(blocks: int) -> float:
    """GiB that hold `blocks` llama-3-8b fp16 blocks of 16 tokens (to size tiers in blocks)."""
    return blocks * LLAMA3_8B_BLOCK_BYTES / GiB


def node_config(hbm_blocks: int, *sets: str, gpus: int = 1) -> Config:
    """One node of llama-3-8b TP1 on H100s with an HBM tier of `hbm_blocks` blocks and no lower tiers."""
    return load_config(overrides=[
        "model.name=llama-3-8b", "model.tp=1", "hardware.gpu=h100-sxm", f"hardware.gpus_per_node={gpus}",
        f"hardware.hbm.capacity_gb={blocks_gb(hbm_blocks)}", "hardware.dram.capacity_gb=0",
        "hardware.ssd.capacity_gb=0", *sets,
    ])


@pytest.fixture
def mooncake_path() -> Path:
    if not MOONCAKE.exists():
        pytest.skip(f"real trace not present ({MOONCAKE})")
    return MOONCAKE
