"""A fixed yardstick of this machine's speed, printed beside the scale benchmarks' figures.

The shared VMs these benchmarks ran on gave the same code's replay 3x apart on different days
(README, "Production scale"). Two fixed loops, measured in the benchmark's process just before its
replay, let figures from different days or machines be compared: divide each by its run's yardstick.

* ``python``: Python dict reads and writes, one after the other (the SimPy replays' kind of work);
* ``hashtab``: inserts and finds of 2**20 spread int64 keys in the engines' own hash table
  (sim.engine.hashtab, 2**22 entries, 64 MiB: cache-missing as the compiled replays are).

Each is the best of 3, in millions of operations a second.

    python benchmarks/machine_ref.py
"""
from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np
from numba import njit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from sim.engine.hashtab import find, insert, table_size  # noqa: E402  (after the path)

KEYS = 1 << 20


def python_mops(ops: int = 1 << 20) -> float:
    best = float("inf")
    for _ in range(3):
        d: dict[int, int] = {}
        t = time.perf_counter()
        for i in range(ops // 2):
            k = (i * 40503) & 0xFFFF
            d[k] = d.get(k, 0) + 1
        best = min(best, time.perf_counter() - t)
    return ops / best / 1e6


@njit(cache=True)
def _fill_and_find(H, mask, keys):
    H[:] = -1
    for j in range(len(keys)):
        insert(H, 0, mask, keys[j], j)
    hits = 0
    for j in range(len(keys)):
        hits += find(H, 0, mask, keys[j]) == j
    return hits


def hashtab_mops() -> float:
    size = table_size(2 * KEYS)
    H = np.empty(2 * size, dtype=np.int64)
    keys = np.arange(KEYS, dtype=np.int64) * 7919 + 13
    _fill_and_find(H, np.int64(size - 1), keys[:16])  # compile (or load) first
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        if _fill_and_find(H, np.int64(size - 1), keys) != KEYS:
            raise RuntimeError("machine_ref: the hash table lost a key")
        best = min(best, time.perf_counter() - t)
    return 2 * KEYS / best / 1e6


def yardstick() -> str:
    """One line for a benchmark's output."""
    return (f"yardstick (benchmarks/machine_ref.py): {python_mops():.1f} M Python dict ops/s, "
            f"{hashtab_mops():.1f} M hash-table ops/s")


if __name__ == "__main__":
    print(yardstick())
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
