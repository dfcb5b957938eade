"""Continuous batching: one model replica as a SimPy process, iteration by iteration.

Every mode runs its replicas on this engine: single-node and cluster
workers and PD's colocated replicas prefill and decode, PD prefill replicas
only prefill, PD decode replicas only decode. A ``BatchingReplica`` runs
iterations back to back while it has work. Each iteration advances every
running (decoding) request by one token and, if the replica prefills, runs
one prefill batch from its ``PrefillScheduler`` (chunks under the token
budget ``max_num_batched_tokens``, of which each decoding request takes one
token; vLLM's sense). The iteration's duration is the ``StepCost``'s
(``sim.replica.step``) for that composition - prefill chunks and decode
batch together in one forward pass - so a prefill arriving lengthens the
inter-token latency of every request decoding beside it.

Requests join the running batch only at iteration boundaries, when their
KV is present, a batch slot is free (``max_seqs`` = ``max_num_seqs``
counts running, waiting-to-join, preempted and prefilling requests; new
prefills are admitted only into free slots) and memory allows.
Before every iteration the batch needs one token of KV per request; when
the memory pool cannot give it the most recently joined request is
preempted (vLLM's policy) with ``recompute`` (its KV is dropped and
recomputed when it rejoins) or ``swap`` (its KV goes to host DRAM and comes
back), counted in ``stats``.

Events: decode-only stretches are *coalesced*. Between two batch changes
(a join, a finish, a preemption) every iteration's duration is known in
closed form - the batch B is fixed and its KV grows by one token per
request per iteration, so iteration j lasts ``a(B) + b(B) x (K + j x B)``
with ``StepCost.decode_line(B)`` (cached per B) - so one SimPy timeout
covers the whole stretch. It claims the memory of its iterations up front, but only what the pool
can lend without side effects (``claimable()``: a ``TreePool`` evicts cached prefixes, and an
eviction must happen at the iteration that needs the block), and it lasts one iteration when a
preempted request would rejoin at the next boundary. A request that becomes ready mid-stretch wakes the replica, which
finishes the iteration in flight (its end is computed exactly) and lets the
request join at that boundary, as a per-iteration loop would. The timeline
is iteration-exact; ``coalesce=False`` runs one SimPy event per iteration
instead (the tests check both give the same times). There is never an
event per token. Iteration times go into an ``IterationHistogram`` (a
stretch as one arithmetic progression).
"""
from __future__ import annotations

from collections import deque
from operator import attrgetter
from typing import Protocol

import simpy
from simpy.events import PENDING

from sim.replica.histogram import IterationHistogram
from sim.replica.request import Req
from sim.replica.scheduler import PrefillScheduler
from sim.replica.step import DecodeLine, StepCost
from sim.timing.event_loop import FirstOf, succeed, succeed_last, timer

# ------------------------------------------------------------------ the replica

_NO_BATCH: list = []  # an empty batch (never appended to: form_batch builds a new list)
_left = attrgetter("left")  # a running request's tokens left (the min over a batch without a list)


class Hooks(Protocol):
    """What a replica tells its simulator."""

    def chunk_start(self, eng: BatchingReplica, batch: list, t0: float, dur: float) -> None: ...
    def prefill_done(self, eng: BatchingReplica, r: Req) -> None: ...
    def decode_done(self, eng: BatchingReplica, r: Req) -> None: ...
    def preempted(self, eng: BatchingReplica, r: Req) -> tuple[float, float]: ...  # (blocking now, extra on rejoin)
    def memory_freed(self, eng: BatchingReplica) -> None: ...


class ReplicaStats:
    __slots__ = ("busy_s", "prefill_busy_s", "decode_busy_s", "iterations", "stretches", "decode_tokens",
                 "prefill_tokens", "preemptions",
                 "recompute_tokens", "swap_bytes", "max_batch_seen")

    def __init__(self) -> None:
        self.busy_s = 0.0
        self.prefill_busy_s = 0.0  # in iterations that ran prefill chunks (mixed ones included)
        self.decode_busy_s = 0.0  # in iterations that advanced a decode batch (mixed ones included)
        self.iterations = 0  # model forward passes
        self.stretches = 0  # SimPy waits that covered them (one per iteration with coalesce=False)
        self.decode_tokens = 0
        self.prefill_tokens = 0
        self.preemptions = 0
        self.recompute_tokens = 0
        self.swap_bytes = 0.0
        self.max_batch_seen = 0


class BatchingReplica:
    """One replica: its prefill scheduler (optional), decode batch (optional) and memory pool."""

    def __init__(self, env: simpy.Environment, idx: int, hooks: Hooks, *,
                 sched: PrefillScheduler | None, step: StepCost, mem, max_seqs: int, coalesce: bool = True,
                 layer_groups: int = 1, decode: bool = True, hist: IterationHistogram | None = None) -> None:
        if max_seqs < 1:
            raise ValueError("max_seqs must be >= 1")
        self.env = env
        self.idx = idx
        self.hooks = hooks
        self.sched = sched
        self.step = step
        self.mem = mem
        self.max_seqs = max_seqs
        self.hist = hist if hist is not None else IterationHistogram()
        self._lines: dict[int, DecodeLine] = {}
        self.coalesce = coalesce
        self.groups = max(1, layer_groups)
        self.decodes = decode
        self.decode_q: deque[Req] = deque()  # KV present, waiting for a batch slot
        # Preempted, waiting for memory (and a slot) to resume. While any waits, no new request is
        # admitted to prefill or granted decode memory here, so finishing requests free memory for
        # them (vLLM's rule): no starvation, no deadlock.
        self.resume_q: deque[Req] = deque()
        self.running: list[Req] = []
        self.K = 0  # KV tokens the running batch reads per iteration (sum of contexts)
        self.incoming = 0  # granted (memory reserved) but not joined yet
        # Prompt tokens of the requests this replica holds (granted, running or preempted): the decode
        # routers' load signal. It changes only at grants and finishes, so it reads the same whether
        # decode stretches are coalesced or not (mem.used includes a stretch's tokens claimed ahead).
        self.prompt_kv = 0
        self._extra = 0.0  # seconds owed by the next iteration: recompute / swap-in of rejoining requests
        self._debt = 0.0  # seconds owed by the next iteration: blocking swap-outs
        self._pending_kv: list[Req] = []  # joined while their last layer groups are still arriving
        self._wake: simpy.Event | None = None
        self._stretch: tuple | None = None  # (t0, k, B, K) of the decode stretch in flight
        self.stats = ReplicaStats()
        self.proc = env.process(self._run())

    def line(self, batch: int) -> DecodeLine:
        """Decode-only iteration time of this batch size as a line in the KV tokens read (cached)."""
        ln = self._lines.get(batch)
        if ln is None:
            ln = self._lines[batch] = DecodeLine(*self.step.decode_line(batch))
        return ln

    def _seq_room(self) -> int:
        """Requests that may start prefilling now under max_num_seqs."""
        sched = self.sched
        held = len(sched.active) if sched is not None else 0
        if self.decodes:
            held += len(self.running) + len(self.decode_q) + len(self.resume_q)
        return self.max_seqs - held

    # ---------------------------------------------------------- signals
    def notify(self, last: bool = False) -> None:
        """New work arrived (a prefill request, a decode-ready request, freed memory). ``last``: the caller
        is the last callback of the event being processed and does nothing after this (the wake-up may
        then run at once, ``succeed_last``)."""
        w = self._wake
        if w is None or w._value is not PENDING:  # w.triggered without the property
            return
        if not self.running:
            (succeed_last if last else succeed)(w)  # idle
        elif (self.sched is not None and self.sched.waiting and not self.resume_q and self._seq_room() > 0) or (
                self.decode_q and len(self.running) < self.max_seqs):
            (succeed_last if last else succeed)(w)  # cut the decode stretch at the iteration in flight

    # ---------------------------------------------------------- memory grants from outside
    def _claimed_ahead(self) -> int:
        """Tokens a coalesced stretch took for iterations that have not started yet."""
        st = self._stretch
        if st is None:
            return 0
        t0, k, B, K = st
        started = min(k, self.line(B).done_by(self.env.now - t0, B, K) + 1)  # the one in flight has its tokens
        return (k - started) * B

    def grant_room(self) -> int:
        """Tokens a KV reservation may take now: what a per-iteration loop would have free at this instant."""
        return self.mem.headroom() + self._claimed_ahead()

    def grant(self, n: int) -> None:
        """Reserve n tokens for incoming KV. If that needs tokens the stretch in flight claimed ahead,
        the stretch is cut at the iteration in flight (it gives the claim back and re-plans), so the
        timeline is the per-iteration one."""
        self.prompt_kv += n
        if n > self.mem.headroom():
            self.mem.take(n, force=True)
            w = self._wake
            if w is not None and not w.triggered and self.running:
                w.succeed()
        else:
            self.mem.take(n)

    # ---------------------------------------------------------- batch changes
    def _join(self) -> None:
        running, mem, cap = self.running, self.mem, self.max_seqs
        rq = self.resume_q
        while rq and len(running) < cap:
            r = rq[0]
            if mem.headroom() < r.ctx + len(running) + 1:
                break  # room for it and for the next iteration's tokens
            rq.popleft()
            mem.take(r.ctx)
            r.mem = r.ctx
            r.needs_mem = False
            self._extra += r.extra
            r.extra = 0.0
            running.append(r)
            self.K += r.ctx
        # Requests whose KV is here already hold their memory: they join even while a preempted one waits.
        q = self.decode_q
        while q and len(running) < cap:
            r = q.popleft()
            self.incoming -= 1
            running.append(r)
            self.K += r.ctx
            r.t_join = self.env.now
            if r.kv_full is not None and not r.kv_full.triggered:
                self._pending_kv.append(r)
        if len(running) > self.stats.max_batch_seen:
            self.stats.max_batch_seen = len(running)

    def _joins_next(self, B: int) -> bool:
        """A request would join at the next boundary (as _join tests it then), so a stretch must stop after
        one iteration: a waiting decode_q request with a slot free (e.g. a slot a preemption just freed),
        or the head of resume_q with its memory back. Within a stretch the headroom only shrinks and the
        batch only changes at its end, so if neither holds now it holds at no boundary before the end."""
        if B >= self.max_seqs:
            return False
        if self.decode_q:
            return True
        return bool(self.resume_q) and self.mem.headroom() >= self.resume_q[0].ctx + B + 1

    def _make_room(self) -> int:
        """Preempt the latest joined requests until the next iteration's tokens fit; returns the batch size."""
        running, mem = self.running, self.mem
        while running and mem.headroom() < len(running):
            r = running.pop()
            self.K -= r.ctx
            mem.give(r.mem)
            r.mem = 0
            r.preempted += 1
            r.needs_mem = True
            block_s, rejoin_s = self.hooks.preempted(self, r)
            self._debt += block_s
            r.extra = rejoin_s
            self.stats.preemptions += 1
            if r in self._pending_kv:
                self._pending_kv.remove(r)
            self.resume_q.appendleft(r)
        return len(running)

    def _advance(self, k: int) -> None:
        """Every running request gained k tokens (their memory was taken already)."""
        running = self.running
        B = len(running)
        self.K += k * B
        self.stats.decode_tokens += k * B
        finished = False
        for r in running:
            r.ctx += k
            r.mem += k
            r.left -= k
            if r.left <= 0:
                finished = True
        if finished:
            keep = []
            for r in self.running:
                if r.left <= 0:
                    self.K -= r.ctx
                    self.mem.give(r.mem)
                    if r.dec_reserved:
                        self.prompt_kv -= r.inp
                    r.mem = 0
                    self.hooks.decode_done(self, r)
                else:
                    keep.append(r)
            self.running = keep
            self.hooks.memory_freed(self)

    # ---------------------------------------------------------- the loop
    def _run(self):
        # What the loop reads every iteration, bound once (none of these is rebound after __init__;
        # self.running is, by _advance, so it is read where used).
        env, st, hist = self.env, self.stats, self.hist
        mem, sched, hooks, step = self.mem, self.sched, self.hooks, self.step
        decode_q, resume_q, lines = self.decode_q, self.resume_q, self._lines
        decodes, coalesce, max_seqs = self.decodes, self.coalesce, self.max_seqs
        while True:
            if decodes and (resume_q or decode_q):
                self._join()
            B = len(self.running)
            if B:
                if mem.headroom() < B:
                    B = self._make_room()
                if B:
                    mem.take(B)  # decode first: the next iteration's tokens, before prefill admission
            # The decode tokens of a mixed iteration count against the prefill token budget (vLLM's
            # max_num_batched_tokens); no new admissions while a preempted request waits to resume.
            if sched is not None and (sched.active or sched.waiting):
                if resume_q:
                    room = 0
                else:  # self._seq_room(), inlined
                    held = len(sched.active)
                    if decodes:
                        held += len(self.running) + len(decode_q)  # resume_q is empty here
                    room = max_seqs - held
                batch = sched.form_batch(sched.budget - B, room)
            else:
                batch = _NO_BATCH
            if not batch and not B:
                if self._debt:  # swap-outs of a batch that emptied still occupy the GPU
                    d, self._debt = self._debt, 0.0
                    st.busy_s += d
                    yield timer(env, d)
                    continue
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            if batch or not coalesce or self._extra or self._debt or self._pending_kv or self._joins_next(B):
                if batch:
                    chunks = [(n, before) for _r, n, before in batch]
                    dur = step.iteration_s(chunks, B, self.K)
                else:
                    dur = self.line(B).span(1, B, self.K)
                owed = self._extra + self._debt
                if owed:  # recompute / swap-in of rejoining requests, blocking swap-outs
                    dur += owed
                    self._extra = self._debt = 0.0
                t0 = env._now
                if batch:
                    hooks.chunk_start(self, batch, t0, dur)
                    for n, _b in chunks:
                        st.prefill_tokens += n
                yield timer(env, dur)
                if self._pending_kv:
                    yield from self._await_layers(t0, dur)
                took = env._now - t0
                st.busy_s += took
                st.iterations += 1
                st.stretches += 1
                hist.add(took)
                if B:
                    st.decode_busy_s += took
                if batch:
                    st.prefill_busy_s += took
                    assert sched is not None  # it formed the batch
                    for r in sched.complete(batch):
                        hooks.prefill_done(self, r)
                if B:
                    self._advance(1)
                continue
            # decode-only stretch up to the next finish or memory limit, in one event
            k = min(min(map(_left, self.running)), 1 + mem.claimable() // B)
            if k > 1:
                mem.take((k - 1) * B)
            K = self.K
            ln = lines.get(B)
            if ln is None:
                ln = self.line(B)
            T = ln.span(k, B, K)
            t0 = env._now
            self._wake = wake = env.event()
            self._stretch = (t0, k, B, K)
            # the first of the stretch's end and a wake-up, as `timeout | wake` but without a Condition's
            # bookkeeping: the same events are scheduled in the same order (one hop after either fires)
            first = FirstOf(env)
            # (each is the sole callback of its event: fire_last may resume this process at once)
            timer(env, T).callbacks.append(first.fire_last)
            wake.callbacks.append(first.fire_last)
            yield first
            self._wake = None
            self._stretch = None
            dt = env._now - t0
            took = T  # ln.span(k, B, K) while k stands
            if dt < T * (1 - 1e-12):
                j = ln.done_by(dt, B, K)
                if ln.span(j, B, K) < dt - 1e-12 * max(1.0, dt):
                    j += 1  # the iteration in flight finishes first
                j = min(j, k)
                if j < k:
                    mem.give((k - j) * B)
                    k = j
                    took = ln.span(k, B, K)
                end = t0 + took
                if end > env._now:
                    yield timer(env, end - env._now)
            st.busy_s += took
            st.decode_busy_s += took
            st.iterations += k
            st.stretches += 1
            if k:
                hist.add_progression(ln.a + ln.b * K, ln.b * B, k)
                self._advance(k)

    def _await_layers(self, t0: float, dur: float):
        """pull_on_demand: an iteration ends no earlier than 1/groups of it after the last layer group arrived."""
        env = self.env
        end = t0 + dur
        for r in self._pending_kv:
            assert r.kv_full is not None  # pending requests are pull_on_demand's
            if not r.kv_full.triggered:
                yield r.kv_full
            end = max(end, r.t_full + dur / self.groups)
        self._pending_kv.clear()
        if end > env.now:
            yield env.timeout(end - env.now)


__all__ = ["BatchingReplica", "Hooks", "ReplicaStats"]
