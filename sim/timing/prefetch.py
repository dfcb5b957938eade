"""Session prefetch for the timed modes: warm a session's context into HBM just before its next turn.

One component for every timed mode; the mode supplies a ``PrefetchHost``
(how to look up, move and check blocks on its own cache and links).

* **When.** When a turn's blocks are stored (its first token), the session's
  next turn is predicted at ``now + think time``: the session's own last
  observed gap (first token -> next arrival); none after a session's first
  turn (a global mean would prefetch the many one-turn sessions for nothing). The prefetch is
  issued ``HORIZON_SHARE`` of the worker's HBM *retention horizon* before
  that moment - the time a block stays in an LRU HBM after its last use,
  capacity / blocks entering per second (Little's law), measured over the
  run so far - so a prefetched block is still there when the turn comes.
  When that is shorter than ``LEAD_FACTOR`` idle-link transfer times the
  HBM turns over faster than the move and nothing is prefetched.
* **Where.** The worker that served the turn: the session-affine and
  prefix-aware routers send the next turn back to the worker holding its
  prefix. A turn that lands elsewhere leaves the prefetch unused (counted
  as wasted).
* **What.** Only the part of the context that is no longer in that HBM
  (DRAM/SSD/EIC), at most ``cap_blocks`` per session; and only if the
  prefetch plus the contexts of the sessions due *earlier* on that worker
  fit in its HBM - a prefetch must not push out blocks needed sooner.
* **How.** Over the host's idle-priority class (``PriorityLink``'s
  ``prefetch`` direction): served only while no demand read and no
  write-back uses the link, so demand reads never wait behind it. The
  blocks enter HBM when the transfer ends; a session that arrived first
  cancels nothing on the link (the bytes are spent) but its own demand load
  has already moved them.
* **Accounting.** Every promoted block is pending until its worker's next
  request that reads it: a hit in HBM makes it *used*, found elsewhere it
  was evicted first (*wasted*); prefetched again while pending it was
  evicted (wasted); at the end pending blocks are *resident* (still in HBM)
  or wasted. prefetched = used + wasted + resident.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import simpy

LEAD_FACTOR = 2.0  # issue a prefetch at least this many idle-link transfer times before the predicted turn
HORIZON_SHARE = 0.5  # ... and at most this share of the HBM's retention horizon before it
CAP_SHARE = 0.25  # at most this share of a worker's HBM per session prefetch
PREFETCH_GAP_FRACTION = 0.8  # hit-rate-only: prefetch a session at 80% of the mean think time


class PrefetchHost(Protocol):
    """What a mode provides: its cache and links, seen from one worker."""

    hbm_blocks: int  # one worker's HBM capacity, blocks

    def split(self, wk: int, blocks: Any) -> tuple[int, int]:
        """(blocks of the prefix in wk's HBM, blocks right after it cached in lower tiers)."""

    def idle_s(self, wk: int, n_blocks: int) -> float:
        """Seconds to move n_blocks into wk's HBM on idle links (the lead's unit)."""

    def move(self, wk: int, blocks: Any, n_hbm: int, n_lower: int) -> simpy.Event:
        """Start the idle-priority transfer of blocks[n_hbm:n_hbm + n_lower]; fires when it is in."""

    def promote(self, wk: int, blocks: Any, pos0: int, n: int) -> list[int]:
        """Put the cached prefix blocks[:n] into wk's HBM (no hits counted); the block ids moved."""

    def in_hbm(self, wk: int, block: int) -> bool:
        """Is `block` resident in wk's HBM?"""


@dataclass
class PrefetchStats:
    prefetched_blocks: int = 0
    prefetch_used_blocks: int = 0
    prefetch_wasted_blocks: int = 0
    prefetch_resident_blocks: int = 0
    prefetch_bytes: int = 0
    issued: int = 0  # prefetches started on a link
    cancelled: int = 0  # the turn arrived before its prefetch was due
    no_room: int = 0  # refused: sessions due earlier on the worker need the HBM
    beyond_horizon: int = 0  # not scheduled: HBM keeps a block for less than the move takes


@dataclass
class _Session:
    gap_s: float | None = None  # last observed think time (first token -> next arrival)
    t_done: float = -1.0  # first token of the latest turn, -1 while a turn is open
    req: int = -1  # latest turn
    worker: int = -1
    due_s: float = float("inf")  # predicted arrival of the next turn
    n_blocks: int = 0


@dataclass
class SessionPrefetcher:
    env: simpy.Environment
    host: PrefetchHost
    block_bytes: int
    stats: PrefetchStats = field(default_factory=PrefetchStats)

    def __post_init__(self) -> None:
        self.sessions: dict[int, _Session] = {}
        self.cap_blocks = max(1, int(self.host.hbm_blocks * CAP_SHARE))
        self.pending: dict[int, dict[int, None]] = {}  # worker -> prefetched blocks not yet read
        self.inflow: dict[int, int] = {}  # worker -> blocks that entered its HBM so far
        self.awaited: dict[int, dict[int, _Session]] = {}  # worker -> sessions with a predicted next turn

    def horizon_s(self, wk: int) -> float:
        """How long a block stays in wk's HBM after its last use: capacity / inflow rate (inf: no inflow yet)."""
        n = self.inflow.get(wk, 0)
        now = self.env.now
        return self.host.hbm_blocks * now / n if n > 0 and now > 0 else float("inf")

    # ------------------------------------------------------------ events from the mode
    def arrived(self, s: int, wk: int, blocks: Any, n_hbm: int, n_prefix: int) -> None:
        """A turn of session `s` arrived at worker `wk`: `n_hbm` of its blocks in HBM, `n_prefix` cached anywhere
        (before any load). Its pending prefetched blocks are used if in wk's HBM, wasted if not."""
        # every block not yet in HBM enters it (loaded or computed): the horizon's inflow
        self.inflow[wk] = self.inflow.get(wk, 0) + len(blocks) - n_hbm
        if s < 0:
            return
        ss = self.sessions.setdefault(s, _Session())
        if ss.t_done >= 0:
            gap = self.env.now - ss.t_done
            ss.gap_s = gap
        ss.t_done = -1.0
        ss.due_s = float("inf")
        ss.req = -1
        self.awaited.get(ss.worker, {}).pop(s, None)
        pend = self.pending.get(wk)
        if pend:
            st = self.stats
            for j in range(len(blocks)):
                b = int(blocks[j])
                if b in pend:
                    del pend[b]
                    # past the cached prefix it is in no tier (recomputed): evicted unread
                    if j < n_prefix and self.host.in_hbm(wk, b):
                        st.prefetch_used_blocks += 1
                    else:
                        st.prefetch_wasted_blocks += 1

    def turn_done(self, s: int, req: int, wk: int, blocks: Any, pos0: int) -> None:
        """Turn `req` of session `s` stored its blocks on `wk` (first token): schedule its context's prefetch."""
        if s < 0:
            return
        ss = self.sessions.setdefault(s, _Session())
        now = self.env.now
        ss.t_done, ss.req, ss.worker, ss.n_blocks = now, req, wk, len(blocks)
        gap = ss.gap_s
        if gap is None:  # a session's first turn: no think time of its own yet (one-turn sessions abound)
            return
        ss.due_s = now + gap
        self.awaited.setdefault(wk, {})[s] = ss
        move_s = LEAD_FACTOR * self.host.idle_s(wk, min(len(blocks), self.cap_blocks))
        keep_s = HORIZON_SHARE * self.horizon_s(wk)
        if keep_s < move_s:  # the HBM turns over faster than the move: the blocks would go unread
            self.stats.beyond_horizon += 1
            return
        delay = max(0.0, gap - keep_s)
        self.env.timeout(delay).callbacks.append(lambda _e: self._issue(s, req, wk, blocks, pos0))

    # ------------------------------------------------------------ the prefetch
    def _issue(self, s: int, req: int, wk: int, blocks: Any, pos0: int) -> None:
        ss = self.sessions[s]
        if ss.req != req:  # the next turn arrived first
            self.stats.cancelled += 1
            return
        n_hbm, n_lower = self.host.split(wk, blocks)
        n_lower = min(n_lower, self.cap_blocks)
        if n_lower <= 0:
            return
        # Room check: the contexts of the sessions due before this one on wk must keep their place.
        now = self.env.now
        earlier = sum(o.n_blocks for k, o in self.awaited.get(wk, {}).items()
                      if k != s and now <= o.due_s <= ss.due_s)
        if earlier + n_hbm + n_lower > self.host.hbm_blocks:
            self.stats.no_room += 1
            return
        self.stats.issued += 1
        self.stats.prefetch_bytes += n_lower * self.block_bytes
        ev = self.host.move(wk, blocks, n_hbm, n_lower)
        ev.callbacks.append(lambda _e: self._arrive(wk, blocks, pos0, n_hbm + n_lower))

    def _arrive(self, wk: int, blocks: Any, pos0: int, n: int) -> None:
        moved = self.host.promote(wk, blocks, pos0, n)
        pend = self.pending.setdefault(wk, {})
        st = self.stats
        for b in moved:
            if b in pend:  # prefetched before, evicted unread
                st.prefetch_wasted_blocks += 1
            pend[b] = None
        st.prefetched_blocks += len(moved)

    def finish(self) -> PrefetchStats:
        """Close the books: pending blocks still in HBM are resident, the rest were evicted unread."""
        st = self.stats
        for wk, pend in self.pending.items():
            for b in pend:
                if self.host.in_hbm(wk, b):
                    st.prefetch_resident_blocks += 1
                else:
                    st.prefetch_wasted_blocks += 1
            pend.clear()
        return st

    def report(self) -> dict[str, int]:
        """The report's ``prefetch`` block."""
        st = self.stats
        return {
            "prefetched_blocks": st.prefetched_blocks,
            "prefetch_used_blocks": st.prefetch_used_blocks,
            "prefetch_wasted_blocks": st.prefetch_wasted_blocks,
            "prefetch_resident_blocks": st.prefetch_resident_blocks,
            "prefetch_bytes": st.prefetch_bytes,
            "prefetches_issued": st.issued,
            "prefetches_cancelled": st.cancelled,
            "prefetches_no_room": st.no_room,
            "prefetches_beyond_horizon": st.beyond_horizon,
        }


class InstantPrefetch:
    """Hit-rate-only replays (no links, no clock of their own): a session's next turn is predicted at
    ``PREFETCH_GAP_FRACTION`` of the mean arrival gap between turns seen so far, and its context is
    moved at once when that time comes - an upper bound on what idle links could bring."""

    def __init__(self) -> None:
        self.last_arrival: dict[int, float] = {}
        self.last_req: dict[int, int] = {}
        self.gap_sum = 0.0
        self.gap_n = 0

    def observe(self, session: int, req: int, t: float) -> float | None:
        """Record turn `req` at time t; return when to prefetch its context, or None."""
        prev = self.last_arrival.get(session)
        if prev is not None:
            self.gap_sum += t - prev
            self.gap_n += 1
        self.last_arrival[session] = t
        self.last_req[session] = req
        if self.gap_n == 0:
            return None
        return t + PREFETCH_GAP_FRACTION * self.gap_sum / self.gap_n

    def still_latest(self, session: int, req: int) -> bool:
        return self.last_req.get(session) == req


def prefetch_untimed(blocks: int, block_bytes: int) -> dict[str, int | None]:
    """The ``prefetch`` block of a run without the timed prefetcher: a policy that does not prefetch
    (all zeros) or the hit-rate-only replay, which moves blocks at once and cannot tell use from waste."""
    return {
        "prefetched_blocks": int(blocks),
        "prefetch_used_blocks": None if blocks else 0,
        "prefetch_wasted_blocks": None if blocks else 0,
        "prefetch_resident_blocks": None if blocks else 0,
        "prefetch_bytes": int(blocks) * int(block_bytes),
        "prefetches_issued": None if blocks else 0,
        "prefetches_cancelled": None if blocks else 0,
        "prefetches_no_room": None if blocks else 0,
        "prefetches_beyond_horizon": None if blocks else 0,
    }


__all__ = ["CAP_SHARE", "HORIZON_SHARE", "LEAD_FACTOR", "PREFETCH_GAP_FRACTION", "InstantPrefetch", "PrefetchHost",
           "PrefetchStats", "SessionPrefetcher", "prefetch_untimed"]
