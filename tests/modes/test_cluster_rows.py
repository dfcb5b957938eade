"""The hit-rate-only cluster replay's per-request rows (sim.modes.cluster_result.RowWriter): buffered a chunk at
a time into the run's row blocks (sim.modes.result_rows), and the same results whatever the chunk (issue #19's
bounded memory)."""
from __future__ import annotations

import numpy as np
import pytest

from sim.modes import cluster_result
from sim.modes.cluster import run_cluster
from sim.modes.cluster_result import RowWriter
from sim.modes.result_rows import CLUSTER_COLUMNS, ResultRows
from tests.conftest import micro_workload as _workload
from tests.modes.test_cluster import _cfg


def _rows(n: int, block: int, got: list):
    return ResultRows(n, False, block, got.append, CLUSTER_COLUMNS)


def test_rows_reach_the_blocks_a_chunk_at_a_time():
    got: list = []
    rows = _rows(5, 3, got)  # blocks [0, 3) and [3, 5)
    out = RowWriter(rows, chunk=2)
    out.add(7, [1, 0, 0, 0, 0, 2], [16, 0, 0, 0, 0, 20], 0.5)
    assert rows.open == {} and len(out.wk) == 1  # buffered, not written yet
    out.add(3, [0, 1, 0, 0, 0, 0], [0, 16, 0, 0, 0, 0], 1.5)
    b0 = rows.at(0)
    assert b0.worker.tolist() == [7, 3, 0] and out.wk == [] and got == []  # the chunk went in; 1 row left
    assert b0.hit_tokens[0].tolist() == [16, 0, 0, 0, 0, 20] and b0.busy_s.tolist() == [0.5, 1.5, 0.0]
    for k in range(3):
        out.add(10 + k, [k] * 6, [16 * k] * 6, 2.0)
    # the second chunk crossed the blocks: the first is complete and handed over, the second has 1 of 2 rows
    assert [b.lo for b in got] == [0] and got[0].worker.tolist() == [7, 3, 10] and rows.at(3).left == 1
    out.flush()
    rows.close()
    assert [b.lo for b in got] == [0, 3] and got[1].worker.tolist() == [11, 12]
    assert got[1].hit_blocks[:, 1].tolist() == [1, 2] and got[1].hit_tokens[1].tolist() == [32] * 6


def test_a_missing_row_fails_at_close():
    rows = _rows(3, 3, [])
    out = RowWriter(rows, chunk=2)
    out.add(1, [0] * 6, [0] * 6, 0.0)
    out.flush()
    with pytest.raises(RuntimeError, match="2 requests never completed"):
        rows.close()


@pytest.mark.parametrize("timing", [False, True])  # the timed replay writes its rows directly: the same either way
def test_chunked_rows_equal_one_flush_at_the_end(monkeypatch, timing):
    # 40 requests reusing prefixes on 32 workers: flushes every 3 rows (and a partial last chunk) give the
    # arrays one flush at the end gives (the old path: n Python rows copied once)
    w = _workload([[1, 2, 3, 4], [1, 2, 5], [6, 7, 8, 9], [1, 2, 3, 4, 10], [6, 7, 11]] * 8,
                  [3 * i for i in range(40)], outputs=[20] * 40)
    runs = {}
    for chunk in (3, 10**9):
        monkeypatch.setattr(cluster_result, "ROWS_CHUNK", chunk)
        runs[chunk] = run_cluster(_cfg(), w, "lru", "round_robin", timing=timing)
    a, b = runs[3], runs[10**9]
    assert a.hit_blocks.sum() > 0 and len(set(a.worker.tolist())) > 1
    for k in ("worker", "hit_blocks", "hit_tokens", "busy_s", "ttft_s", "net_s", "e2e_s", "recomputed_tokens"):
        assert np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True), k
