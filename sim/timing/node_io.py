"""The tier I/O of one node: its links, the load-or-recompute choice and layer-wise overlap.

Links (all ``sim.timing.priority_link.PriorityLink``, processor sharing):

* per worker, host DRAM -> GPU (``pcie_in``, reads) and GPU -> host DRAM
  (``pcie_out``, write-backs): the worker's GPUs' own PCIe links, full
  duplex, so loads and demotions do not contend;
  ``hardware.dram.bandwidth_gb_s`` / ``write_bandwidth_gb_s`` x GPUs per worker;
* the node's host bridge, one per direction, that every worker's PCIe
  transfer also crosses (``hardware.host_bridge_gb_s``, 0 = none);
* the node's NVMe (``nvme``): SSD -> GPU reads and DRAM -> SSD write-backs
  share it, reads first (``cache.writeback_share``), at
  ``hardware.ssd.bandwidth_gb_s`` / ``write_bandwidth_gb_s``.

``start_load`` is the load step of one request: it splits the cached prefix
by tier (HBM, DRAM, SSD), estimates each lower part's load from the links'
current state, lets ``sim.timing.load_policy.choose_prefix`` pick how much
to load (``cache.load_policy``), starts those transfers and returns a
``PrefixLoad`` that tells the request when it may join its GPU's queue and
how long its prefill then lasts (``sim.timing.overlap``, ``cache.load_overlap``).
Bytes actually moved are counted per tier and direction (``summary``).
"""
from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import simpy

from sim.timing.event_loop import first_of, succeed_last, timer
from sim.timing.load_policy import LoadChoice, PrefixPart, choose_prefix, hbm_only
from sim.timing.overlap import prefill_done_s, ready_offset_s
from sim.timing.priority_link import Direction, Hop, PriorityLink, estimate_s, through, through_quiet

PrefillCost = Callable[[int, int], float]  # (new tokens, cached tokens) -> seconds
_NAN = float("nan")


def all_done(env: simpy.Environment, evs: list[simpy.Event]) -> simpy.Event | None:
    """A plain event that fires when every one of `evs` has (None for none).

    Not ``env.all_of``: a Condition nested in another (``PrefixLoad.ready``'s any_of) loses its
    own checks when the outer one fires first, and would then never fire.
    """
    if len(evs) <= 1:
        return evs[0] if evs else None
    done = env.event()
    left = [len(evs)]

    def one(_e: simpy.Event) -> None:
        left[0] -= 1
        if left[0] == 0:
            succeed_last(done)  # `evs` are fresh events: this is the sole (so the last) callback of each

    for e in evs:
        e.callbacks.append(one)
    return done


class PrefixLoad:
    """One request's load of its chosen cached prefix, and how its prefill overlaps it."""

    def __init__(self, env: simpy.Environment, choice: LoadChoice, done: simpy.Event | None, layers: int,
                 overlap: str) -> None:
        self.env = env
        self.t0 = now = env._now  # env.now without the property call (a load per request)
        self.choice = choice
        self.layers = layers
        self.overlap = overlap
        self.t_done = now if done is None else _NAN
        self.done = done
        if done is not None:
            done.callbacks.append(self._finished)

    def _finished(self, _e: simpy.Event) -> None:
        self.t_done = self.env.now

    @property
    def loading(self) -> bool:
        return self.t_done != self.t_done

    @property
    def load_s(self) -> float:
        """Seconds the load took (so far, while it runs)."""
        return (self.env.now if self.loading else self.t_done) - self.t0

    def ready(self) -> simpy.Event | None:
        """When the request may queue for its GPU: after the load (``none``), or layer-wise as soon
        as its compute would no longer stall on the load - estimated now from the chosen parts'
        load estimate - or when the load is in, whichever comes first. None: at once."""
        if not self.loading:
            return None
        assert self.done is not None
        if self.overlap == "none":
            return self.done
        early = ready_offset_s(self.choice.load_s, self.choice.prefill_s, self.layers, self.overlap)
        env = self.env
        # any_of; nobody reads its value (event_loop.timer: the same Timeout; env.timeout raises on < 0).
        # Its callback is the last on both: the timer is new, and nothing is added to `done` after it
        # (``prefill`` waits on `done` only for a load nobody called ready on).
        return first_of(env, [self.done, timer(env, early) if early >= 0 else env.timeout(early)], last=True)

    def prefill(self, prefill_s: float) -> Generator[simpy.Event, Any, None]:
        """The prefill, started now on the GPU: waits for the load where the layers need it (not
        after ``ready``, whose callback must stay the last on `done`).

        With the load's real duration D and the compute starting at s (both from the load's
        start) it ends at ``prefill_done_s(D, prefill_s, layers, overlap, start_s=s)``.
        """
        start = self.env.now - self.t0
        if self.loading:
            assert self.done is not None
            yield self.done
        end = self.t0 + prefill_done_s(self.t_done - self.t0, prefill_s, self.layers, self.overlap, start_s=start)
        yield self.env.timeout(max(0.0, end - self.env.now))


class NodeIO:
    def __init__(self, env: simpy.Environment, cfg, n_workers: int, gpus_per_worker: int, block_bytes: int,
                 layers: int) -> None:
        h, cache = cfg.hardware, cfg.cache
        share, cont = cache.writeback_share, cfg.network.contention
        self.env = env
        self.bb = block_bytes
        self.layers = max(1, layers)
        self.overlap = cache.load_overlap
        self.policy = cache.load_policy
        gw = gpus_per_worker

        def link(read_gb_s: float, write_gb_s: float) -> PriorityLink:
            return PriorityLink(env, read_gb_s * 1e9, write_gb_s * 1e9, writeback_share=share, contention=cont)

        self.pcie_in = [link(h.dram.bandwidth_gb_s * gw, h.dram.write_gb_s * gw) for _ in range(n_workers)]
        self.pcie_out = [link(h.dram.bandwidth_gb_s * gw, h.dram.write_gb_s * gw) for _ in range(n_workers)]
        bridge = h.host_bridge_gb_s
        self.bridge_in = link(bridge, bridge) if bridge > 0 else None
        self.bridge_out = link(bridge, bridge) if bridge > 0 else None
        self.nvme = link(h.ssd.bandwidth_gb_s, h.ssd.write_gb_s)
        self.dram_lat = h.dram.latency_us * 1e-6
        self.ssd_lat = h.ssd.latency_us * 1e-6
        self.recomputed_prefixes = 0
        self.recomputed_tokens = 0
        # each worker's paths, built once (nothing mutates them)
        self._in = [self._path(self.pcie_in[k], self.bridge_in, "read") for k in range(n_workers)]
        self._out = [self._path(self.pcie_out[k], self.bridge_out, "write") for k in range(n_workers)]
        self._ssd: tuple[Hop, ...] = ((self.nvme, "read"),)

    # ------------------------------------------------------------ paths
    @staticmethod
    def _path(pcie: PriorityLink, bridge: PriorityLink | None, d: Direction) -> tuple[Hop, ...]:
        return ((pcie, d),) if bridge is None else ((pcie, d), (bridge, d))

    def _dram_in(self, wk: int) -> tuple[Hop, ...]:
        return self._in[wk]

    def _dram_out(self, wk: int) -> tuple[Hop, ...]:
        return self._out[wk]

    def _ssd_in(self) -> tuple[Hop, ...]:
        return self._ssd

    # ------------------------------------------------------------ traffic
    def write_back(self, wk: int, hbm_to_dram: int, dram_to_ssd: int, wait: bool = True) -> list[simpy.Event]:
        """Demotions HBM -> DRAM and DRAM -> SSD (blocks): background writes, nobody waits for them
        unless the caller does (synchronous write-through). ``wait=False``: the caller will not
        wait, so no completion events are made (returns [])."""
        if not wait:
            if hbm_to_dram:
                through_quiet(self.env, self._dram_out(wk), hbm_to_dram * self.bb)
            if dram_to_ssd:
                self.nvme.serve_quiet(dram_to_ssd * self.bb, "write")
            return []
        evs = []
        if hbm_to_dram:
            evs.append(through(self.env, self._dram_out(wk), hbm_to_dram * self.bb))
        if dram_to_ssd:
            evs.append(self.nvme.serve(dram_to_ssd * self.bb, "write"))
        return evs

    def load(self, wk: int, dram_blocks: int, ssd_blocks: int) -> list[simpy.Event]:
        """Bring blocks from DRAM and SSD into worker wk's HBM (concurrently, each over its own link)."""
        evs = []
        if dram_blocks:
            evs.append(through(self.env, self._dram_in(wk), dram_blocks * self.bb, self.dram_lat))
        if ssd_blocks:
            evs.append(through(self.env, self._ssd_in(), ssd_blocks * self.bb, self.ssd_lat))
        return evs

    def prefetch(self, wk: int, dram_blocks: int, ssd_blocks: int) -> list[simpy.Event]:
        """Like ``load``, in the links' idle-priority class: served only while no demand read or
        write-back uses a link (``PriorityLink``), so it never delays them."""
        evs = []
        if dram_blocks:
            hops: list[Hop] = [(link, "prefetch") for link, _ in self._dram_in(wk)]
            evs.append(through(self.env, hops, dram_blocks * self.bb, self.dram_lat))
        if ssd_blocks:
            evs.append(through(self.env, [(self.nvme, "prefetch")], ssd_blocks * self.bb, self.ssd_lat))
        return evs

    def idle_load_s(self, wk: int, dram_blocks: int) -> float:
        """Seconds a DRAM -> HBM move of `dram_blocks` takes on idle links."""
        bw = min(link.read_bytes_s for link, _ in self._dram_in(wk))
        return self.dram_lat + dram_blocks * self.bb / bw

    def start_load(self, wk: int, tokens: Sequence[int], blocks: Sequence[int], input_tokens: int,
                   prefill_cost: PrefillCost) -> PrefixLoad:
        """The load step of one request (see the module docstring).

        ``tokens``: cached prefix tokens in HBM, DRAM, SSD (lookup order);
        ``blocks``: the DRAM and SSD blocks to move for the last two.
        """
        th, td, ts = tokens
        nd, ns = blocks
        if td == 0 and ts == 0 and nd == 0 and ns == 0:
            return PrefixLoad(self.env, hbm_only(th, input_tokens, prefill_cost, 3), None, self.layers, self.overlap)
        parts = [
            PrefixPart(th),
            PrefixPart(td, estimate_s(self._dram_in(wk), nd * self.bb, self.dram_lat)),
            PrefixPart(ts, estimate_s(self._ssd_in(), ns * self.bb, self.ssd_lat)),
        ]
        choice = choose_prefix(parts, input_tokens, prefill_cost, layers=self.layers, overlap=self.overlap,
                               policy=self.policy)
        if choice.recomputed:
            self.recomputed_prefixes += 1
            self.recomputed_tokens += choice.recomputed_tokens
        k = choice.parts_used
        evs = self.load(wk, nd if k >= 2 else 0, ns if k >= 3 else 0)
        return PrefixLoad(self.env, choice, all_done(self.env, evs), self.layers, self.overlap)

    # ------------------------------------------------------------ report
    def summary(self) -> dict:
        """Bytes moved per tier (read = tier -> GPU, write = into the tier) and recompute counts."""
        dram_r = sum(p.bytes["read"] + p.bytes["prefetch"] for p in self.pcie_in)
        dram_w = sum(p.bytes["write"] for p in self.pcie_out)
        return {
            "tier_io": {
                "dram": {"read_bytes": int(dram_r), "write_bytes": int(dram_w)},
                "ssd": {"read_bytes": int(self.nvme.bytes["read"] + self.nvme.bytes["prefetch"]),
                        "write_bytes": int(self.nvme.bytes["write"])},
            },
            "recomputed_prefixes": self.recomputed_prefixes,
            "recomputed_tokens": self.recomputed_tokens,
        }

    def busy_s(self) -> dict:
        return {
            "pcie_in": [p.busy_time for p in self.pcie_in],
            "pcie_out": [p.busy_time for p in self.pcie_out],
            "nvme": self.nvme.busy_time,
        }


__all__ = ["NodeIO", "PrefillCost", "PrefixLoad", "all_done"]
