"""Compiled (numba) cache engine for the single-node simulator.

The Python classes in ``sim.cache.tier``, ``sim.cache.node`` and ``sim.policies``
are the readable reference: any policy, including the learned one and a
user's own, runs there. This package re-implements the built-in policies and
the node hierarchy over flat arrays so that a replay spends nanoseconds, not
microseconds, per block; ``tests/test_engine_equivalence.py`` replays random
and real access sequences through both and requires identical decisions,
counters and hit rates.

Modules, one job each:

* ``layout``      - field indices of the packed arrays and their allocation.
* ``hashtab``     - open-addressing hash table: block id -> slot, per tier.
* ``slots``       - slot free lists, intrusive doubly-linked lists, indexed heap.
* ``*_kernel``    - one eviction policy family per file (lru/fifo/selective
  write/session prefetch, arc, s3fifo, lfu/belady as priorities).
* ``dispatch``    - the policy-code table and the five calls a tier makes.
* ``tier_ops``    - Tier.put/take/admits over the arrays.
* ``node_ops``    - NodeCache.lookup/fetch/store/prefetch/demote.
* ``routing``     - the single-node routers.
* ``replay``      - the whole hit-rate-only replay loop.
* ``cache``       - ``CompiledNodeCache``: the NodeCache API for Python callers.

"""
from __future__ import annotations

import pathlib

from sim.jit_cache import cache_dir


def is_compiled() -> bool:
    """Has this machine compiled the engine already? (The first replay compiles it, ~20 s.)"""
    folder = cache_dir() or pathlib.Path(__file__).resolve().parent / "__pycache__"
    return folder.is_dir() and any(folder.rglob("node_ops.*.nbi"))
