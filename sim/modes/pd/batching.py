"""Continuous batching: one model replica as a SimPy process, iteration by iteration.

A ``BatchingReplica`` runs iterations back to back while it has work. Each
iteration advances every running (decoding) request by one token and, if
the replica prefills, runs one prefill batch from its ``PrefillScheduler``
(chunks under the token budget, of which each decoding request takes one
token). Iteration times come from the step-cost model
(``sim.timing.step_cost.StepModel``):

* decode only: ``decode_line(batch)`` -> a + b x KV tokens read;
* prefill only: one iteration of the batch's chunks (``prefill_time`` hook);
* mixed (colocated chunked prefill): one iteration of the chunks and the
  decode batch together (the weights are read once per forward pass).

Requests join the running batch only at iteration boundaries, when their
KV is present, a batch slot is free (``max_batch``) and memory allows.
Before every iteration the batch needs one token of KV per request; when
the memory pool cannot give it the most recently joined request is
preempted (vLLM's policy) with ``recompute`` (its KV is dropped and
recomputed when it rejoins) or ``swap`` (its KV goes to host DRAM and comes
back), counted in ``stats``.

Events: decode-only stretches are *coalesced*. Between two batch changes
(a join, a finish, a preemption) every iteration's duration is known in
closed form - the batch is fixed and its KV grows by one token per request
per iteration, so iteration j lasts ``a + b x (K + j x B)`` with a, b from
``decode_iteration_time_s`` - so one SimPy timeout covers the whole
stretch. A request that becomes ready mid-stretch wakes the replica, which
finishes the iteration in flight (its end is computed exactly) and lets the
request join at that boundary, as a per-iteration loop would. The timeline
is iteration-exact; ``coalesce=False`` runs one SimPy event per iteration
instead (the tests check both give the same times). There is never an
event per token.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Protocol

import simpy

from sim.cache.radix_tree import RadixTree
from sim.modes.pd.prefill import PrefillScheduler
from sim.modes.pd.request import Req
from sim.timing.step_cost import StepModel

# ------------------------------------------------------------------ memory pools


class TokenPool:
    """Decode KV memory counted in tokens (a PD decode replica keeps no prefix cache)."""

    def __init__(self, capacity_tokens: int) -> None:
        if capacity_tokens < 1:
            raise ValueError("capacity must be >= 1 token")
        self.capacity = int(capacity_tokens)
        self.used = 0
        self.peak = 0

    def headroom(self) -> int:
        return self.capacity - self.used

    def take(self, n: int, force: bool = False) -> None:
        """Use n tokens; ``force`` may overcommit for a moment (see BatchingReplica.grant)."""
        if n > self.capacity - self.used and not force:
            raise RuntimeError(f"TokenPool.take({n}) with {self.capacity - self.used} free")
        self.used += n
        if self.used > self.peak:
            self.peak = self.used

    def give(self, n: int) -> None:
        self.used -= n
        if self.used < 0:
            raise RuntimeError("TokenPool gave back more than it lent")


class TreePool:
    """Decode growth carved out of a radix tree's memory (colocated replicas).

    Prompts stay in the tree (referenced while their request decodes); the
    tokens generated on top are counted here and rounded up to whole blocks
    over the pool (one partial block for the whole batch, not one per
    request). Taking memory evicts unreferenced cache leaves.
    """

    def __init__(self, tree: RadixTree, block_tokens: int) -> None:
        self.tree = tree
        self.bt = block_tokens
        self.g = 0  # tokens held
        self.blocks = 0  # blocks reserved in the tree for them
        self.peak = 0

    @property
    def used(self) -> int:
        return self.g

    def headroom(self) -> int:
        return self.tree.available() * self.bt + self.blocks * self.bt - self.g

    def take(self, n: int) -> None:
        self.g += n
        need = -(-self.g // self.bt) - self.blocks
        if need > 0:
            if not self.tree.reserve(need):
                raise RuntimeError(f"TreePool.take({n}): the tree cannot free {need} blocks")
            self.blocks += need
        if self.g > self.peak:
            self.peak = self.g

    def give(self, n: int) -> None:
        self.g -= n
        if self.g < 0:
            raise RuntimeError("TreePool gave back more than it lent")
        surplus = self.blocks - -(-self.g // self.bt)
        if surplus > 0:
            self.tree.unreserve(surplus)
            self.blocks -= surplus


# ------------------------------------------------------------------ decode timing


class DecodeTiming:
    """Decode iteration times from ``StepModel.decode_line`` (never a copy of its formula).

    A decode-only iteration of B requests lasts ``a(B) + b x K`` exactly; the
    closed forms use that linearity in the KV tokens read to sum a stretch of
    iterations (constant B) in O(1).
    """

    def __init__(self, step: StepModel) -> None:
        self.step = step
        self._lines: dict[int, tuple[float, float]] = {}

    def line(self, batch: int) -> tuple[float, float]:
        ab = self._lines.get(batch)
        if ab is None:
            ab = self._lines[batch] = self.step.decode_line(batch)
        return ab

    def one(self, batch: int, kv_tokens: float) -> float:
        a, b = self.line(batch)
        return a + b * kv_tokens if batch > 0 else 0.0

    def mixed(self, chunks: list[tuple[int, int]], batch: int, kv_tokens: float) -> float:
        """One iteration running prefill chunks [(new, before)] and a decode batch together."""
        return self.step.iteration_s(chunks, batch, kv_tokens)

    def span(self, k: int, batch: int, kv_tokens: float) -> float:
        """Seconds of k iterations starting with `kv_tokens` read and growing by `batch` per iteration."""
        a, b = self.line(batch)
        return k * a + b * (k * kv_tokens + batch * k * (k - 1) / 2.0)

    def done_by(self, dt: float, batch: int, kv_tokens: float) -> int:
        """Largest j with span(j) <= dt (iterations completed after dt seconds)."""
        if dt <= 0:
            return 0
        a, b = self.line(batch)
        qa = b * batch / 2.0
        qb = a + b * kv_tokens - qa
        if qa > 0:
            j = int((-qb + math.sqrt(qb * qb + 4 * qa * dt)) / (2 * qa))
        else:
            j = int(dt / qb)
        tol = 1e-12 * max(1.0, dt)
        while self.span(j + 1, batch, kv_tokens) <= dt + tol:
            j += 1
        while j > 0 and self.span(j, batch, kv_tokens) > dt + tol:
            j -= 1
        return j


# ------------------------------------------------------------------ the replica


class Hooks(Protocol):
    """What a replica tells its simulator."""

    def chunk_start(self, eng: BatchingReplica, batch: list, t0: float, dur: float) -> None: ...
    def prefill_done(self, eng: BatchingReplica, r: Req) -> None: ...
    def decode_done(self, eng: BatchingReplica, r: Req) -> None: ...
    def preempted(self, eng: BatchingReplica, r: Req) -> tuple[float, float]: ...  # (blocking now, extra on rejoin)
    def memory_freed(self, eng: BatchingReplica) -> None: ...


class ReplicaStats:
    __slots__ = ("busy_s", "iterations", "stretches", "decode_tokens", "prefill_tokens", "preemptions",
                 "recompute_tokens", "swap_bytes", "max_batch_seen")

    def __init__(self) -> None:
        self.busy_s = 0.0
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
                 sched: PrefillScheduler | None, prefill_time: Callable[[list], float] | None,
                 mem, timing: DecodeTiming | None, max_batch: int, coalesce: bool = True,
                 layer_groups: int = 1, decode: bool = True) -> None:
        self.env = env
        self.idx = idx
        self.hooks = hooks
        self.sched = sched
        self.prefill_time = prefill_time
        self.mem = mem
        self.timing = timing
        self.max_batch = max_batch
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

    # ---------------------------------------------------------- signals
    def notify(self) -> None:
        """New work arrived (a prefill request, a decode-ready request, freed memory)."""
        w = self._wake
        if w is None or w.triggered:
            return
        if not self.running:
            w.succeed()  # idle
        elif (self.sched is not None and self.sched.waiting and not self.resume_q) or (
                self.decode_q and len(self.running) < self.max_batch):
            w.succeed()  # cut the decode stretch at the iteration in flight

    # ---------------------------------------------------------- memory grants from outside
    def _claimed_ahead(self) -> int:
        """Tokens a coalesced stretch took for iterations that have not started yet."""
        st = self._stretch
        if st is None:
            return 0
        t0, k, B, K = st
        assert self.timing is not None  # a stretch is a decode stretch
        started = min(k, self.timing.done_by(self.env.now - t0, B, K) + 1)  # the one in flight has its tokens
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
        running, mem, cap = self.running, self.mem, self.max_batch
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
        B = len(self.running)
        self.K += k * B
        self.stats.decode_tokens += k * B
        finished = False
        for r in self.running:
            r.ctx += k
            r.left -= k
            r.mem += k
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
    def _iteration_time(self, batch: list, B: int) -> float:
        P = 0.0
        if batch and not B:
            assert self.prefill_time is not None  # batches come from the prefill scheduler
            P = self.prefill_time(batch)
        if B:
            timing = self.timing
            assert timing is not None  # only a decoding replica runs requests
            if batch:
                dur = timing.mixed([(n, before) for _r, n, before in batch], B, self.K)
            else:
                dur = timing.one(B, self.K)
        else:
            dur = P
        dur += self._extra + self._debt
        self._extra = self._debt = 0.0
        return dur

    def _run(self):
        env, st = self.env, self.stats
        while True:
            if self.decodes:
                self._join()
            B = self._make_room() if self.running else 0
            if B:
                self.mem.take(B)  # decode first: the next iteration's tokens, before prefill admission
            # The decode tokens of a mixed iteration count against the prefill token budget (vLLM's
            # max_num_batched_tokens); no new admissions while a preempted request waits to resume.
            batch = (self.sched.form_batch(self.sched.budget - B, admit=not self.resume_q)
                     if self.sched is not None and self.sched.has_work() else [])
            if not batch and not B:
                if self._debt:  # swap-outs of a batch that emptied still occupy the GPU
                    d, self._debt = self._debt, 0.0
                    st.busy_s += d
                    yield env.timeout(d)
                    continue
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            if batch or not self.coalesce or self._extra or self._debt or self._pending_kv:
                dur = self._iteration_time(batch, B)
                t0 = env.now
                if batch:
                    self.hooks.chunk_start(self, batch, t0, dur)
                    st.prefill_tokens += sum(n for _r, n, _b in batch)
                yield env.timeout(dur)
                if self._pending_kv:
                    yield from self._await_layers(t0, dur)
                st.busy_s += env.now - t0
                st.iterations += 1
                st.stretches += 1
                if batch:
                    assert self.sched is not None  # it formed the batch
                    for r in self.sched.complete(batch):
                        self.hooks.prefill_done(self, r)
                if B:
                    self._advance(1)
                continue
            # decode-only stretch up to the next finish or memory limit, in one event
            k = min(min(r.left for r in self.running), 1 + self.mem.headroom() // B)
            if k > 1:
                self.mem.take((k - 1) * B)
            K, timing = self.K, self.timing
            assert timing is not None  # only a decoding replica runs requests
            T = timing.span(k, B, K)
            t0 = env.now
            self._wake = wake = env.event()
            self._stretch = (t0, k, B, K)
            yield env.timeout(T) | wake
            self._wake = None
            self._stretch = None
            dt = env.now - t0
            if dt < T * (1 - 1e-12):
                j = timing.done_by(dt, B, K)
                if timing.span(j, B, K) < dt - 1e-12 * max(1.0, dt):
                    j += 1  # the iteration in flight finishes first
                j = min(j, k)
                if j < k:
                    self.mem.give((k - j) * B)
                    k = j
                end = t0 + timing.span(k, B, K)
                if end > env.now:
                    yield env.timeout(end - env.now)
            st.busy_s += timing.span(k, B, K)
            st.iterations += k
            st.stretches += 1
            if k:
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


__all__ = ["BatchingReplica", "DecodeTiming", "Hooks", "ReplicaStats", "TokenPool", "TreePool"]
