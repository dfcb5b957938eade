"""trace.stats: workload_stats numbers on hand-built workloads and fixtures,
render_stats output, and the real Mooncake trace when ../shared is present."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from rich.console import Console

from tests.conftest import DATA
from tests.conftest import MOONCAKE as REAL_MOONCAKE
from trace.formats import load_trace
from trace.stats import prefix_reuse, render_stats, workload_stats
from trace.workload import Workload


def make(blocks: list[list[int]], inp: list[int], *, sess=None, arrival=None, bt=16) -> Workload:
    n = len(blocks)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blocks], out=offsets[1:])
    ids = np.array([x for b in blocks for x in b], dtype=np.int64)
    return Workload(
        name="hand",
        arrival_ms=np.arange(n, dtype=float) * 1000 if arrival is None else arrival,
        input_tokens=inp,
        output_tokens=[10] * n,
        session_id=[-1] * n if sess is None else sess,
        block_offsets=offsets,
        block_ids=ids,
        block_tokens=bt,
    )


def text(table) -> str:
    buf = io.StringIO()
    Console(file=buf, width=160, color_system=None).print(table)
    return buf.getvalue()


def test_prefix_reuse_by_hand():
    w = make(
        [[1, 2, 3], [1, 2, 4], [1, 5], [1, 2, 3], [9, 1]],
        [40, 48, 20, 35, 30],
    )
    reused, total = prefix_reuse(w)
    # r1: 2 blocks (32), r2: 1 block (16), r3: 3 blocks capped at 35, r4: stops at unseen 9.
    assert (reused, total) == (32 + 16 + 35, 40 + 48 + 20 + 35 + 30)
    s = workload_stats(w)
    assert s["prefix_reuse_ratio"] == pytest.approx(83 / 173)
    assert s["prefix_reuse_tokens"] == 83


def test_basic_fields():
    w = make([[1], [2], [3], [4]], [16, 16, 32, 100], sess=[5, 5, 6, -1],
             arrival=np.array([0.0, 1000.0, 1500.0, 4000.0]))
    s = workload_stats(w)
    json.dumps(s)  # plain values only
    assert s["requests"] == 4 and s["sessions"] == 2
    assert s["session_reuse"] == pytest.approx(1 / 4)
    assert s["duration_s"] == 4.0 and s["arrival_rate_req_s"] == 1.0
    assert s["input_tokens"] == {"mean": 41.0, "p50": 24.0, "p95": pytest.approx(89.8), "max": 100}
    assert s["output_tokens"]["max"] == 10
    assert s["blocks"] == 4 and s["block_tokens"] == 16 and s["synthetic_blocks"] is False
    assert s["prefix_reuse_ratio"] == 0.0


def test_no_sessions_and_single_request():
    s = workload_stats(make([[1, 2]], [20]))
    assert s["sessions"] is None and s["session_reuse"] is None
    assert s["duration_s"] == 0.0 and s["arrival_rate_req_s"] is None
    s0 = workload_stats(make([[]], [0]))
    assert s0["prefix_reuse_ratio"] is None and s0["blocks"] == 0


def test_stats_on_fixtures():
    w, _ = load_trace(DATA / "bailian_small.jsonl")
    s = workload_stats(w)
    assert s["sessions"] == 3 and s["session_reuse"] == pytest.approx(4 / 7)
    # Reused tokens: chat3 2 blocks, chat4 4 blocks, chat9 3 blocks, chat10 1 block (x16, capped).
    assert s["prefix_reuse_tokens"] == 32 + 64 + 48 + 16
    w, _ = load_trace(DATA / "burstgpt_small.csv")
    s = workload_stats(w)
    assert s["synthetic_blocks"] is True and s["sessions"] == 2
    # Session turns reuse their full shared blocks: 29 + 85 (s1) and 26 (s2; 417 -> 26 full blocks).
    assert s["prefix_reuse_tokens"] == (29 + 85 + 26) * 16


def test_render_stats_includes_load_stats():
    w, st = load_trace(DATA / "burstgpt_small.csv")
    out = text(render_stats(workload_stats(w), st))
    for needle in ("rows read", "rows rejected", "failed_request", "timestamp_out_of_order",
                   "prefix reuse", "synthetic", "requests"):
        assert needle in out, needle
    bare = text(render_stats(workload_stats(w)))
    assert "rows read" not in bare and "prefix reuse" in bare


@pytest.mark.skipif(not REAL_MOONCAKE.exists(), reason=f"real trace absent: {REAL_MOONCAKE}")
def test_real_mooncake_stats():
    w, st = load_trace(REAL_MOONCAKE)
    t0 = time.perf_counter()
    s = workload_stats(w)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"workload_stats took {elapsed:.2f} s"
    assert s["requests"] == 12031
    assert s["input_tokens"]["mean"] == pytest.approx(12035, rel=0.01)
    assert s["output_tokens"]["mean"] == pytest.approx(343, rel=0.01)
    # Published: about 40% at unlimited capacity; measured 37.4% with 512-token blocks.
    assert 0.30 < s["prefix_reuse_ratio"] < 0.45
    assert s["sessions"] is None and s["block_tokens"] == 512
    out = text(render_stats(s, st))
    assert "12,031" in out
