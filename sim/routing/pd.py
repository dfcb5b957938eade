"""PD routing: the views of prefill and decode replicas, the PD-only routers, and their driver.

PD replicas are routed with the same registry as nodes and clusters: the
prefill view is a node view (a replica's radix-tree match is its HBM
prefix, its outstanding prefill requests its load) that also shows the
queued prefill tokens; the decode view's load is the prompt tokens a
replica holds, and its least-loaded replica is the lightest one with room
for the request. A PD view is a snapshot taken when a request is routed
(``ReplicaRouter.choose``), so it knows that request.

* ``cache_aware`` (prefill): radix-matched tokens - load_penalty x queued prefill tokens;
* ``rack_local`` (decode): the lightest decode replica with room in the prefill's rack, else anywhere;
* ``least_loaded`` (decode, sim.routing.blind) reads the decode view's ``least``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sim.routing.base import Blocks, Router
from sim.routing.node import RouteState
from sim.routing.registry import make, register


class RoutedRequest(Protocol):
    i: int
    inp: int  # prompt tokens
    blocks: list[int]
    sess: int
    pre: int  # prefill replica (decode routing only)


class PrefixTree(Protocol):
    def match(self, blocks: Sequence[int]) -> int:
        """Cached leading blocks of `blocks`."""
        ...


class PrefillReplica(Protocol):
    outstanding: int  # requests routed here, prefill not finished
    load_tokens: int  # prefill tokens queued or in progress


class PrefillView(RouteState):
    """Prefill replicas as a node view, plus their queued prefill tokens."""

    def __init__(self, replicas: Sequence[PrefillReplica], trees: Sequence[PrefixTree], block_tokens: int,
                 seed: int = 0) -> None:
        self.replicas = list(replicas)
        self.trees = list(trees)  # replica w's prefix cache
        self.block_tokens = block_tokens
        self._inp = 0
        super().__init__(len(self.replicas), np.zeros(len(self.replicas), dtype=np.int64), self._match, seed=seed)

    def _match(self, w: int, blocks: Blocks) -> int:
        return self.trees[w].match(blocks)

    def snapshot(self, r: RoutedRequest) -> None:
        for w, s in enumerate(self.replicas):  # P is small
            self.load[w] = s.outstanding
        self._inp = r.inp

    def queued_tokens(self, w: int) -> int:
        return self.replicas[w].load_tokens

    def input_tokens(self, req: int) -> int:
        return self._inp


class DecodeReplica(Protocol):
    prompt_kv: int  # prompt tokens held

    def grant_room(self) -> int: ...


class RackMap(Protocol):
    def rack_of(self, g: int) -> int: ...


class DecodeSide(Protocol):
    """What the decode view reads from the PD simulator."""

    @property
    def decode(self) -> Sequence[DecodeReplica]: ...

    @property
    def decode_by_rack(self) -> Sequence[Sequence[int]]:
        """Rack -> decode replica numbers."""
        ...

    @property
    def prefill_gpu(self) -> Sequence[int]: ...

    @property
    def topo(self) -> RackMap: ...


class DecodeView:
    """Decode replicas: load = prompt tokens held; the least loaded is the lightest with room for the request."""

    def __init__(self, side: DecodeSide, seed: int = 0) -> None:
        self.side = side
        self.rng = np.random.default_rng(seed)
        self._r: RoutedRequest | None = None

    def snapshot(self, r: RoutedRequest) -> None:
        self._r = r

    def _request(self) -> RoutedRequest:
        if self._r is None:
            raise RuntimeError("the decode view is read before a request is routed (snapshot)")
        return self._r

    @property
    def n_workers(self) -> int:
        return len(self.side.decode)

    @property
    def load(self) -> npt.NDArray[np.int64]:
        return np.array([e.prompt_kv for e in self.side.decode], dtype=np.int64)

    def mean(self) -> float:
        return float(self.load.mean())

    def need(self) -> int:
        """Tokens the request's KV takes on its decode replica."""
        return self._request().inp

    def local(self) -> Sequence[int]:
        """The decode replicas in the rack of the request's prefill replica."""
        s = self.side
        return s.decode_by_rack[s.topo.rack_of(s.prefill_gpu[self._request().pre])]

    def least_used(self, cands: Sequence[int], need: int) -> int:
        """Among `cands`, the replica holding the fewest prompt tokens that can grant `need` tokens now.

        -1 if none can. (The free-memory check runs only for a candidate that would become the best.)
        """
        dec = self.side.decode
        best = -1
        best_load: int | None = None
        for d in cands:
            e = dec[d]
            load = e.prompt_kv
            if (best_load is None or load < best_load) and (need <= 0 or e.grant_room() >= need):
                best, best_load = d, load
        return best

    def least(self) -> int:
        every = range(self.n_workers)
        d = self.least_used(every, self.need())
        return d if d >= 0 else self.least_used(every, 0)


@register
class CacheAware(Router[PrefillView]):
    """argmax over prefill replicas of (radix-matched tokens - load_penalty x queued prefill tokens).

    A matched token saves about one token of prefill compute and a queued
    token delays the request by about one token of compute, so a penalty
    of 1 weighs both alike; ties go to the lighter, then the least recently
    chosen replica (idle replicas take turns instead of the first one
    taking everything).
    """

    name = "cache_aware"
    scopes = frozenset({"prefill"})

    def __init__(self, view: PrefillView, load_penalty: float = 1.0, **params: Any) -> None:
        super().__init__(view)
        self.penalty = float(load_penalty)
        self.last = [0] * view.n_workers  # when each replica was last chosen (ties: least recent wins)
        self.n = 0

    def choose(self, req: int, blocks: Blocks, session: int) -> int:
        s = self.s
        bt, pen, last, inp = s.block_tokens, self.penalty, self.last, s.input_tokens(req)
        best = 0
        best_key: tuple[float, int, int] | None = None
        for w in range(s.n_workers):
            q = s.queued_tokens(w)
            hit = min(s.hbm_prefix(w, blocks) * bt, inp)
            key = (hit - pen * q, -q, -last[w])
            if best_key is None or key > best_key:
                best, best_key = w, key
        self.n += 1
        last[best] = self.n
        return best


@register
class RackLocal(Router[DecodeView]):
    """The lightest decode replica with room in the prefill's rack; other racks only when it has none."""

    name = "rack_local"
    scopes = frozenset({"decode"})

    def choose(self, req: int, blocks: Blocks, session: int) -> int:
        s = self.s
        local = s.local()
        need = s.need()
        d = s.least_used(local, need)
        if d < 0:
            d = s.least_used(range(s.n_workers), need)
        if d < 0:  # nobody has room now: wait in the own rack
            d = s.least_used(local, 0)
        return d


class ReplicaRouter:
    """A registered router choosing PD replicas: snapshot the view for the request, then choose."""

    def __init__(self, router: Router[Any], view: PrefillView | DecodeView) -> None:
        self.router = router
        self.view = view

    def choose(self, r: RoutedRequest) -> int:
        self.view.snapshot(r)
        return int(self.router.choose(r.i, r.blocks, r.sess))


def make_replica_router(name: str, scope: str, view: PrefillView | DecodeView, **params: Any) -> ReplicaRouter:
    """Router `name` of scope ``prefill`` or ``decode`` over `view` (an InputError names the config key)."""
    return ReplicaRouter(make(name, scope, view, **params), view)
