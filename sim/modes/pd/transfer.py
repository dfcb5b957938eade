"""KV transfer from a prefill replica to a decode replica: push, pull, pull_on_demand.

Bytes of a request = prompt tokens x KV bytes per token of the whole model
(``sim.config.kv_sizes.kv_bytes_per_token_total``; each of the replica's GPUs
sends its own shard in parallel, ``lanes`` in ``sim.timing.network``). Times come
from ``sim.timing.network.Network.transfer``: path latency + bytes over the
bottleneck of the path (NVLink inside a node, the GPUs' RDMA NICs inside a
rack, NIC + spine across racks), with jitter and link contention.

Every strategy needs the decode replica to *reserve* memory for the prompt's
KV before bytes move (decode replicas keep a FIFO of requests waiting for
memory; preempted requests of that replica come first).

* ``push``: the decode replica is chosen and its memory requested when the
  prefill *starts*. Without layer-wise pipelining the prefill replica pushes
  all the KV when the prefill is done. With ``layerwise`` it streams each
  chunk as it is computed: layer l's KV leaves as soon as layer l is done,
  so of a chunk computed in T_c with L layers, (L-1)/L of its bytes start
  T_c/L after the chunk started and the last layer's 1/L after the chunk
  ended - the request's KV is complete at ``max(T_c + X/L, T_c/L + X)``
  for an uncontended transfer time X. The cached prefix is sent as soon as
  the memory is granted. Memory granted only after the prefill finished
  means one transfer of everything.
* ``pull``: when the prefill is done the decode replica is chosen; it pulls
  the KV when it has memory *and* a batch slot (granted-but-unjoined
  requests count against ``max_seqs``), so nothing overlaps the prefill.
* ``pull_on_demand``: like pull, but the KV is pulled in ``layer_groups``
  groups in layer order; the request joins the batch when the first group
  is in, and its first decode iteration cannot finish before
  ``1/layer_groups`` of an iteration after the last group arrived (the
  attention of layer group g needs group g).

The prefill replica keeps its copy referenced (not evictable) until the
whole KV has left; then it becomes ordinary prefix cache.

Reported per run: bytes, flows, requests moved, the summed flow time, the
part of it that delayed the first token (``exposed``) and the hidden share
``1 - exposed / flow time``; bytes and counts by locality (same node, same
rack, cross rack).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import ClassVar, Protocol

import simpy

from sim.replica.engine import BatchingReplica
from sim.replica.request import Req
from sim.timing.network import Network
from sim.timing.topology import Endpoint

LOCALITY = ("same_node", "same_rack", "cross_rack")


class TransferHost(Protocol):
    """What a transfer strategy needs from the deployment it moves KV for (``PDSim``)."""

    env: simpy.Environment
    net: Network
    lanes: int  # GPUs per replica: each sends its own shard
    kv_bytes_per_token: float
    n_layers: int

    @property
    def decode(self) -> Sequence[BatchingReplica]:
        """The decode replicas, by index."""
        ...

    @property
    def prefill_ep(self) -> Sequence[Endpoint]:
        """Network endpoint of every prefill replica."""
        ...

    @property
    def decode_ep(self) -> Sequence[Endpoint]:
        """Network endpoint of every decode replica."""
        ...

    def choose_decode(self, r: Req) -> int:
        """The decode replica for r (the decode router)."""
        ...

    def locality(self, p: int, d: int) -> int:
        """0 same node, 1 same rack, 2 cross rack: prefill replica p vs decode replica d."""
        ...

    def deliver(self, r: Req, release: bool) -> None:
        """r's KV is usable at its decode replica; ``release`` frees the prefill replica's copy."""
        ...

    def release_prefill(self, r: Req) -> None:
        """The whole KV has left: the prefill replica's copy becomes ordinary prefix cache."""
        ...

    def finish_at_prefill(self, r: Req) -> None:
        """r needs no decode (one output token): done when its prefill is."""
        ...


class TransferStats:
    def __init__(self) -> None:
        self.bytes = 0.0
        self.flows = 0
        self.requests = 0
        self.flow_s = 0.0
        self.by_locality = {k: {"requests": 0, "bytes": 0.0} for k in LOCALITY}

    def to_dict(self) -> dict:
        return {
            "bytes": int(self.bytes), "flows": self.flows, "requests": self.requests,
            "flow_s": self.flow_s,
            "by_locality": {k: {"requests": v["requests"], "bytes": int(v["bytes"])}
                            for k, v in self.by_locality.items()},
        }


class KVTransfer:
    """Base: decode memory reservations, flows, delivery. Subclasses decide when bytes move."""

    name: ClassVar[str] = "base"
    needs_slot: ClassVar[bool] = False  # a grant also needs a free batch slot (pull)

    def __init__(self, sim: TransferHost, layerwise: bool = False, layer_groups: int = 4) -> None:
        self.sim = sim
        self.env: simpy.Environment = sim.env
        self.layerwise = layerwise
        self.layers = max(1, sim.n_layers)
        self.groups = max(1, layer_groups)
        self.pending: list[deque[Req]] = [deque() for _ in sim.decode]
        self.stats = TransferStats()

    # ---------------------------------------------------------- hooks from the simulator
    def on_prefill_start(self, r: Req) -> None:
        pass

    def on_chunk(self, r: Req, n: int, t0: float, dur: float) -> None:
        pass

    def on_prefill_done(self, r: Req) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def granted(self, r: Req) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def on_memory_freed(self, d: int) -> None:
        if self.pending[d]:
            self._grant(d)

    # ---------------------------------------------------------- reservations
    def request_memory(self, r: Req, d: int) -> None:
        r.dec = d
        self.pending[d].append(r)
        self._grant(d)

    def _grant(self, d: int) -> None:
        eng = self.sim.decode[d]
        q = self.pending[d]
        while q:
            if eng.resume_q:
                return  # preempted requests of this replica get memory back first
            r = q[0]
            if eng.grant_room() < r.inp:
                return
            if self.needs_slot and len(eng.running) + eng.incoming >= eng.max_seqs:
                return
            q.popleft()
            eng.grant(r.inp)
            r.mem = r.inp
            r.ctx = r.inp
            r.dec_reserved = True
            r.t_grant = self.env.now
            eng.incoming += 1
            self.granted(r)

    # ---------------------------------------------------------- bytes
    def flow(self, r: Req, tokens: float, then=None) -> simpy.Event:
        """Move `tokens` of r's KV prefill -> decode now; `then(r)` runs on arrival."""
        sim = self.sim
        nbytes = tokens * sim.kv_bytes_per_token
        t0 = self.env.now
        if r.t_flow0 != r.t_flow0:
            r.t_flow0 = t0
        r.flows += 1
        ev = sim.net.transfer(self.env, sim.prefill_ep[r.pre], sim.decode_ep[r.dec], nbytes, sim.lanes)
        st = self.stats
        st.bytes += nbytes
        st.flows += 1
        r.xfer_bytes += nbytes

        def done(_e, r=r, t0=t0):
            dt = self.env.now - t0
            r.xfer_s += dt
            st.flow_s += dt
            r.flows -= 1
            if then is not None:
                then(r)

        ev.callbacks.append(done)
        return ev

    def _count(self, r: Req) -> None:
        st = self.stats
        st.requests += 1
        loc = st.by_locality[LOCALITY[self.sim.locality(r.pre, r.dec)]]
        loc["requests"] += 1
        loc["bytes"] += r.inp * self.sim.kv_bytes_per_token

    def send_rest(self, r: Req) -> None:
        """Everything not sent yet, in one flow; deliver when no flow is left."""
        rest = r.inp - r.sent_tokens
        r.sent_tokens = r.inp
        if rest > 0:
            self.flow(r, rest, self._maybe_deliver)
        else:
            self._maybe_deliver(r)

    def _maybe_deliver(self, r: Req) -> None:
        if r.flows == 0 and r.prefill_done and r.sent_tokens >= r.inp:
            self._count(r)
            self.sim.deliver(r, release=True)


class Push(KVTransfer):
    name = "push"

    def on_prefill_start(self, r: Req) -> None:
        if r.out <= 1:
            return  # the prefill's token is the whole answer: nothing to decode
        self.request_memory(r, self.sim.choose_decode(r))

    def granted(self, r: Req) -> None:
        if r.prefill_done:
            self.send_rest(r)
        elif self.layerwise and r.t_pstart == r.t_pstart and (r.done > 0 or r.t_pstart < self.env.now):
            # Granted mid-prefill: what is already in HBM (cached prefix, finished chunks) goes now.
            have = r.cached + r.done
            if have > 0:
                r.sent_tokens = have
                self.flow(r, have, self._maybe_deliver)
        # Granted as the prefill starts: the cached prefix rides with the first chunk's stream.

    def on_chunk(self, r: Req, n: int, t0: float, dur: float) -> None:
        if self.layerwise and r.dec_reserved:
            head = 0
            if r.sent_tokens == 0:
                head = r.cached  # the cached prefix, already in HBM
            r.sent_tokens += head + n
            r.flows += 1  # the stream below, until its last layer is out
            _Stream(self, r, head, n, t0, dur)

    def on_prefill_done(self, r: Req) -> None:
        r.prefill_done = True
        if r.out <= 1:
            self.sim.finish_at_prefill(r)
        elif r.dec_reserved:
            self.send_rest(r)
        # else: send_rest runs when the decode replica grants the memory


class Pull(KVTransfer):
    name = "pull"
    needs_slot = True

    def on_prefill_done(self, r: Req) -> None:
        r.prefill_done = True
        if r.out <= 1:
            self.sim.finish_at_prefill(r)
            return
        self.request_memory(r, self.sim.choose_decode(r))

    def granted(self, r: Req) -> None:
        self.send_rest(r)


class PullOnDemand(Pull):
    name = "pull_on_demand"

    def granted(self, r: Req) -> None:
        r.sent_tokens = r.inp
        first = r.inp / self.groups
        r.kv_full = self.env.event()
        self.flow(r, first, self._first_group)

    def _first_group(self, r: Req) -> None:
        self._count(r)
        if self.groups > 1:
            self.flow(r, r.inp - r.inp / self.groups, self._last_group)
            self.sim.deliver(r, release=False)  # joins now; layers keep arriving
        else:
            self._last_group(r)
            self.sim.deliver(r, release=False)

    def _last_group(self, r: Req) -> None:
        r.t_full = self.env.now
        assert r.kv_full is not None  # set in granted()
        r.kv_full.succeed()
        self.sim.release_prefill(r)


class _Stream:
    """One chunk's layer-wise push (callbacks, no SimPy process: it runs once per chunk).

    Layer l of the chunk leaves when layer l is computed. One contended
    flow carries the first L-1 layers (and any cached prefix) from T_c/L
    after the chunk started; the last layer's 1/L follows once the chunk
    ended and that flow arrived, at the path's uncontended speed - it is
    1/L of the bytes, so a contended flow of its own would cost events for
    no visible difference.
    """

    __slots__ = ("tr", "r", "head", "n", "end")

    def __init__(self, tr: Push, r: Req, head: int, n: int, t0: float, dur: float) -> None:
        self.tr, self.r, self.head, self.n, self.end = tr, r, head, n, t0 + dur
        tr.env.timeout(dur / tr.layers).callbacks.append(self._layer0)

    def _layer0(self, _e) -> None:  # layer 0 is done
        L = self.tr.layers
        self.tr.flow(self.r, self.head + self.n * (L - 1) / L, self._first_in)

    def _first_in(self, r: Req) -> None:
        """The first L-1 layers arrived; the last one leaves when the chunk ends (or now, if it has)."""
        tr = self.tr
        sim, env = tr.sim, tr.env
        last = self.n / tr.layers * sim.kv_bytes_per_token
        tail = sim.net.transfer_time(sim.prefill_ep[r.pre], sim.decode_ep[r.dec], last, sim.lanes)
        tr.stats.bytes += last
        r.xfer_bytes += last
        # the stream's flow time: its first flow (counted in flow()) plus the tail beyond it
        r.xfer_s += tail
        tr.stats.flow_s += tail
        env.timeout(max(self.end, env.now) + tail - env.now).callbacks.append(self._done)

    def _done(self, _e) -> None:
        self.r.flows -= 1
        self.tr._maybe_deliver(self.r)


TRANSFERS: dict[str, type[KVTransfer]] = {c.name: c for c in (Push, Pull, PullOnDemand)}


def make_transfer(name: str, sim: TransferHost, layerwise: bool, layer_groups: int) -> KVTransfer:
    try:
        cls = TRANSFERS[name]
    except KeyError:
        raise KeyError(f"unknown KV transfer {name!r} (known: {', '.join(TRANSFERS)})") from None
    return cls(sim, layerwise=layerwise, layer_groups=layer_groups)


__all__ = [
    "LOCALITY", "TRANSFERS", "KVTransfer", "Pull", "PullOnDemand", "Push", "TransferHost", "TransferStats",
    "make_transfer",
]
