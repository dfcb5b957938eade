"""``CompiledNodeCache``: the NodeCache API over the engine's arrays.

The simulators and reports use it exactly like ``sim.cache.node.NodeCache``
(lookup, fetch, store, prefetch, hbm_prefix, per-tier stats and lengths,
traffic, occupancy); each call is one compiled function call.
"""
from __future__ import annotations

import numpy as np

from sim.cache.node import Traffic
from sim.cache.tier import TierBytes, TierStats
from sim.engine import belady_kernel, lfu_kernel, node_ops
from sim.engine.dispatch import ARC, BELADY, KERNELS, LFU, S3FIFO, SELECTIVE_WRITE
from sim.engine.layout import (
    CAP,
    LEN,
    PREFETCHED,
    ST_HITS,
    STAT_FIELDS,
    TR_DRAM_TO_HBM,
    TR_DRAM_TO_SSD,
    TR_HBM_TO_DRAM,
    TR_SSD_TO_HBM,
    allocate,
    tier_at,
)
from sim.engine.tier_ops import resident
from sim.policies import make_policy
from sim.policies.base import AccessContext


class TierView(TierBytes):
    """One tier of the compiled cache, read like a sim.cache.tier.Tier."""

    def __init__(self, cache: CompiledNodeCache, t: int, name: str, block_bytes: int) -> None:
        self._c = cache
        self._t = t
        self.name = name
        self.block_bytes = block_bytes
        self._a = tier_at(t)
        self.capacity = int(cache.M[self._a + CAP])

    @property
    def stats(self) -> TierStats:
        M, a = self._c.M, self._a
        return TierStats(**{f: int(M[a + ST_HITS + k]) for k, f in enumerate(STAT_FIELDS)})

    def __len__(self) -> int:
        return int(self._c.M[self._a + LEN])

    def __contains__(self, key: int) -> bool:
        return resident(self._c.M, self._t, int(key)) >= 0


def _slots(code: int, cap: int, policy, n_unique: int) -> int:
    """Slots tier needs: residents, plus ghosts for ARC/S3-FIFO; never more than distinct keys."""
    if cap == 0:
        return 0
    if code == ARC:
        need = 2 * cap + 1
    elif code == S3FIFO:
        need = cap + policy.ghost_size + 1
    else:
        need = cap
    return _bounded(need, n_unique)


def _bounded(need: int, n_unique: int) -> int:
    """No tier ever holds more distinct keys than the workload has (0 = unknown)."""
    return need if n_unique <= 0 else min(need, n_unique + 1)


def _params(code: int, policy) -> tuple[int, int, int]:
    if code == S3FIFO:
        return policy.small_target, policy.ghost_size, policy.move_to_main_threshold
    if code == SELECTIVE_WRITE:
        return policy.history, 0, policy.depth_threshold
    return 0, 0, 0


class CompiledNodeCache:
    """HBM per worker + shared DRAM + shared SSD, compiled; same behaviour as NodeCache."""

    def __init__(self, policy: str, hbm_blocks: int, n_workers: int, dram_blocks: int, ssd_blocks: int,
                 block_bytes: int, ctx: AccessContext, params: dict, write_through: bool = False) -> None:
        code = KERNELS[policy]
        caps = [hbm_blocks] * n_workers + [dram_blocks, ssd_blocks]
        # The Python policy objects give the exact derived parameters (s3fifo's
        # small target and ghost size, selective_write's history and depth).
        refs = [make_policy(policy, c, ctx, **params) for c in (hbm_blocks, dram_blocks, ssd_blocks)]
        refs = [refs[0]] * n_workers + refs[1:]
        nslots = [_slots(code, c, p, ctx.key_bound) for c, p in zip(caps, refs, strict=True)]
        prm = [_params(code, p) for p in refs]
        # the reuse history of selective_write, shared by the node's tiers
        hist = max((p[0] for p in prm), default=0) if code == SELECTIVE_WRITE else 0
        caps.append(0)
        nslots.append(_bounded(hist + 2, ctx.key_bound) if hist else 0)
        prm.append((0, 0, 0))
        aux_words = {LFU: lfu_kernel.aux_words, BELADY: belady_kernel.aux_words}.get(code, lambda n: 0)
        none = np.zeros(0, dtype=np.int64)  # per-access arrays only for the policy that reads them
        depth, starts = ctx.depth_table() if code == SELECTIVE_WRITE else (none, False)
        next_use, nu_steps = none, (0, 0)
        if code == BELADY:
            steps = ctx.next_use_steps()
            if steps is None:
                next_use = ctx.next_use
            else:  # a few words a request instead of one per block access (trace.next_use)
                next_use, nu_steps = steps.packed(), (len(steps.ends) - 1, len(steps.depth))
                depth, starts = ctx.request_starts(), True
        self.M = allocate(caps, nslots, [aux_words(n) for n in nslots], code, n_workers, write_through, prm,
                          next_use, depth, ctx.max_blocks(), starts, nu_steps)
        if code == LFU:
            for t in range(len(caps)):
                lfu_kernel.init_buckets(self.M, t)
        self.write_through = write_through
        self.hbm = [TierView(self, w, "hbm", block_bytes) for w in range(n_workers)]
        self.dram = TierView(self, n_workers, "dram", block_bytes)
        self.ssd = TierView(self, n_workers + 1, "ssd", block_bytes)
        self.occupancy: dict[str, list[tuple[float, int]]] = {"hbm": [], "dram": [], "ssd": []}
        self._none = np.empty(0, dtype=np.int64)  # "record nothing", for every call (node_ops)
        self._none2 = np.empty((1, 0), dtype=np.int64)

    # ------------------------------------------------------------- counters
    @property
    def traffic(self) -> Traffic:
        M = self.M
        return Traffic(int(M[TR_DRAM_TO_HBM]), int(M[TR_SSD_TO_HBM]), int(M[TR_HBM_TO_DRAM]),
                       int(M[TR_DRAM_TO_SSD]))

    @property
    def prefetched_blocks(self) -> int:
        return int(self.M[PREFETCHED])

    def tiers(self) -> dict[str, list[TierView]]:
        return {"hbm": self.hbm, "dram": [self.dram], "ssd": [self.ssd]}

    # ------------------------------------------------------------- calls
    def lookup(self, w: int, blocks: np.ndarray) -> tuple[int, int, int]:
        return node_ops.lookup(self.M, w, blocks, self._none)

    def hbm_prefix(self, w: int, blocks: np.ndarray) -> int:
        return node_ops.hbm_prefix(self.M, w, blocks, self._none2)

    def fetch(self, w: int, blocks: np.ndarray, pos0: int, n_prefix: int, count_hits: bool = True) -> Traffic:
        return Traffic(*node_ops.fetch(self.M, w, blocks, pos0, n_prefix, count_hits, self._none))

    def store(self, w: int, blocks: np.ndarray, pos0: int, start: int) -> Traffic:
        return Traffic(*node_ops.store(self.M, w, blocks, pos0, start))

    def prefetch(self, w: int, blocks: np.ndarray, pos0: int) -> Traffic:
        return Traffic(*node_ops.prefetch(self.M, w, blocks, pos0))
