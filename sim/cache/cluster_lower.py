"""The cluster cache below HBM: where HBM, DRAM and EIC victims go (``sim.cache.chain`` rules).

Plain functions over the cluster cache's state ``c`` (a ``LowerHost``;
``sim.cache.cluster.ClusterCache`` is one): they place victims in the
lazily created DRAM / EIC / SSD tiers, keep the EIC rack index
(``c.eic_racks``) and the per-kind move counters (``c.moved``) up to date,
and add the background transfers they imply to ``bg``.
"""
from __future__ import annotations

from typing import Any, Protocol

from sim.cache.chain import TierChain
from sim.cache.layout import Layout, Moves, add_move
from sim.cache.tier import Tier
from sim.timing.topology import Endpoint


class LowerHost(Protocol):
    """What these functions read and update of the cluster cache (so this module needs no import of it)."""

    layout: Layout
    topo: Any
    chain: TierChain
    admission_filter: bool
    hbm: dict[int, Tier]
    dram: dict[int, Tier]
    ssd: Tier | None
    hbm_holders: dict[int, dict[int, None]]
    eic_racks: dict[int, int]
    moved: dict[str, int]

    def dram_tier(self, node: int) -> Tier | None: ...

    def eic_tier(self, rack: int) -> Tier | None: ...

    def gpu_ep(self, w: int) -> Endpoint: ...

_EMPTY: dict = {}


def count_move(c: LowerHost, kind: str, n: int = 1) -> None:
    c.moved[kind] = c.moved.get(kind, 0) + n


def demote(c: LowerHost, w: int, evicted: list[tuple[int, int]], bg: Moves) -> None:
    """Victims of worker w's HBM: to the node's DRAM and, when the chain publishes, the rack's EIC
    pool at once; a victim neither takes goes on down the chain (EIC, else the remote SSD)."""
    lay = c.layout
    node, rack = lay.node(w), lay.rack(w)
    holders = c.hbm_holders
    dram = c.dram_tier(node)
    eic = c.eic_tier(rack) if c.chain.publish_to_eic else None
    to_eic = to_dram = dropped = 0
    spill: list[tuple[int, int]] = []
    rest: list[tuple[int, int]] = []
    gone: list[tuple[int, int]] = []  # EIC victims
    epos = eic.pos if eic is not None else _EMPTY
    racks = c.eic_racks
    bit = 1 << rack
    filtering = c.admission_filter
    dpos = dram.pos if dram is not None else _EMPTY
    for b, pos in evicted:
        hd = holders.get(b)
        if hd is not None:
            hd.pop(w, None)
            if not hd:
                del holders[b]
        kept = False
        if eic is not None:  # publish the victim to the rack's pool
            if b in epos:
                kept = True
            elif not filtering or eic.admits(b, pos):
                eic.put(b, pos, gone)
                if b in epos:
                    racks[b] = racks.get(b, 0) | bit
                to_eic += 1
                kept = True
        if dram is not None:
            if b in dpos:  # write-through copy already there
                dram.touch(b, pos)
                continue
            if not filtering or dram.admits(b, pos):
                dram.put(b, pos, spill)
                to_dram += 1
                continue
        if not kept:
            rest.append((b, pos))
    me = c.gpu_ep(w)
    moved = c.moved
    if to_eic:
        assert eic is not None  # only counted when there is an EIC pool
        eic.stats.demotions_in += to_eic
        add_move(bg, me, c.topo.eic(rack), to_eic)
        moved["hbm_to_eic"] = moved.get("hbm_to_eic", 0) + to_eic
    if to_dram:
        assert dram is not None  # only counted when there is a DRAM tier
        dram.stats.demotions_in += to_dram
        add_move(bg, me, c.topo.dram(node), to_dram)
        moved["hbm_to_dram"] = moved.get("hbm_to_dram", 0) + to_dram
    if gone:
        assert eic is not None  # only EIC puts fill `gone`
        _eic_gone(c, rack, eic, gone, bg)
    if spill:
        dram_spill(c, node, spill, bg)
    if rest:
        dropped = len(rest) - _below_dram(c, node, rest, bg, me, "hbm")
        c.hbm[w].stats.dropped += dropped


def dram_spill(c: LowerHost, node: int, spill: list[tuple[int, int]], bg: Moves) -> None:
    """Victims of a node's DRAM: on down the chain, or dropped where the chain says so."""
    if c.chain.victim_goes("dram") is None:
        c.dram[node].stats.dropped += len(spill)
    else:
        _below_dram(c, node, spill, bg, c.topo.dram(node), "dram")


def _below_dram(c: LowerHost, node: int, blocks: list[tuple[int, int]], bg: Moves, src, frm: str) -> int:
    """Push blocks leaving DRAM (or HBM victims DRAM did not take) to the next tier under DRAM.

    Returns how many found a place (already there counts); the others are dropped."""
    rack = node // c.topo.nodes_per_rack
    dst = c.chain.below("dram")
    eic = c.eic_tier(rack) if dst == "eic" else None
    ssd = c.ssd if dst == "ssd" else None
    placed = sent = 0
    for b, pos in blocks:
        if eic is not None:
            if b in eic.pos:
                placed += 1
            elif not c.admission_filter or eic.admits(b, pos):
                _eic_put(c, rack, eic, b, pos, bg)
                placed += 1
                sent += 1
        elif ssd is not None:
            if b in ssd.pos:
                placed += 1
            elif _ssd_put(ssd, b, pos):
                placed += 1
                sent += 1
    if sent:
        dst_ep = c.topo.eic(rack) if eic is not None else c.topo.ssd()
        if eic is not None:
            eic.stats.demotions_in += sent
        add_move(bg, src, dst_ep, sent)
        count_move(c, f"{frm}_to_{dst}", sent)
    if frm == "dram" and placed < len(blocks):
        c.dram[node].stats.dropped += len(blocks) - placed
    return placed


def _eic_put(c: LowerHost, rack: int, eic: Tier, b: int, pos: int, bg: Moves) -> None:
    gone: list[tuple[int, int]] = []
    eic.put(b, pos, gone)
    if b in eic.pos:
        c.eic_racks[b] = c.eic_racks.get(b, 0) | (1 << rack)
    if gone:
        _eic_gone(c, rack, eic, gone, bg)


def _eic_gone(c: LowerHost, rack: int, eic: Tier, gone: list[tuple[int, int]], bg: Moves) -> None:
    """EIC victims: leave the rack index, go on down the chain (the remote SSD) unless already there."""
    racks = c.eic_racks
    keep = ~(1 << rack)
    ssd = c.ssd if c.chain.victim_goes("eic") == "ssd" else None
    spos = ssd.pos if ssd is not None else _EMPTY
    filtering = c.admission_filter
    sent = dropped = 0
    lost: list[tuple[int, int]] = []  # SSD victims (a bounded remote pool)
    epos = eic.pos
    for v, vpos in gone:
        if v in epos:  # evicted and written back within one batch: still there
            continue
        m = racks.get(v, 0) & keep
        if m:
            racks[v] = m
        else:
            racks.pop(v, None)
        if ssd is not None:
            if v in spos:
                continue
            if not filtering or ssd.admits(v, vpos):
                ssd.put(v, vpos, lost)
                if v in spos:
                    sent += 1
                    continue
        dropped += 1
    eic.stats.dropped += dropped
    if ssd is None:  # nothing was sent or lost
        return
    if sent:
        ssd.stats.demotions_in += sent
        add_move(bg, c.topo.eic(rack), c.topo.ssd(), sent)
        count_move(c, "eic_to_ssd", sent)
    if lost:
        ssd.stats.dropped += len(lost)


def _ssd_put(ssd: Tier, b: int, pos: int) -> bool:
    """Write a block that is not in the remote SSD yet; False when refused."""
    if not ssd.admits(b, pos):
        return False
    gone: list[tuple[int, int]] = []
    ssd.put(b, pos, gone)
    ssd.stats.demotions_in += 1
    ssd.stats.dropped += len(gone)
    return b in ssd.pos
