"""Per-access arrays of a workload that every bound reads.

An *access* is one (request, block) pair, in the order of
``Workload.block_ids`` (request by request, root block first). For access
``pos`` of request ``i`` at depth ``d`` (0 = first block):

* ``weight[pos]``: tokens the access is worth when it hits,
  ``clip(input_tokens[i] - d * block_tokens, 0, block_tokens)``. Summed over a
  hit prefix of ``h`` blocks this is ``min(h * block_tokens, input_tokens)``,
  the token-weighted hit of the project (hit blocks x block_tokens capped at
  the input length). Only the last block of a request can weigh less than a
  full block.
* ``prev[pos]`` / ``next[pos]``: positions of the previous / next access to
  the same block id (-1 / ``NEVER`` when none).
* ``request[pos]``, ``depth[pos]``.

``prefix_consistent`` tells whether every block id always follows the same
parent id (the contract of ``Workload``: an id names its whole prefix). The
exactness proofs of ``sim.oracle.bounds`` rely on it; the bounds stay valid
bounds without it, they only lose the optimality proof.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trace.workload import Workload

NEVER = np.iinfo(np.int64).max


@dataclass
class Accesses:
    ids: np.ndarray  # int64 block id per access
    request: np.ndarray  # int64 request index per access
    depth: np.ndarray  # int64 depth within the request
    weight: np.ndarray  # int64 tokens per access
    prev: np.ndarray  # int64 previous access of the same id, -1 if none
    next: np.ndarray  # int64 next access of the same id, NEVER if none
    offsets: np.ndarray  # int64 CSR offsets (n_requests + 1)
    input_tokens: np.ndarray  # int64 per request
    block_tokens: int
    prefix_consistent: bool

    @property
    def n_requests(self) -> int:
        return len(self.offsets) - 1

    @property
    def n(self) -> int:
        return len(self.ids)

    def total_tokens(self) -> int:
        return int(self.input_tokens.sum())


def accesses(w: Workload) -> Accesses:
    """Build the per-access arrays of `w` in O(n log n) numpy work."""
    ids = np.ascontiguousarray(w.block_ids, dtype=np.int64)
    n = len(ids)
    counts = w.n_blocks()
    request = np.repeat(np.arange(len(w), dtype=np.int64), counts)
    depth = np.arange(n, dtype=np.int64) - np.repeat(w.block_offsets[:-1], counts)
    bt = int(w.block_tokens)
    weight = np.clip(np.repeat(w.input_tokens, counts) - depth * bt, 0, bt).astype(np.int64)
    prev = np.full(n, -1, dtype=np.int64)
    nxt = np.full(n, NEVER, dtype=np.int64)
    consistent = True
    if n:
        order = np.argsort(ids, kind="stable")  # by id, then by position
        same = ids[order[1:]] == ids[order[:-1]]
        nxt[order[:-1][same]] = order[1:][same]
        prev[order[1:][same]] = order[:-1][same]
        # Parent id of each access (-1 at depth 0); an id must always have one.
        parent = np.where(depth > 0, np.roll(ids, 1), -1)
        parent_sorted = parent[order]
        consistent = bool(np.all(parent_sorted[1:][same] == parent_sorted[:-1][same]))
        # A repeated id inside one request breaks the path shape as well.
        if consistent:
            consistent = bool(np.all(request[order[1:]][same] != request[order[:-1]][same]))
    return Accesses(
        ids=ids, request=request, depth=depth, weight=weight, prev=prev, next=nxt,
        offsets=np.asarray(w.block_offsets, dtype=np.int64), input_tokens=np.asarray(w.input_tokens, np.int64),
        block_tokens=bt, prefix_consistent=consistent,
    )


def leading_run(mask: np.ndarray, acc: Accesses) -> np.ndarray:
    """Per access: True when it and every earlier access of its request are True.

    The strict-prefix rule: a request's hit stops at its first missing block.
    """
    if not len(mask):
        return mask.copy()
    miss = (~mask).astype(np.int64)
    cum = np.cumsum(miss)
    start = acc.offsets[:-1][acc.request]
    before = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0)
    before = np.where(start > 0, before, 0)
    return (cum - before) == 0
