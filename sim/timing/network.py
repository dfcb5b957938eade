"""Network model on a Topology: transfer times with jitter, tail slowdowns and link contention.

Public API (stable: the PD simulator builds on it; extend, do not rename)::

    net = Network.from_config(cfg, topo)             # or Network(topo, jitter_cv=..., seed=...)
    t = net.transfer_time(src, dst, nbytes, lanes=1)  # seconds; no SimPy (hit-rate-only path)
    ev = net.transfer(env, src, dst, nbytes, lanes=1) # simpy event that fires when the bytes arrived
    net.account(src, dst, nbytes, lanes=1)            # count the bytes only (traffic that costs no modelled time)
    net.send(env, src, dst, nbytes, lanes=1)          # background traffic: loads the links, nobody waits for it
    net.bytes_by_class      {"nvlink": bytes, "pcie": ..., "nic", "eic", "spine", "ssd"}
    net.transfers_by_class  {class: count}
    net.stats() -> dict     bytes/transfers by class, link busy seconds (contention), tail count

Endpoints are Topology names (``topo.gpu(g)``, ``topo.eic(r)``, ...).

Model of one transfer of ``nbytes`` from src to dst:

* uncontended: ``latency * L + nbytes / bottleneck * B`` where L and B are
  jitter factors and the bottleneck is the slowest edge of the path
  (per-GPU edges carry bytes / lanes, see sim.timing.topology).
* jitter: L and B are drawn independently from a lognormal with mean 1 and
  coefficient of variation ``jitter_cv``; with cv == 0 nothing is drawn and
  both are exactly 1.
* tail: with probability ``tail_prob`` the whole transfer is
  ``tail_multiplier`` times slower (a retransmit, a congested queue).
* contention (``transfer`` with ``contention=True``): after the latency,
  the bytes are served on every edge of the path at once; each directed
  edge is a processor-sharing link (sim.timing.fluid.FluidShare), so concurrent
  transfers split its bandwidth, and the transfer ends when its slowest
  edge has delivered. Links are full duplex (one FluidShare per direction)
  and created lazily, so 10,000 idle GPUs cost nothing. ``transfer_time``
  never models contention (it has no clock).

Randomness comes from one generator seeded by ``seed``, drawn in batches in
call order, so a run is reproducible per seed.
"""
from __future__ import annotations

import math

import numpy as np
import simpy

from sim.timing.fluid import FluidShare, link_share
from sim.timing.topology import LINK_CLASSES, Endpoint, Topology

_BATCH = 4096


class Network:
    """Transfers over a Topology; accounts bytes per link class."""

    def __init__(
        self,
        topo: Topology,
        *,
        jitter_cv: float = 0.0,
        tail_prob: float = 0.0,
        tail_multiplier: float = 10.0,
        contention: bool = True,
        seed: int = 0,
    ) -> None:
        if jitter_cv < 0 or not 0 <= tail_prob <= 1 or tail_multiplier < 1:
            raise ValueError("jitter_cv >= 0, 0 <= tail_prob <= 1 and tail_multiplier >= 1 required")
        self.topo = topo
        self.jitter_cv = float(jitter_cv)
        self.tail_prob = float(tail_prob)
        self.tail_multiplier = float(tail_multiplier)
        self.contention = bool(contention)
        self._rng = np.random.default_rng([int(seed), 0x6E6574])  # own stream: routing RNG stays independent
        self._sigma = math.sqrt(math.log1p(self.jitter_cv**2)) if self.jitter_cv > 0 else 0.0
        self._jit: np.ndarray = np.empty(0)
        self._jit_i = 0
        self._tail: np.ndarray = np.empty(0)
        self._tail_i = 0
        self._routes: dict[tuple, tuple] = {}  # (src, dst, lanes) -> (path, latency_s, bottleneck, per-edge info)
        self._env: simpy.Environment | None = None
        self._links: dict[tuple, FluidShare] = {}
        self.bytes_by_class: dict[str, int] = {c: 0 for c in LINK_CLASSES}
        self.transfers_by_class: dict[str, int] = {c: 0 for c in LINK_CLASSES}
        self.tail_events = 0
        self.transfers = 0

    @classmethod
    def from_config(cls, cfg, topo: Topology | None = None) -> Network:
        n = cfg.network
        return cls(
            topo if topo is not None else Topology.from_config(cfg),
            jitter_cv=n.jitter_cv, tail_prob=n.tail_prob, tail_multiplier=n.tail_multiplier,
            contention=n.contention, seed=cfg.seed,
        )

    # ------------------------------------------------------------ randomness
    def _factors(self) -> tuple[float, float]:
        """(latency factor, byte-time factor) of one transfer, tail included."""
        lf = bf = 1.0
        if self._sigma > 0:
            if self._jit_i + 2 > len(self._jit):
                s = self._sigma
                self._jit = self._rng.lognormal(-s * s / 2, s, _BATCH)
                self._jit_i = 0
            lf = float(self._jit[self._jit_i])
            bf = float(self._jit[self._jit_i + 1])
            self._jit_i += 2
        if self.tail_prob > 0:
            if self._tail_i >= len(self._tail):
                self._tail = self._rng.random(_BATCH)
                self._tail_i = 0
            if self._tail[self._tail_i] < self.tail_prob:
                lf *= self.tail_multiplier
                bf *= self.tail_multiplier
                self.tail_events += 1
            self._tail_i += 1
        return lf, bf

    # ------------------------------------------------------------ routes
    def _route(self, src: Endpoint, dst: Endpoint, lanes: int) -> tuple:
        key = (src, dst, lanes)
        r = self._routes.get(key)
        if r is None:
            topo = self.topo
            path = topo.path(src, dst)
            edges = []
            lat, bott = 0.0, float("inf")
            for u, v in path:
                a = topo.edge(u, v)
                lat += a.latency_s
                share = 1.0 / lanes if a.per_gpu else 1.0  # fraction of the bytes this edge carries
                bott = min(bott, a.bytes_s / share)
                edges.append(((u, v), a, share))
            r = (path, lat, bott, tuple(edges))
            self._routes[key] = r
        return r

    def _account(self, edges, nbytes: float) -> None:
        self.transfers += 1
        nb = int(nbytes)
        for _e, a, _s in edges:
            self.bytes_by_class[a.cls] += nb
            self.transfers_by_class[a.cls] += 1

    # ------------------------------------------------------------ transfers
    def account(self, src: Endpoint, dst: Endpoint, nbytes: float, lanes: int = 1) -> None:
        """Count the bytes on the path's link classes without modelling time (no random draw)."""
        if nbytes > 0 and src != dst:
            self._account(self._route(src, dst, lanes)[3], nbytes)

    def transfer_time(self, src: Endpoint, dst: Endpoint, nbytes: float, lanes: int = 1) -> float:
        """Seconds to move `nbytes` (jitter and tail drawn, no contention); accounts the bytes."""
        if nbytes <= 0 or src == dst:
            return 0.0
        _p, lat, bott, edges = self._route(src, dst, lanes)
        self._account(edges, nbytes)
        lf, bf = self._factors()
        return lat * lf + nbytes / bott * bf

    def send(self, env: simpy.Environment, src: Endpoint, dst: Endpoint, nbytes: float, lanes: int = 1) -> None:
        """Background traffic (write-backs, demotions): accounts the bytes and, with contention,
        occupies the path's links so that concurrent transfers slow down. Nobody waits for it,
        so its latency and jitter are irrelevant and not drawn."""
        if nbytes <= 0 or src == dst:
            return
        edges = self._route(src, dst, lanes)[3]
        self._account(edges, nbytes)
        if not self.contention:
            return
        if env is not self._env:
            self._env = env
            self._links = {}
        links = self._links
        for e, a, share in edges:
            link = links.get(e)
            if link is None:
                link = links[e] = link_share(env, a.bytes_s, True)
            link.serve(nbytes * share)

    def transfer(self, env: simpy.Environment, src: Endpoint, dst: Endpoint, nbytes: float,
                 lanes: int = 1) -> simpy.Event:
        """An event that fires when `nbytes` sent now from src have arrived at dst."""
        if nbytes <= 0 or src == dst:
            return env.timeout(0)
        _p, lat, bott, edges = self._route(src, dst, lanes)
        self._account(edges, nbytes)
        lf, bf = self._factors()
        if not self.contention:
            return env.timeout(lat * lf + nbytes / bott * bf)
        if env is not self._env:  # links belong to one simulation clock
            self._env = env
            self._links = {}
        done = env.event()
        links = self._links
        size = nbytes * bf

        def finish(_e: simpy.Event) -> None:
            done.succeed()

        def start(_ev: simpy.Event | None = None) -> None:
            evs = []
            for e, a, share in edges:
                link = links.get(e)
                if link is None:
                    link = links[e] = link_share(env, a.bytes_s, True)
                evs.append(link.serve(size * share))
            if len(evs) == 1:
                evs[0].callbacks.append(finish)
            else:
                env.all_of(evs).callbacks.append(finish)

        d = lat * lf
        if d > 0:
            env.timeout(d).callbacks.append(start)
        else:
            start()
        return done

    # ------------------------------------------------------------ report
    def link_busy_s(self) -> dict[str, float]:
        """Summed busy seconds of the contended links, per class (0 without contention)."""
        out = {c: 0.0 for c in LINK_CLASSES}
        for (u, v), link in self._links.items():
            out[self.topo.edge(u, v).cls] += link.busy_time
        return out

    def stats(self) -> dict:
        return {
            "bytes_by_class": dict(self.bytes_by_class),
            "transfers_by_class": dict(self.transfers_by_class),
            "transfers": self.transfers,
            "tail_events": self.tail_events,
            "links_instantiated": len(self._links),
            "link_busy_s": self.link_busy_s(),
        }
