"""Compiled (numba) cache engines: one node (single-node mode) and the whole cluster.

The Python classes in ``sim.cache.tier``, ``sim.cache.node``, ``sim.cache.cluster``
and ``sim.policies`` are the readable reference: any policy, including the
learned one and a user's own, runs there. This package re-implements the
built-in policies, the node hierarchy and (for LRU/FIFO) the cluster
hierarchy over flat arrays so that a replay spends nanoseconds, not
microseconds, per block; ``tests/test_engine_equivalence.py`` and
``tests/test_cluster_compiled.py`` replay random and real access sequences
through both and require identical decisions, counters and hit rates.

Modules, one job each:

* ``choice``      - ``cache.engine`` (auto | compiled | python) resolved for every mode.
* ``hashtab``     - open-addressing hash table: key -> slot (both engines).
* ``slots``       - slot header, free lists, intrusive doubly-linked lists (both engines).

Node engine:

* ``layout``      - field indices of the node's packed array and its allocation.
* ``tier_slots``  - a tier's slots and lists on the shared core.
* ``*_kernel``    - one eviction policy family per file (lru/fifo/selective
  write/session prefetch, arc, s3fifo, lfu/belady as priorities).
* ``dispatch``    - the policy-code table and the five calls a tier makes.
* ``tier_ops``    - Tier.put/take/admits over the arrays.
* ``node_ops``    - NodeCache.lookup/fetch/store/prefetch/demote.
* ``routing``     - the single-node routers.
* ``replay``      - the whole hit-rate-only replay loop.
* ``timed_ops``   - the timed replay's per-request cache calls (arrival, first token).
* ``node_cache``  - ``CompiledNodeCache``: the NodeCache API for Python callers.

Cluster engine:

* ``cluster_state``   - its arrays and their bookkeeping (slots, queues, holders, transfer rows).
* ``cluster_kernels`` - ClusterCache.acquire/store with the demotion chain.
* ``cluster_queries`` - the routers' read-only queries.
* ``cluster_cache``   - ``CompiledClusterCache``: the ClusterCache API for Python callers.
"""
from __future__ import annotations

import pathlib

from sim.jit_cache import cache_dir


def is_compiled(module: str = "node_ops") -> bool:
    """Has this machine compiled the engine's `module` already (node_ops: the node engine,
    cluster_kernels: the cluster's)? The first replay compiles it: ~20 s, the cluster's ~45 s."""
    folder = cache_dir() or pathlib.Path(__file__).resolve().parent / "__pycache__"
    return folder.is_dir() and any(folder.rglob(f"{module}.*.nbi"))
