"""Lower KV tiers behind the replicas' radix trees: host DRAM per node, EIC pool per rack.

A block evicted from a radix tree goes down the tier chain declared in
``sim.cache.chain`` (``TierChain.pd``): to its node's DRAM tier
(``hardware.dram.capacity_gib`` per node) and, when ``cluster.evict_to_eic``
is on and the rack has a pool (``hardware.eic.capacity_gib``,
``cluster.eic_nodes_per_rack`` > 0), to the rack's EIC pool at once, where
every replica of the rack finds it; a DRAM victim goes to the EIC pool
unless it is there; an EIC victim is dropped (PD runs keep no remote-SSD
tier). Unlike cluster mode, the lower tiers' admission filters are not
consulted. Tiers are ``sim.cache.tier.Tier`` with the run's eviction
policy. The tiers keep their copy when a block is loaded back into HBM
(inclusive caching: a block re-evicted later costs no second write).

The writes are background transfers nobody waits for. GPU -> EIC writes
leave through the GPU's NIC (``Network.send``: the links' write-back class,
which yields to foreground traffic such as KV transfers, see
``cache.writeback_share``); GPU -> host DRAM writes use a PCIe direction that
nothing else contends for, so their bytes are accounted without simulating
the flow. Loads (``lookup`` + ``load``) are foreground: the
request waits for them before it can be prefilled. ``io`` counts the bytes
actually read from and written to each tier (a part the request chose to
recompute is not read).
"""
from __future__ import annotations

import simpy

from sim.cache.chain import TierChain
from sim.cache.tier import Tier
from sim.policies import make_policy
from sim.policies.base import AccessContext
from sim.timing.topology import Topology


class LowerTiers:
    def __init__(self, env: simpy.Environment, net, topo: Topology, *, dram_blocks: int, eic_blocks: int,
                 block_bytes: int, policy: str, ctx: AccessContext | None, evict_to_eic: bool,
                 policy_params: dict | None = None) -> None:
        self.env = env
        self.net = net
        self.topo = topo
        self.bb = block_bytes
        params = policy_params or {}
        self.dram = [Tier("dram", dram_blocks, block_bytes, make_policy(policy, dram_blocks, ctx, **params))
                     for _ in range(topo.n_nodes)]
        has_eic = topo.has_eic and eic_blocks > 0
        self.eic = [Tier("eic", eic_blocks if has_eic else 0, block_bytes,
                         make_policy(policy, eic_blocks if has_eic else 0, ctx, **params))
                    for _ in range(topo.n_racks)]
        self.chain = TierChain.pd(dram=dram_blocks > 0, eic=has_eic, evict_to_eic=evict_to_eic)
        self.spilled_blocks = 0
        self.dropped_blocks = 0
        self.io = {t: {"read_bytes": 0, "write_bytes": 0} for t in ("dram", "eic")}

    def spill(self, gpu: int, lanes: int, evicted: list[tuple[int, int]]) -> None:
        """Blocks evicted from the HBM of the replica whose first GPU is `gpu`, down the tier chain.

        An HBM victim goes to the node's DRAM and, with ``evict_to_eic``, is
        also written to the rack's EIC pool at once; a DRAM victim goes to the
        EIC pool unless it is there already; an EIC victim is dropped.
        """
        topo, chain = self.topo, self.chain
        node, rack = topo.node_of(gpu), topo.rack_of(gpu)
        dram, eic = self.dram[node], self.eic[rack]
        env, net, bb = self.env, self.net, self.bb
        me = topo.gpu(gpu)
        self.spilled_blocks += len(evicted)
        victims: list[tuple[int, int]] = []
        gone: list[tuple[int, int]] = []
        if chain.dram:
            put = dram.put
            for key, pos in evicted:
                put(key, pos, victims)
            # GPU -> host is a direction of the PCIe link only these writes (and swap-outs) use, and
            # nobody waits for them: account the bytes without simulating the flow.
            net.transfer_time(me, topo.dram(node), len(evicted) * bb, lanes)
            self.io["dram"]["write_bytes"] += len(evicted) * bb
        else:
            victims = evicted
        to_eic = 0
        epos, put = eic.pos, eic.put
        if chain.publish_to_eic and chain.dram:
            for key, pos in evicted:
                if key not in epos:
                    put(key, pos, gone)
                    to_eic += 1
        # What DRAM evicted, or with no DRAM the HBM victims themselves, goes on down the chain.
        if chain.victim_goes("dram" if chain.dram else "hbm") == "eic":
            for key, pos in victims:
                if key not in epos:
                    put(key, pos, gone)
                    to_eic += 1
        else:
            self.dropped_blocks += len(victims)
        if to_eic:
            # DRAM is reached only from its own GPUs: EIC writes leave through the GPU's NIC.
            net.send(env, me, topo.eic(rack), to_eic * bb, lanes)
            self.io["eic"]["write_bytes"] += to_eic * bb
        self.dropped_blocks += len(gone)

    def lookup(self, gpu: int, blocks: list[int], start: int, pos0: int) -> tuple[int, int]:
        """Blocks from `start` on found in this node's DRAM / this rack's EIC: (n_dram, n_eic).

        Touches the hits (they are about to be used).
        """
        dram = self.dram[self.topo.node_of(gpu)]
        eic = self.eic[self.topo.rack_of(gpu)]
        nd = ne = 0
        dpos, epos = dram.pos, eic.pos
        for k in range(start, len(blocks)):
            b = blocks[k]
            if b in dpos:
                dram.touch(b, pos0 + k)
                nd += 1
            elif b in epos:
                eic.touch(b, pos0 + k)
                ne += 1
            else:
                break
        dram.stats.hits += nd
        eic.stats.hits += ne
        dram.stats.promotions_out += nd
        eic.stats.promotions_out += ne
        return nd, ne

    def load(self, gpu: int, lanes: int, n_dram: int, n_eic: int) -> list[simpy.Event]:
        """Transfers that bring the hits into the replica's HBM (empty when there is nothing to load)."""
        env, net, topo = self.env, self.net, self.topo
        evs = []
        self.io["dram"]["read_bytes"] += n_dram * self.bb
        self.io["eic"]["read_bytes"] += n_eic * self.bb
        if n_dram:
            evs.append(net.transfer(env, topo.dram(topo.node_of(gpu)), topo.gpu(gpu), n_dram * self.bb, lanes))
        if n_eic:
            evs.append(net.transfer(env, topo.eic(topo.rack_of(gpu)), topo.gpu(gpu), n_eic * self.bb, lanes))
        return evs

    def find(self, gpu: int, blocks: list[int], start: int) -> tuple[int, int]:
        """``lookup`` without touching or counting anything (a session prefetch's look)."""
        dpos = self.dram[self.topo.node_of(gpu)].pos
        epos = self.eic[self.topo.rack_of(gpu)].pos
        nd = ne = 0
        for k in range(start, len(blocks)):
            b = blocks[k]
            if b in dpos:
                nd += 1
            elif b in epos:
                ne += 1
            else:
                break
        return nd, ne

    def prefetch(self, gpu: int, lanes: int, n_dram: int, n_eic: int) -> list[simpy.Event]:
        """``load`` on the links' idle-only class (``Network.prefetch``): a session prefetch's transfers."""
        env, net, topo = self.env, self.net, self.topo
        evs = []
        self.io["dram"]["read_bytes"] += n_dram * self.bb
        self.io["eic"]["read_bytes"] += n_eic * self.bb
        if n_dram:
            evs.append(net.prefetch(env, topo.dram(topo.node_of(gpu)), topo.gpu(gpu), n_dram * self.bb, lanes))
        if n_eic:
            evs.append(net.prefetch(env, topo.eic(topo.rack_of(gpu)), topo.gpu(gpu), n_eic * self.bb, lanes))
        return evs

    def promoted(self, gpu: int, blocks: list[int], start: int, n: int, pos0: int) -> None:
        """blocks[start:start + n] were prefetched into HBM: touch their copies, count promotions (no hits)."""
        dram = self.dram[self.topo.node_of(gpu)]
        eic = self.eic[self.topo.rack_of(gpu)]
        for k in range(start, start + n):
            b = blocks[k]
            tier = dram if b in dram.pos else eic if b in eic.pos else None
            if tier is not None:
                tier.touch(b, pos0 + k)
                tier.stats.promotions_out += 1

    def load_estimates_s(self, gpu: int, lanes: int, n_dram: int, n_eic: int) -> tuple[float, float]:
        """Seconds loading n_dram / n_eic blocks would take if started now (links as they are)."""
        env, net, topo, bb = self.env, self.net, self.topo, self.bb
        me = topo.gpu(gpu)
        return (net.estimate_s(env, topo.dram(topo.node_of(gpu)), me, n_dram * bb, lanes),
                net.estimate_s(env, topo.eic(topo.rack_of(gpu)), me, n_eic * bb, lanes))

    def summary(self) -> dict:
        def agg(tiers):
            return {
                "capacity_bytes": int(sum(t.capacity for t in tiers) * self.bb),
                "used_bytes": int(sum(len(t) for t in tiers) * self.bb),
                "hits_blocks": int(sum(t.stats.hits for t in tiers)),
                "inserts": int(sum(t.stats.inserts for t in tiers)),
                "evictions": int(sum(t.stats.evictions for t in tiers)),
            }

        return {"dram": agg(self.dram), "eic": agg(self.eic), "spilled_blocks": self.spilled_blocks,
                "dropped_blocks": self.dropped_blocks}
