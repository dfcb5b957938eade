"""The cluster replays' per-request rows (sim.modes.cluster_result.RowWriter): buffered a chunk at a time
into the result's arrays, and the same results whatever the chunk (issue #19's bounded memory)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sim.modes import cluster_result
from sim.modes.cluster import run_cluster
from sim.modes.cluster_result import RowWriter
from tests.conftest import micro_workload as _workload
from tests.modes.test_cluster import _cfg


def _res(n):
    return SimpleNamespace(worker=np.zeros(n, np.int64), hit_blocks=np.zeros((n, 6), np.int64),
                           hit_tokens=np.zeros((n, 6), np.int64))


def test_rows_reach_the_arrays_a_chunk_at_a_time():
    res = _res(5)
    out = RowWriter(res, chunk=2)
    out.add(7, [1, 0, 0, 0, 0, 2], [16, 0, 0, 0, 0, 20])
    assert res.worker.tolist() == [0] * 5 and len(out.wk) == 1  # buffered, not written yet
    out.add(3, [0, 1, 0, 0, 0, 0], [0, 16, 0, 0, 0, 0])
    assert res.worker.tolist() == [7, 3, 0, 0, 0] and out.wk == []  # the chunk went in
    assert res.hit_tokens[0].tolist() == [16, 0, 0, 0, 0, 20]
    for k in range(3):
        out.add(10 + k, [k] * 6, [16 * k] * 6)
    assert res.worker.tolist() == [7, 3, 10, 11, 0]
    out.close()
    assert res.worker.tolist() == [7, 3, 10, 11, 12]
    assert res.hit_blocks[:, 1].tolist() == [0, 1, 0, 1, 2]
    assert res.hit_tokens[4].tolist() == [32] * 6


def test_a_missing_row_fails_at_close():
    out = RowWriter(_res(3), chunk=2)
    out.add(1, [0] * 6, [0] * 6)
    with pytest.raises(RuntimeError, match="1 of 3"):
        out.close()


@pytest.mark.parametrize("timing", [False, True])
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
