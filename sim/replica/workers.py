"""The worker replicas of the single-node and cluster modes, created on first use.

A worker is one colocated ``BatchingReplica``: its ``PrefillScheduler``
admits into a ``TokenPool`` of the worker's HBM KV budget, chunks run in
the same iterations as the decode batch, and a request decodes in the
replica that prefilled it. The prefix cache in front of the replica
(``sim.cache`` or the compiled engine) has already said how many prompt
tokens are cached (``Req.cached``) and loaded them over the links.

Approximation: the prefix-cache HBM tier and the running requests' KV are
accounted separately, each with the whole HBM KV budget - a running
request's prompt is not taken out of the cache tier's capacity and the
cache's blocks do not limit the batch. The pool is at least as large as the
workload's largest request (prompt + output), so every request can run
alone. A replica is a SimPy process only once a request reaches it: 10,240
idle GPUs cost a dict slot each.
"""
from __future__ import annotations

from collections.abc import Callable

import simpy

from sim.replica.engine import BatchingReplica
from sim.replica.histogram import IterationHistogram
from sim.replica.pools import TokenPool
from sim.replica.preemption import PREEMPTION
from sim.replica.request import Req
from sim.replica.scheduler import PoolAdmission, PrefillScheduler
from sim.replica.step import StepCost


class Workers:
    """Worker replicas by number; the modes' hooks into them."""

    def __init__(self, env: simpy.Environment, step: StepCost, *, pool_tokens: int, max_seqs: int,
                 token_budget: int, preemption: str, kv_bytes_per_token: float, swap_bytes_s: float,
                 first_token: Callable[[BatchingReplica, Req], None], done: Callable[[Req], None],
                 coalesce: bool = True) -> None:
        self.env = env
        self.step = step
        self.pool_tokens = pool_tokens
        self.max_seqs = max_seqs
        self.budget = token_budget
        self.preempt_cost = PREEMPTION[preemption]
        self.kv_bytes_per_token = kv_bytes_per_token
        self.swap_bytes_s = swap_bytes_s  # a worker's KV <-> host DRAM bandwidth
        self._first_token = first_token
        self._done = done
        self.coalesce = coalesce
        self.replicas: dict[int, BatchingReplica] = {}
        self.hist = IterationHistogram()

    def get(self, wk: int) -> BatchingReplica:
        eng = self.replicas.get(wk)
        if eng is None:
            sched = PrefillScheduler(PoolAdmission(TokenPool(self.pool_tokens)), self.budget, self.budget)
            assert isinstance(sched.admission, PoolAdmission)
            eng = BatchingReplica(self.env, wk, self, sched=sched, step=self.step, mem=sched.admission.pool,
                                  max_seqs=self.max_seqs, coalesce=self.coalesce, hist=self.hist)
            self.replicas[wk] = eng
        return eng

    def submit(self, wk: int, r: Req, last: bool = False) -> None:
        """r (r.cached set) joins worker wk's prefill queue now. ``last``: the caller is the last callback
        of the event being processed and does nothing after this (``BatchingReplica.notify``)."""
        eng = self.get(wk)
        r.t_ready = self.env.now
        assert eng.sched is not None
        eng.sched.add(r)
        eng.notify(last)

    def start_decode(self, eng: BatchingReplica, r: Req) -> None:
        """r's first token is out: decode its remaining tokens in the same replica, or finish."""
        if r.out <= 1:
            eng.mem.give(r.mem)
            r.mem = 0
            r.t_done = self.env.now
            self._done(r)
            eng.notify()
            return
        r.ctx = r.inp
        r.left = r.out - 1
        eng.incoming += 1
        eng.decode_q.append(r)
        eng.notify()

    # ---------------------------------------------------------- the replica's hooks
    def chunk_start(self, eng: BatchingReplica, batch: list, t0: float, dur: float) -> None:
        for r, _n, _b in batch:
            if r.t_pstart != r.t_pstart:
                r.t_pstart = t0

    def prefill_done(self, eng: BatchingReplica, r: Req) -> None:
        r.t_pend = self.env.now
        self._first_token(eng, r)

    def decode_done(self, eng: BatchingReplica, r: Req) -> None:
        r.t_done = self.env.now
        self._done(r)

    def preempted(self, eng: BatchingReplica, r: Req) -> tuple[float, float]:
        return self.preempt_cost(self, eng, r)

    def memory_freed(self, eng: BatchingReplica) -> None:
        pass

    def swap_s(self, eng: BatchingReplica, nbytes: float) -> tuple[float, float]:
        t = nbytes / self.swap_bytes_s
        return t, t

    # ---------------------------------------------------------- results
    def busy(self, wk: int) -> tuple[float, float, float]:
        """(busy, in iterations with prefill, in iterations with decode) seconds of worker wk."""
        eng = self.replicas.get(wk)
        if eng is None:
            return 0.0, 0.0, 0.0
        st = eng.stats
        return st.busy_s, st.prefill_busy_s, st.decode_busy_s

    def preemptions(self) -> int:
        return sum(e.stats.preemptions for e in self.replicas.values())


__all__ = ["Workers"]
