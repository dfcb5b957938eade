"""A storage or PCIe link with two traffic classes: foreground reads and background write-backs.

Both classes are processor-sharing servers (``sim.timing.fluid.FluidShare``):
no per-byte events, one event per arrival and per departure. Within a class
the active transfers split the class's bandwidth equally. Between the
classes the split is a fixed priority share, ``cache.writeback_share`` = w:

* reads active and writes active: reads share ``(1 - w) x read bandwidth``,
  writes share ``w x write bandwidth``;
* only one class active: it has the link to itself (its full bandwidth).

Read and write bandwidth differ on real devices (an NVMe drive writes at
about half its read rate), so each class has its own figure. A change in one
class (an arrival, a departure) re-times the other at the same instant.

The share models a device or driver that favours reads (NVMe weighted
round-robin arbitration, an I/O scheduler's read priority) while write-backs
still progress, so they never starve - which is why w must lie strictly
between 0 and 1. With ``contention=False`` every transfer gets its class's
full bandwidth (the uncontended what-if).

A third class, ``prefetch``, is served only while the link is otherwise idle
(no read and no write-back active; then at the read bandwidth, split among
the prefetches) and paused the moment either class starts: background
warm-up that demand reads and write-backs never wait behind.

``through(...)``: a transfer that crosses several links (a GPU's PCIe link
and then the node's host bridge) is served on all of them at once and ends
when the last one has delivered it - the same approximation as
``sim.timing.network.Network.transfer``. It is not max-min fair: a transfer
held back by one link still takes its equal share of the others, so
contention on the non-binding link is slightly overstated.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import simpy

from sim.timing.event_loop import succeed_last, timer
from sim.timing.fluid import FluidShare

Direction = Literal["read", "write", "prefetch"]


class PriorityLink:
    """One link: ``read`` and ``write`` processor-sharing classes with a write-back share."""

    def __init__(self, env: simpy.Environment, read_bytes_s: float, write_bytes_s: float = 0.0, *,
                 writeback_share: float = 0.1, contention: bool = True) -> None:
        if read_bytes_s <= 0:
            raise ValueError(f"read bandwidth must be positive, got {read_bytes_s}")
        if not 0.0 < writeback_share < 1.0:
            raise ValueError(f"writeback_share must be in (0, 1), got {writeback_share}")
        self.env = env
        self.read_bytes_s = float(read_bytes_s)
        self.write_bytes_s = float(write_bytes_s) if write_bytes_s > 0 else float(read_bytes_s)
        self.share = float(writeback_share)
        self.contention = contention
        self.read = FluidShare(env, self._read_rate)
        self.write = FluidShare(env, self._write_rate)
        self.prefetch = FluidShare(env, self._prefetch_rate, pausable=True)

        # An idle class's retime changes nothing (its rate is 0, it has no timer, and its clock is reset
        # by the next join's advance), so only a busy one is called: a change per transfer start and end.
        read, write, prefetch = self.read, self.write, self.prefetch

        def read_changed() -> None:
            if write._heap:
                write.retime()
            if prefetch._heap:
                prefetch.retime()

        def write_changed() -> None:
            if read._heap:
                read.retime()
            if prefetch._heap:
                prefetch.retime()

        self.read.on_change = read_changed
        self.write.on_change = write_changed
        self.bytes = {"read": 0.0, "write": 0.0, "prefetch": 0.0}

    # the rates read the other class's job heap (``active`` without the property call: a rate per change)
    def _read_rate(self, n: int, _load: float) -> float:
        bw = self.read_bytes_s * (1.0 - self.share) if self.write._heap else self.read_bytes_s
        return bw / n if self.contention else self.read_bytes_s

    def _write_rate(self, n: int, _load: float) -> float:
        bw = self.write_bytes_s * self.share if self.read._heap else self.write_bytes_s
        return bw / n if self.contention else self.write_bytes_s

    def _prefetch_rate(self, n: int, _load: float) -> float:
        if self.read._heap or self.write._heap:
            return 0.0
        return self.read_bytes_s / n if self.contention else self.read_bytes_s

    def cls(self, direction: Direction) -> FluidShare:
        if direction == "prefetch":
            return self.prefetch
        return self.read if direction == "read" else self.write

    def serve(self, nbytes: float, direction: Direction = "read") -> simpy.Event:
        """An event that fires when `nbytes` of this class have crossed the link."""
        self.bytes[direction] += nbytes if nbytes > 0.0 else 0.0  # max(0.0, nbytes) without the call
        return (self.read if direction == "read" else self.cls(direction)).serve(nbytes)

    def serve_quiet(self, nbytes: float, direction: Direction = "write") -> None:
        """``serve`` without a completion event (nobody waits for this transfer)."""
        self.bytes[direction] += nbytes if nbytes > 0.0 else 0.0  # max(0.0, nbytes) without the call
        (self.write if direction == "write" else self.cls(direction)).serve_quiet(nbytes)

    def rate_now(self, direction: Direction = "read") -> float:
        """Bytes/s a transfer of this class starting now would get (the share it would have now)."""
        if not self.contention:
            return self.read_bytes_s if direction == "read" else self.write_bytes_s
        if direction == "read":
            bw = self.read_bytes_s * (1.0 - self.share) if self.write._heap else self.read_bytes_s
            return bw / (len(self.read._heap) + 1)
        bw = self.write_bytes_s * self.share if self.read._heap else self.write_bytes_s
        return bw / (len(self.write._heap) + 1)

    @property
    def active(self) -> int:
        return self.read.active + self.write.active

    @property
    def busy_time(self) -> float:
        """Seconds at least one class was active (an upper bound on the union: the classes
        overlap, so this is the larger of the two)."""
        return max(self.read.busy_time, self.write.busy_time)


Hop = tuple[PriorityLink, Direction]


def through(env: simpy.Environment, hops: Sequence[Hop], nbytes: float, latency_s: float = 0.0) -> simpy.Event:
    """A transfer of `nbytes` over every hop at once after `latency_s`; fires when all have served it."""
    done = env.event()
    if nbytes <= 0 or not hops:
        done.succeed()
        return done

    def finish(_e: simpy.Event) -> None:
        succeed_last(done)  # the only callback of a link's event, the last of an all_of's

    def start(_e: simpy.Event | None = None) -> None:
        evs = [link.serve(nbytes, d) for link, d in hops]
        (evs[0] if len(evs) == 1 else env.all_of(evs)).callbacks.append(finish)

    if latency_s > 0:
        timer(env, latency_s).callbacks.append(start)
    else:
        start()
    return done


def through_quiet(env: simpy.Environment, hops: Sequence[Hop], nbytes: float) -> None:
    """``through`` without latency for a transfer nobody waits for (a background write-back): the
    same service on every hop, without the completion events (they would have no callbacks)."""
    if nbytes <= 0:
        return
    for link, d in hops:
        link.serve_quiet(nbytes, d)


def estimate_s(hops: Sequence[Hop], nbytes: float, latency_s: float = 0.0) -> float:
    """Time a transfer starting now would take if every hop kept its current state:
    latency + bytes / the smallest share it would get on any hop. 0 bytes -> 0."""
    if nbytes <= 0 or not hops:
        return 0.0
    rate = 0.0
    for i, (link, d) in enumerate(hops):  # min(...) without the generator (once per request and tier)
        r = link.rate_now(d)
        if i == 0 or r < rate:
            rate = r
    return latency_s + nbytes / rate


__all__ = ["Direction", "Hop", "PriorityLink", "estimate_s", "through", "through_quiet"]
