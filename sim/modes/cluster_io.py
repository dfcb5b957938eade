"""The load step of a timed cluster request: load each cached part from where it is, or recompute it.

The cluster's lookup (``ClusterCache.acquire`` and its compiled twin) says
how many of a request's prefix blocks each location held (``LOC_NAMES``:
own HBM, peer HBM, host DRAM, the rack's EIC pool, another rack's, the
remote SSD pool) and which transfers {(source endpoint, worker): blocks}
bring them to the worker. ``ClusterIO.start_load``:

* splits the cached prefix into one part per location, in ``LOC_NAMES``
  order (fast to slow), with each part's load estimated from the network's
  current state (``Network.estimate_s``: path latency + bytes / the share
  of every link it would get now; a part from several peers or racks takes
  its slowest transfer);
* lets ``sim.timing.load_policy.choose_prefix`` pick how many leading parts
  to load (``cache.load_policy``); the rest is recomputed with the new
  tokens, and its transfers are never started (no bytes, no link time);
* returns a ``sim.timing.node_io.PrefixLoad``, which says when the request
  may join its replica's queue (``cache.load_overlap``).

The lookup reports counts per location, not block positions, so the parts
are taken as contiguous in ``LOC_NAMES`` order (the same simplification as
PD's HBM -> DRAM -> EIC split): recomputing a part means recomputing its
tokens, wherever they sat in the prefix.

No SimPy process is created: the transfers are events and ``PrefixLoad``
only combines them. Bytes actually moved are counted per tier
(``summary``): read = tier -> GPU (the loads; a peer's HBM counts as
``hbm``), write = into the tier (the background demotions, spills and
write-through copies the cache reports).
"""
from __future__ import annotations

from collections.abc import Callable

import simpy

from sim.cache.layout import DRAM, EIC, PEER, REIC, SSD
from sim.timing.load_policy import PrefixPart, choose_prefix
from sim.timing.network import Network
from sim.timing.node_io import PrefixLoad, all_done

Moves = dict  # {(src endpoint, dst endpoint): blocks}
TIERS = ("hbm", "dram", "eic", "ssd")
_TIER_OF_KIND = {"gpu": "hbm", "dram": "dram", "eic": "eic", "ssd": "ssd"}


def location(src: tuple, rack: int) -> int:
    """LOC_NAMES index of a transfer source seen from a worker in `rack`."""
    kind = src[0]
    if kind == "gpu":
        return PEER
    if kind == "dram":
        return DRAM
    if kind == "eic":
        return EIC if src[1] == rack else REIC
    if kind == "ssd":
        return SSD
    raise ValueError(f"not a cache location: {src!r}")


class ClusterIO:
    """Load-or-recompute, the load's events and the per-tier byte counts of one timed cluster run."""

    def __init__(self, env: simpy.Environment, net: Network, *, block_bytes: int, lanes: int, layers: int,
                 policy: str, overlap: str, prefill_s: Callable[[int, int], float]) -> None:
        self.env = env
        self.net = net
        self.bb = block_bytes
        self.lanes = lanes
        self.layers = max(1, layers)
        self.policy = policy
        self.overlap = overlap
        self.prefill_s = prefill_s
        self.read = dict.fromkeys(TIERS, 0)
        self.write = dict.fromkeys(TIERS, 0)
        self.recomputed_prefixes = 0
        self.recomputed_tokens = 0

    def start_load(self, rack: int, tokens: list[int], crit: Moves, input_tokens: int) -> PrefixLoad:
        """The load step of one request on a worker in `rack` (see the module docstring).

        ``tokens``: cached tokens per location (LOC_NAMES, trimmed to the input);
        ``crit``: the transfers that bring the lower locations' blocks.
        """
        env, net, bb, lanes = self.env, self.net, self.bb, self.lanes
        by_loc: dict[int, list[tuple[tuple, tuple, int]]] = {}
        for (src, dst), nb in crit.items():
            k = location(src, rack)
            got = by_loc.get(k)
            if got is None:
                by_loc[k] = [(src, dst, nb)]
            else:
                got.append((src, dst, nb))
        # Only locations that hold tokens are cut points; the own-HBM part always comes first.
        locs = [k for k in sorted(by_loc) if tokens[k] > 0]
        parts = [PrefixPart(tokens[0])]
        estimate = net.estimate_s
        for k in locs:
            est = None  # the slowest transfer of the part (max() of the estimates, first maximum kept)
            for src, dst, nb in by_loc[k]:
                e = estimate(env, src, dst, nb * bb, lanes)
                if est is None or e > est:
                    est = e
            assert est is not None  # every location in by_loc has a transfer
            parts.append(PrefixPart(tokens[k], est))
        choice = choose_prefix(parts, input_tokens, self.prefill_s, layers=self.layers, overlap=self.overlap,
                               policy=self.policy)
        if choice.recomputed:
            self.recomputed_prefixes += 1
            self.recomputed_tokens += choice.recomputed_tokens
        evs = []
        for k in locs[:choice.parts_used - 1]:
            for src, dst, nb in by_loc[k]:
                evs.append(net.transfer(env, src, dst, nb * bb, lanes))
                self.read[_TIER_OF_KIND[src[0]]] += nb * bb
        return PrefixLoad(env, choice, all_done(env, evs), self.layers, self.overlap)

    def background(self, moves: Moves) -> None:
        """The background moves of a lookup or a store: counted per tier (``count_background``) and on
        the network. Links are full duplex and requests only ever wait for reads towards a GPU, so a
        write-back moving *towards* EIC/DRAM (GPU -> EIC, GPU -> DRAM, DRAM -> EIC) crosses only link
        directions no awaited transfer uses: it cannot delay anyone and its bytes are just counted.
        EIC -> SSD spills leave the pool through the same ToR port and rack uplink that EIC reads
        (local and cross-rack) use, so they load those links (``Network.send``)."""
        env, net, bb, lanes = self.env, self.net, self.bb, self.lanes
        read, write = self.read, self.write
        for (src, dst), nb in moves.items():
            nbytes = nb * bb
            if dst[0] == "gpu":
                read[_TIER_OF_KIND[src[0]]] += nbytes
            else:
                write[_TIER_OF_KIND[dst[0]]] += nbytes
            if src[0] == "eic":
                net.send(env, src, dst, nbytes, lanes)
            else:
                net.account(src, dst, nbytes, lanes)

    def count_background(self, moves: Moves) -> None:
        """Bytes of background moves: into a lower tier = a write; towards a GPU = a read of the source."""
        bb = self.bb
        for (src, dst), nb in moves.items():
            if dst[0] == "gpu":
                self.read[_TIER_OF_KIND[src[0]]] += nb * bb
            else:
                self.write[_TIER_OF_KIND[dst[0]]] += nb * bb

    def summary(self) -> dict:
        """``tier_io`` and the recompute counts, the keys single and PD reports have."""
        return {
            "tier_io": {t: {"read_bytes": int(self.read[t]), "write_bytes": int(self.write[t])} for t in TIERS},
            "recomputed_prefixes": self.recomputed_prefixes,
            "recomputed_tokens": self.recomputed_tokens,
        }


__all__ = ["ClusterIO", "TIERS", "location"]
