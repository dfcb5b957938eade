"""The KV-cache hierarchy of one node: an HBM tier per worker, shared DRAM and SSD.

Write-back (default): blocks live in exactly one tier of a worker's view;
a hit in DRAM/SSD *moves* the block up to HBM, an HBM victim moves down to
DRAM, a DRAM victim to SSD, an SSD victim is dropped. The lower tiers'
admission filter (``Policy.admit``) may refuse a demotion; the block is then
dropped.

Write-through: every new block is also written to DRAM at once (a backup
copy), hits in DRAM copy up instead of moving, and an HBM victim whose copy
is already in DRAM costs nothing. A block then lives in HBM and DRAM at
once; it is still counted once in the hit rate (the first tier in lookup
order serves it).

Timing is not modelled here: methods return the bytes each link must carry
and the simulators (timed or hit-rate-only) decide what that costs.
"""
from __future__ import annotations

from dataclasses import dataclass

from sim.cache.tier import Tier

HBM, DRAM, SSD, MISS = 0, 1, 2, 3
TIER_NAMES = ("hbm", "dram", "ssd")


@dataclass
class Traffic:
    """Blocks each link carries for one operation (bytes = blocks x block_bytes)."""

    dram_to_hbm: int = 0
    ssd_to_hbm: int = 0
    hbm_to_dram: int = 0  # demotions and write-through copies
    dram_to_ssd: int = 0

    def add(self, other: Traffic) -> None:
        self.dram_to_hbm += other.dram_to_hbm
        self.ssd_to_hbm += other.ssd_to_hbm
        self.hbm_to_dram += other.hbm_to_dram
        self.dram_to_ssd += other.dram_to_ssd


class NodeCache:
    """HBM per worker + shared DRAM + shared SSD, with promotion and demotion."""

    def __init__(self, hbm: list[Tier], dram: Tier, ssd: Tier, write_through: bool = False) -> None:
        self.hbm = hbm
        self.dram = dram
        self.ssd = ssd
        self.write_through = write_through
        self.traffic = Traffic()  # totals over the run
        self.prefetched_blocks = 0
        # (sim time s, resident blocks) per tier name, all workers' HBM summed
        self.occupancy: dict[str, list[tuple[float, int]]] = {"hbm": [], "dram": [], "ssd": []}

    # ------------------------------------------------------------- lookup
    def lookup(self, w: int, blocks) -> tuple[int, int, int]:
        """Longest cached prefix for worker `w`: blocks found in (HBM, DRAM, SSD).

        The prefix stops at the first block found in no tier.
        """
        hbm, dram, ssd = self.hbm[w].pos, self.dram.pos, self.ssd.pos
        nh = nd = ns = 0
        for b in blocks:
            if b in hbm:
                nh += 1
            elif b in dram:
                nd += 1
            elif b in ssd:
                ns += 1
            else:
                break
        return nh, nd, ns

    def hbm_prefix(self, w: int, blocks) -> int:
        """Length of the prefix resident in worker `w`'s HBM (for routing)."""
        hbm = self.hbm[w].pos
        n = 0
        for b in blocks:
            if b not in hbm:
                break
            n += 1
        return n

    # ------------------------------------------------------------- moves
    def fetch(self, w: int, blocks, pos0: int, n_prefix: int, count_hits: bool = True) -> Traffic:
        """Bring the first `n_prefix` blocks into worker `w`'s HBM (they are cached somewhere).

        HBM hits are touched; DRAM/SSD hits are promoted. Returns the traffic.
        """
        t = Traffic()
        hbm, dram, ssd = self.hbm[w], self.dram, self.ssd
        hpos, dpos, spos = hbm.pos, dram.pos, ssd.pos
        htouch = hbm.policy.touch
        evicted: list[tuple[int, int]] = []
        n_hbm = 0
        for j in range(n_prefix):
            b = int(blocks[j])
            pos = pos0 + j
            if b in hpos:  # the common case, kept lean
                hpos[b] = pos
                htouch(b, pos)
                n_hbm += 1
                continue
            if b in dpos:
                src = dram
                t.dram_to_hbm += 1
                if self.write_through:
                    dram.touch(b, pos)
                else:
                    dram.take(b)
            elif b in spos:
                src = ssd
                t.ssd_to_hbm += 1
                ssd.take(b)
            else:  # evicted since lookup (by this very fetch): stop, the rest recomputes
                break
            if count_hits:
                src.stats.hits += 1
            src.stats.promotions_out += 1
            hbm.put(b, pos, evicted)
        if count_hits:
            hbm.stats.hits += n_hbm
        if evicted:
            self._demote(w, evicted, t)
        self.traffic.add(t)
        return t

    def store(self, w: int, blocks, pos0: int, start: int) -> Traffic:
        """Write blocks[start:] (computed by prefill) into worker `w`'s HBM."""
        t = Traffic()
        hbm, dram, ssd = self.hbm[w], self.dram, self.ssd
        evicted: list[tuple[int, int]] = []
        for j in range(start, len(blocks)):
            b = int(blocks[j])
            pos = pos0 + j
            if b in hbm.pos:
                hbm.touch(b, pos)
                continue
            if not self.write_through:
                # Keep exclusivity: a copy that reached a lower tier meanwhile is superseded.
                if b in dram.pos:
                    dram.take(b)
                elif b in ssd.pos:
                    ssd.take(b)
            hbm.put(b, pos, evicted)
            if self.write_through and b not in dram.pos and dram.admits(b, pos):
                spill: list[tuple[int, int]] = []
                dram.put(b, pos, spill)
                t.hbm_to_dram += 1
                if spill:
                    self._to_ssd(spill, t)
        if evicted:
            self._demote(w, evicted, t)
        self.traffic.add(t)
        return t

    def prefetch(self, w: int, blocks, pos0: int) -> Traffic:
        """Promote the cached prefix of `blocks` into HBM ahead of use (no hits counted)."""
        nh, nd, ns = self.lookup(w, blocks)
        if nd + ns == 0:
            return Traffic()
        t = self.fetch(w, blocks, pos0, nh + nd + ns, count_hits=False)
        self.prefetched_blocks += t.dram_to_hbm + t.ssd_to_hbm
        return t

    def _demote(self, w: int, evicted: list[tuple[int, int]], t: Traffic) -> None:
        """HBM victims go down to DRAM (unless a copy is there), DRAM victims to SSD."""
        moved, spill = self._push_down(evicted, self.hbm[w], self.dram)
        t.hbm_to_dram += moved
        if spill:
            self._to_ssd(spill, t)

    def _to_ssd(self, spill: list[tuple[int, int]], t: Traffic) -> None:
        moved, gone = self._push_down(spill, self.dram, self.ssd)
        t.dram_to_ssd += moved
        self.ssd.stats.dropped += len(gone)  # SSD victims leave the node

    @staticmethod
    def _push_down(victims: list[tuple[int, int]], src: Tier, dst: Tier) -> tuple[int, list[tuple[int, int]]]:
        """Move `src`'s victims into `dst`; return (blocks moved, `dst`'s own victims).

        A victim `dst` refuses is counted as dropped by `src`; one already in
        `dst` (a write-through copy, or demoted by another worker) is touched.
        """
        spill: list[tuple[int, int]] = []
        moved = 0
        dpos = dst.pos
        for b, pos in victims:
            if b in dpos:
                dst.touch(b, pos)
            elif dst.admits(b, pos):
                dst.put(b, pos, spill)
                moved += 1
            else:
                src.stats.dropped += 1
        dst.stats.demotions_in += moved
        return moved, spill

    def tiers(self) -> dict[str, list[Tier]]:
        return {"hbm": self.hbm, "dram": [self.dram], "ssd": [self.ssd]}
