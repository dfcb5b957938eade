"""Network model on a Topology: transfer times with jitter, tail slowdowns and link contention.

Public API (stable: the PD simulator builds on it; extend, do not rename)::

    net = Network.from_config(cfg, topo)             # or Network(topo, jitter_cv=..., seed=...)
    t = net.transfer_time(src, dst, nbytes, lanes=1)  # seconds; no SimPy (hit-rate-only path)
    ev = net.transfer(env, src, dst, nbytes, lanes=1) # simpy event that fires when the bytes arrived
    net.account(src, dst, nbytes, lanes=1)            # count the bytes only (traffic that costs no modelled time)
    net.send(env, src, dst, nbytes, lanes=1)          # background traffic: loads the links, nobody waits for it
    ev = net.prefetch(env, src, dst, nbytes, lanes=1) # idle-only: moves only while no read/write-back uses a link
    t = net.idle_s(src, dst, nbytes, lanes=1)         # seconds on an idle path (nothing drawn or counted)
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
* read-first links (``writeback_share`` set, ``cache.writeback_share`` in
  ``from_config``): every directed edge is a
  ``sim.timing.priority_link.PriorityLink``; ``transfer`` (someone waits:
  loads, KV transfers) is the read class, ``send`` (background write-backs)
  the write class, which gets only ``writeback_share`` of a link while
  foreground traffic is on it. ``None``: one class, plain processor sharing.
* host bridge (``host_bridge_bytes_s`` > 0, ``hardware.host_bridge_gb_s``):
  a path over a GPU <-> host-DRAM PCIe edge also crosses its node's bridge
  (one per direction, shared by all the node's GPUs, carrying all the bytes;
  not a topology edge, so its bytes are not counted in a link class).

Randomness comes from one generator seeded by ``seed``, drawn in batches in
call order, so a run is reproducible per seed.
"""
from __future__ import annotations

import math

import numpy as np
import simpy

from sim.timing.event_loop import hop_last, succeed_last, timer
from sim.timing.fluid import FluidShare, link_share
from sim.timing.priority_link import PriorityLink
from sim.timing.topology import LINK_CLASSES, EdgeAttrs, Endpoint, Topology

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
        writeback_share: float | None = None,
        host_bridge_bytes_s: float = 0.0,
    ) -> None:
        if jitter_cv < 0 or not 0 <= tail_prob <= 1 or tail_multiplier < 1:
            raise ValueError("jitter_cv >= 0, 0 <= tail_prob <= 1 and tail_multiplier >= 1 required")
        self.topo = topo
        self.jitter_cv = float(jitter_cv)
        self.tail_prob = float(tail_prob)
        self.tail_multiplier = float(tail_multiplier)
        self.contention = bool(contention)
        self.writeback_share = writeback_share
        self.host_bridge_bytes_s = float(host_bridge_bytes_s)
        self._rng = np.random.default_rng([int(seed), 0x6E6574])  # own stream: routing RNG stays independent
        self._sigma = math.sqrt(math.log1p(self.jitter_cv**2)) if self.jitter_cv > 0 else 0.0
        self._jit: np.ndarray = np.empty(0)
        self._jit_i = 0
        self._tail: np.ndarray = np.empty(0)
        self._tail_i = 0
        # (src, dst, lanes) -> (path, latency_s, bottleneck, per-edge info, served edges, [transfers, bytes]):
        # the counts are kept per route (two additions per transfer) and summed per link class when read
        self._routes: dict[tuple, tuple] = {}
        self._env: simpy.Environment | None = None
        self._links: dict[tuple, FluidShare | PriorityLink] = {}
        self.tail_events = 0

    @classmethod
    def from_config(cls, cfg, topo: Topology | None = None) -> Network:
        n = cfg.network
        return cls(
            topo if topo is not None else Topology.from_config(cfg),
            jitter_cv=n.jitter_cv, tail_prob=n.tail_prob, tail_multiplier=n.tail_multiplier,
            contention=n.contention, seed=cfg.seed, writeback_share=cfg.cache.writeback_share,
            host_bridge_bytes_s=cfg.hardware.host_bridge_gb_s * 1e9,
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
            served: list[tuple[tuple, EdgeAttrs | _Bridge, float]] = list(edges)
            if self.host_bridge_bytes_s > 0:
                for (u, v), a, _s in edges:
                    if a.cls == "pcie":  # GPU <-> host DRAM: the node's bridge carries all the bytes
                        dram = u if u[0] == "dram" else v
                        bridge = ("bridge", dram[1], "in" if u[0] == "dram" else "out")
                        served.append((bridge, _Bridge(self.host_bridge_bytes_s), 1.0))
                        bott = min(bott, self.host_bridge_bytes_s)
            r = (path, lat, bott, tuple(edges), tuple(served), [0, 0])
            self._routes[key] = r
        return r

    def _link(self, env: simpy.Environment, e: tuple, bytes_s: float) -> FluidShare | PriorityLink:
        if env is not self._env:  # links belong to one simulation clock
            self._env = env
            self._links = {}
        link = self._links.get(e)
        if link is None:
            if self.writeback_share is None:
                link = link_share(env, bytes_s, True)
            else:
                link = PriorityLink(env, bytes_s, writeback_share=self.writeback_share)
            self._links[e] = link
        return link

    def _serve(self, env: simpy.Environment, e: tuple, bytes_s: float, nbytes: float, write: bool) -> simpy.Event:
        link = self._link(env, e, bytes_s)
        if isinstance(link, PriorityLink):
            return link.serve(nbytes, "write" if write else "read")
        return link.serve(nbytes)

    def estimate_s(self, env: simpy.Environment, src: Endpoint, dst: Endpoint, nbytes: float,
                   lanes: int = 1) -> float:
        """Seconds a foreground transfer starting now would take if the links kept their current
        state: path latency + bytes / the smallest share it would get (no jitter drawn, nothing
        accounted). The load-or-recompute choice uses it."""
        if nbytes <= 0 or src == dst:
            return 0.0
        _p, lat, bott, _edges, served, _c = self._route(src, dst, lanes)
        if not self.contention:
            return lat + nbytes / bott
        worst = 0.0
        links = self._links if env is self._env else {}
        for e, a, share in served:
            link = links.get(e)
            if link is None:
                rate = a.bytes_s
            elif isinstance(link, PriorityLink):
                rate = link.rate_now("read")
            else:
                rate = link.rate_if_joined()
            worst = max(worst, nbytes * share / rate)
        return lat + worst

    @staticmethod
    def _account(route: tuple, nbytes: float) -> None:
        c = route[5]
        c[0] += 1
        c[1] += int(nbytes)

    @property
    def transfers(self) -> int:
        return sum(r[5][0] for r in self._routes.values())

    @property
    def bytes_by_class(self) -> dict[str, int]:
        """Bytes per link class: a transfer's bytes count once on each edge of its path."""
        return self._per_class(1)

    @property
    def transfers_by_class(self) -> dict[str, int]:
        return self._per_class(0)

    def _per_class(self, k: int) -> dict[str, int]:
        """A route counter (0 transfers, 1 bytes) summed over each edge of its path, per link class."""
        out = {c: 0 for c in LINK_CLASSES}
        for r in self._routes.values():
            v = r[5][k]
            for _e, a, _s in r[3]:
                out[a.cls] += v
        return out

    # ------------------------------------------------------------ transfers
    def account(self, src: Endpoint, dst: Endpoint, nbytes: float, lanes: int = 1) -> None:
        """Count the bytes on the path's link classes without modelling time (no random draw)."""
        if nbytes > 0 and src != dst:
            r = self._routes.get((src, dst, lanes))
            c = (r if r is not None else self._route(src, dst, lanes))[5]
            c[0] += 1
            c[1] += int(nbytes)

    def transfer_time(self, src: Endpoint, dst: Endpoint, nbytes: float, lanes: int = 1) -> float:
        """Seconds to move `nbytes` (jitter and tail drawn, no contention); accounts the bytes."""
        if nbytes <= 0 or src == dst:
            return 0.0
        route = self._route(src, dst, lanes)
        _p, lat, bott, edges, _served, _c = route
        self._account(route, nbytes)
        lf, bf = self._factors()
        return lat * lf + nbytes / bott * bf

    def send(self, env: simpy.Environment, src: Endpoint, dst: Endpoint, nbytes: float, lanes: int = 1) -> None:
        """Background traffic (write-backs, demotions): accounts the bytes and, with contention,
        occupies the path's links so that concurrent transfers slow down. Nobody waits for it,
        so its latency and jitter are irrelevant and not drawn."""
        if nbytes <= 0 or src == dst:
            return
        route = self._route(src, dst, lanes)
        self._account(route, nbytes)
        if not self.contention:
            return
        # serve_quiet: no completion event (nobody waits; it would be a queue entry calling nobody); a
        # PriorityLink serves it in its write-back class (its default), a shared link as any other flow
        for e, a, share in route[4]:
            self._link(env, e, a.bytes_s).serve_quiet(nbytes * share)

    def transfer(self, env: simpy.Environment, src: Endpoint, dst: Endpoint, nbytes: float,
                 lanes: int = 1) -> simpy.Event:
        """An event that fires when `nbytes` sent now from src have arrived at dst."""
        if nbytes <= 0 or src == dst:
            return env.timeout(0)
        route = self._route(src, dst, lanes)
        _p, lat, bott, _edges, served, _c = route
        self._account(route, nbytes)
        lf, bf = self._factors()
        if not self.contention:
            return env.timeout(lat * lf + nbytes / bott * bf)
        done = env.event()
        size = nbytes * bf

        def finish(_e: simpy.Event | None) -> None:
            succeed_last(done)  # the sole callback of a link's event, or the hop after the last of several

        def start(_ev: simpy.Event | None = None) -> None:
            evs = [self._serve(env, e, a.bytes_s, size * share, False) for e, a, share in served]
            if len(evs) == 1:
                evs[0].callbacks.append(finish)
                return
            # ``env.all_of(evs)`` without the Condition: the last link to deliver fires it one hop later
            # (the Condition's own queue entry), which ``hop_last`` elides when nothing else is due now
            left = [len(evs)]
            then = (finish,)

            def one(_e: simpy.Event) -> None:
                left[0] -= 1
                if not left[0]:
                    hop_last(env, then)

            for ev in evs:
                ev.callbacks.append(one)

        d = lat * lf
        if d > 0:
            timer(env, d).callbacks.append(start)
        else:
            start()
        return done

    def idle_s(self, src: Endpoint, dst: Endpoint, nbytes: float, lanes: int = 1) -> float:
        """Seconds `nbytes` take on an otherwise idle path: latency + bytes / bottleneck (nothing drawn or counted)."""
        if nbytes <= 0 or src == dst:
            return 0.0
        _p, lat, bott, _edges, _served, _c = self._route(src, dst, lanes)
        return lat + nbytes / bott

    def prefetch(self, env: simpy.Environment, src: Endpoint, dst: Endpoint, nbytes: float,
                 lanes: int = 1) -> simpy.Event:
        """Idle-only traffic (session prefetch): after the path latency the bytes are served on every
        edge's ``prefetch`` class, which moves only while no read or write-back is on that link, so it
        never slows a demand transfer. Bytes are counted; no jitter (nobody waits for it). Without
        contention, or with one-class links, it takes the uncontended time."""
        if nbytes <= 0 or src == dst:
            return env.timeout(0)
        route = self._route(src, dst, lanes)
        _p, lat, bott, _edges, served, _c = route
        self._account(route, nbytes)
        if not self.contention or self.writeback_share is None:
            return env.timeout(lat + nbytes / bott)
        done = env.event()

        def finish(_e: simpy.Event) -> None:
            done.succeed()

        def start(_ev: simpy.Event | None = None) -> None:
            evs = []
            for e, a, share in served:
                link = self._link(env, e, a.bytes_s)
                assert isinstance(link, PriorityLink)  # writeback_share set: every link has the idle class
                evs.append(link.serve(nbytes * share, "prefetch"))
            (evs[0] if len(evs) == 1 else env.all_of(evs)).callbacks.append(finish)

        if lat > 0:
            env.timeout(lat).callbacks.append(start)
        else:
            start()
        return done

    # ------------------------------------------------------------ report
    def link_busy_s(self) -> dict[str, float]:
        """Summed busy seconds of the contended links, per class (0 without contention)."""
        out = {c: 0.0 for c in LINK_CLASSES}
        for e, link in self._links.items():
            if e[0] == "bridge":
                continue
            out[self.topo.edge(*e).cls] += link.busy_time
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


class _Bridge:
    """Edge attributes of a node's host bridge (not a topology edge)."""

    __slots__ = ("bytes_s",)
    cls = "host_bridge"

    def __init__(self, bytes_s: float) -> None:
        self.bytes_s = bytes_s
