"""Single-node simulator: N GPU workers, shared host DRAM and local NVMe SSD.

Two replay paths share the cache hierarchy (``NodeCache``) and routers:

* ``timing=True``: a SimPy process per request - arrival -> worker choice ->
  longest cached prefix (HBM, DRAM, SSD) -> load of the DRAM/SSD part, or
  its recompute when that is faster, over read-first links, layer-wise
  overlapped with the prefill (``sim.timing.node_io``) -> the worker's replica (``sim.replica``): its
  prefill queue with the cached tokens, chunked prefill in iterations shared
  with the decode batch, first token when the last chunk is done -> new
  blocks written to HBM (victims demoted) -> decode in the same replica's
  continuous batch (coalesced decode stretches: no event per token). TTFT =
  load (links) + queue (at the replica until its first chunk starts) +
  prefill (first chunk start -> first token); TPOT includes the iterations
  other requests' prefill chunks lengthen. The running requests' KV is a
  token pool of the HBM KV budget per worker, accounted apart from the
  prefix cache's HBM tier (``sim.replica.workers``); ``compute.preemption``
  when it runs out.
* ``timing=False``: the hit-rate-only replay, no SimPy: requests are handled
  in arrival order and written to the cache at once. Sweeps and oracle
  comparisons use it.

Sizes, workload preparation and the helpers the other modes share live in
``sim.modes.common``.
"""
from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import simpy

from sim.cache.node import NodeCache
from sim.cache.tier import Tier
from sim.config import Config
from sim.engine import timed_ops, timed_run
from sim.engine.choice import resolve_engine
from sim.engine.dispatch import KERNELS
from sim.engine.layout import SCRATCH_N
from sim.engine.node_cache import CompiledNodeCache
from sim.engine.replay import run_fast as run_fast_compiled
from sim.engine.routing import ROUTER_KERNELS, CompiledRouter, router_state, session_index
from sim.modes.common import (
    NodeSetup,
    policy_params,
    positions_still_read,
    service_times,
    trim_tokens,
    worker_replicas,
)
from sim.modes.result_rows import COLUMNS, ResultRows, block_size, streams
from sim.policies import make_policy
from sim.policies.base import REGISTRY as POLICIES
from sim.policies.base import AccessContext
from sim.replica.engine import BatchingReplica
from sim.replica.request import Req
from sim.report.request_stream import RequestSink
from sim.report.single import SingleTotals
from sim.routing.base import Router
from sim.routing.node import RouteState
from sim.routing.registry import make as make_router
from sim.timing.event_loop import run_to_end, timer
from sim.timing.node_io import NodeIO, PrefillCost, all_done
from sim.timing.prefetch import InstantPrefetch, SessionPrefetcher
from sim.timing.step_cost import StepModel
from trace.workload import Workload

OCCUPANCY_SAMPLES = 200


def build_cache(cfg: Config, setup: NodeSetup, policy: str, ctx: AccessContext) -> NodeCache | CompiledNodeCache:
    """The node's tier hierarchy: compiled when the policy has a kernel (cache.engine)."""
    params = policy_params(cfg, setup.block_tokens)
    bb = setup.block_bytes
    write_through = cfg.cache.write_policy == "write_through"
    if use_engine(cfg, policy):
        return CompiledNodeCache(policy, setup.hbm_blocks, setup.n_workers, setup.dram_blocks, setup.ssd_blocks,
                                 bb, ctx, params, write_through=write_through)
    hbm = [
        Tier("hbm", setup.hbm_blocks, bb, make_policy(policy, setup.hbm_blocks, ctx, **params))
        for _ in range(setup.n_workers)
    ]
    dram = Tier("dram", setup.dram_blocks, bb, make_policy(policy, setup.dram_blocks, ctx, **params))
    ssd = Tier("ssd", setup.ssd_blocks, bb, make_policy(policy, setup.ssd_blocks, ctx, **params))
    return NodeCache(hbm, dram, ssd, write_through=write_through)


def use_engine(cfg: Config, policy: str) -> bool:
    """Run `policy` on the compiled engine? (cache.engine: auto | compiled | python)"""
    return resolve_engine(cfg.cache.engine, policy, policy in KERNELS, compiled=", ".join(sorted(KERNELS)))


@dataclass
class RunResult:
    """Everything one replay measured; sim.report.single turns it into report metrics."""

    policy: str
    timing: bool
    setup: NodeSetup
    cache: NodeCache | CompiledNodeCache
    workload: Workload
    totals: SingleTotals  # what the report reads of the per-request rows (sim.report.single)
    # The per-request rows (sim.modes.result_rows.COLUMNS) when the run keeps them whole; None when it
    # streamed them a block at a time (above report.exact_quantiles_max_requests)
    hit_blocks: np.ndarray | None = None  # (n, 3) blocks served from hbm, dram, ssd
    hit_tokens: np.ndarray | None = None  # (n, 3) tokens served from hbm, dram, ssd
    worker: np.ndarray | None = None
    queue_s: np.ndarray | None = None
    load_s: np.ndarray | None = None
    prefill_s: np.ndarray | None = None
    ttft_s: np.ndarray | None = None
    tpot_s: np.ndarray | None = None
    e2e_s: np.ndarray | None = None
    recomputed_tokens: np.ndarray | None = None  # cached tokens recomputed rather than loaded (cache.load_policy)
    most_blocks: int = 1  # the most row blocks held at once (sim.modes.result_rows)
    sim_time_s: float = 0.0
    wall_s: float = 0.0
    prefetch: dict | None = None  # SessionPrefetcher.report() (timed runs with a prefetching policy)
    busy_s: dict = field(default_factory=dict)
    iteration_ms: dict | None = None  # p50/p90/p99/mean of the replicas' iteration times (timed)
    preemptions: int = 0
    io: dict = field(default_factory=dict)  # NodeIO.summary(): tier_io bytes, recomputed prefixes (timed runs)


class NodePrefetchHost:
    """The node's cache and links as sim.timing.prefetch sees them (timed replay)."""

    def __init__(self, cache: NodeCache | CompiledNodeCache, io: NodeIO, hbm_blocks: int) -> None:
        self.cache, self.io, self.hbm_blocks = cache, io, hbm_blocks

    def split(self, wk: int, blocks) -> tuple[int, int]:
        nh, nd, ns = self.cache.lookup(wk, blocks)
        return nh, nd + ns

    def idle_s(self, wk: int, n_blocks: int) -> float:
        return self.io.idle_load_s(wk, n_blocks)

    def move(self, wk: int, blocks, n_hbm: int, n_lower: int) -> simpy.Event:
        _, nd, _ = self.cache.lookup(wk, blocks)
        d = min(nd, n_lower)  # the lookup order puts the prefix's DRAM blocks before its SSD ones
        evs = self.io.prefetch(wk, d, n_lower - d)
        return all_done(self.io.env, evs) or self.io.env.timeout(0)

    def promote(self, wk: int, blocks, pos0: int, n: int) -> list[int]:
        head = blocks[:n]
        before = [int(b) for b in head if not self.in_hbm(wk, int(b))]
        self.cache.prefetch(wk, head, pos0)
        return [b for b in before if self.in_hbm(wk, b)]

    def in_hbm(self, wk: int, block: int) -> bool:
        return self.cache.hbm_prefix(wk, np.array([block], dtype=np.int64)) == 1


def run_single(
    cfg: Config,
    workload: Workload,
    policy: str,
    *,
    ctx: AccessContext | None = None,
    timing: bool = True,
    progress: Callable[[int], None] | None = None,
    requests: RequestSink | None = None,
) -> RunResult:
    """Replay `workload` (already re-blocked, see prepare_workload) with `policy` in every tier. `requests`:
    where the per-request rows go (a list, or a RequestStream written as the run goes), or None."""
    t_wall = time.perf_counter()
    if ctx is None:
        ctx = AccessContext.from_workload(workload)
    setup = NodeSetup.from_config(cfg, workload.block_tokens)
    cache = build_cache(cfg, setup, policy, ctx)
    n = len(workload)
    totals = SingleTotals(cfg, workload, policy, timing, requests)
    streamed = streams(cfg, n, requests)  # else the rows are kept whole (sim.modes.result_rows)
    rows = ResultRows(n, timing, block_size(n, streamed), totals.add, keep=not streamed)
    res = RunResult(policy=policy, timing=timing, setup=setup, cache=cache, workload=workload, totals=totals)
    load = np.zeros(setup.n_workers, dtype=np.int64)
    # blocks: a list (Python cache) or an int64 array (compiled cache)
    hbm_prefix: Callable[[int, Any], int] = cache.hbm_prefix
    router: Router | CompiledRouter = make_router(
        cfg.cluster.router, "node", RouteState(setup.n_workers, load, hbm_prefix, seed=cfg.seed)
    )
    do_prefetch = POLICIES[policy].prefetch
    prefetcher = InstantPrefetch() if do_prefetch else None
    service = service_times(cfg, workload)
    compiled = isinstance(cache, CompiledNodeCache) and cfg.cluster.router in ROUTER_KERNELS
    if compiled:
        assert isinstance(cache, CompiledNodeCache)  # part of `compiled`
        sess = session_index(workload.session_id)
        # the compiled replays keep the router's prefix slots for their lookup (sim.engine.routing)
        whole = not timing or prefetcher is None
        R = router_state(cfg.cluster.router, router, n, int(sess.max()) + 1 if n else 0,
                         width=int(workload.n_blocks().max()) if n and whole else 0)
        router = CompiledRouter(cache.M, R, load, sess)
    # The Python replays tell the context when a request's accesses are done (AccessContext.accesses_done: the
    # learned policy then keeps its priorities for a window), unless a session prefetch reads earlier requests'
    release = ctx.accesses_done if prefetcher is None and isinstance(cache, NodeCache) else None
    if timing:
        # compiled cache calls per request (sim.engine.timed_ops) unless a session prefetcher reads the
        # cache between lookup and fetch
        fast = (R, sess) if compiled and prefetcher is None else None
        _run_timed(cfg, workload, setup, cache, router, load, prefetcher, res, rows, progress, fast, release)
    elif compiled:
        run_fast_compiled(cache, R, workload, sess, service, load, _sample_every(n), do_prefetch, rows, progress)
        res.sim_time_s = float(workload.arrival_ms[-1] / 1000.0) if n else 0.0
    else:
        _run_fast(workload, setup, cache, router, load, prefetcher, service, res, rows, progress, release)
    rows.close()
    res.most_blocks = rows.most_open
    for c in COLUMNS if rows.whole is not None else ():  # the one whole block: RunResult's arrays
        setattr(res, c.name, getattr(rows.whole, c.name))
    res.wall_s = time.perf_counter() - t_wall
    return res


# The compiled cache's timed replays run the compiled event model (sim.engine.timed_run) where it covers the
# settings; False: always SimPy's (the tests compare the two)
COMPILED_EVENTS = True


def _sample_every(n: int) -> int:
    return max(1, n // OCCUPANCY_SAMPLES)


def _sample(cache: NodeCache, t: float) -> None:
    occ = cache.occupancy
    occ["hbm"].append((t, sum(len(h) for h in cache.hbm)))
    occ["dram"].append((t, len(cache.dram)))
    occ["ssd"].append((t, len(cache.ssd)))


def _run_fast(w: Workload, setup, cache, router, load, prefetcher, service: np.ndarray, res, rows: ResultRows,
              progress, release: Callable[[int], None] | None = None) -> None:
    arr_s = w.arrival_ms / 1000.0
    offs, row = w.block_offsets, w.blocks
    inp, sess = w.input_tokens, w.session_id
    bt = setup.block_tokens
    departures: list[tuple[float, int]] = []  # (estimated finish, worker) - the load signal
    prefetches: list[tuple[float, int, int, int]] = []  # (time, session, req, worker)
    every = _sample_every(len(w))
    for i in range(len(w)):
        t = float(arr_s[i])
        while departures and departures[0][0] <= t:
            load[heapq.heappop(departures)[1]] -= 1
        while prefetches and prefetches[0][0] <= t:
            _, s, r, pw = heapq.heappop(prefetches)
            if prefetcher.still_latest(s, r):
                cache.prefetch(pw, row(r), int(offs[r]))
        lo = int(offs[i])
        blocks = row(i)
        s = int(sess[i])
        wk = router.choose(i, blocks, s)
        nh, nd, ns = cache.lookup(wk, blocks)
        npre = nh + nd + ns
        cache.fetch(wk, blocks, lo, npre)
        cache.store(wk, blocks, lo, npre)
        if release is not None:
            release(lo + len(blocks))
        b = rows.at(i)
        r = i - b.lo
        b.worker[r] = wk
        b.hit_blocks[r] = (nh, nd, ns)
        b.hit_tokens[r] = trim_tokens([nh, nd, ns], bt, int(inp[i]))
        rows.done(i)
        load[wk] += 1
        heapq.heappush(departures, (t + float(service[i]), wk))
        if prefetcher is not None and s >= 0:
            when = prefetcher.observe(s, i, t)
            if when is not None:
                heapq.heappush(prefetches, (when, s, i, wk))
        if i % every == 0:
            _sample(cache, t)
            if progress:
                progress(i)
    res.sim_time_s = float(arr_s[-1]) if len(w) else 0.0


def _timed_buffers(w: Workload, cache: CompiledNodeCache) -> tuple:
    """``P`` of sim.engine.timed_ops (the block lists in parent form and reusable buffers)."""
    pb = w.prefix_blocks()
    width = max(1, int(w.n_blocks().max()) if len(w) else 1)
    return (pb.parent, pb.shared, pb.own_off, pb.ids_stored(), np.empty(width, dtype=np.int64),
            np.empty(0, dtype=np.int64), np.empty(2 * max(1, int(cache.M[SCRATCH_N])), dtype=np.int64),
            bool(pb.distinct))


def _run_timed(cfg, w: Workload, setup, cache, router, load, prefetcher, res, rows: ResultRows, progress,
               fast=None, release: Callable[[int], None] | None = None) -> None:
    if fast is not None and COMPILED_EVENTS and timed_run.refusal(cfg) is None:
        # the same event model compiled, the same numbers (sim.engine.timed_node)
        timed_run.run(cfg, w, setup, cache, fast[0], fast[1], load, _timed_buffers(w, cache), res, rows, progress,
                      _sample_every(len(w)))
        return
    env = simpy.Environment()
    nw = setup.n_workers
    # PCIe in/out per worker, the node's host bridge and NVMe; loads vs recompute; layer-wise overlap
    io = NodeIO(env, cfg, nw, setup.gpus_per_worker, setup.block_bytes, setup.spec.n_layers)
    sync_backup = cache.write_through and not cfg.cache.async_backup
    arr_s = w.arrival_ms / 1000.0
    offs, row = w.block_offsets, w.blocks  # row(i): request i's blocks (a view, or built from the prefix form)
    # per-request scalars read as they are needed (ndarray.item), not held as Python lists for the run
    inp_at, out_at, sess = w.input_tokens.item, w.output_tokens.item, w.session_id
    bt = setup.block_tokens
    every = _sample_every(len(w))
    npre_of: dict[int, int] = {}  # cached blocks of the requests between arrival and first token
    no_blocks: list[int] = []  # the replica's scheduler does not read blocks here (PoolAdmission)
    in_flight: dict[int, Any] = {}  # block lists of the requests between arrival and first token
    arrived = [0]  # the next request to arrive (`release`: common.positions_still_read)

    pf = SessionPrefetcher(env, NodePrefetchHost(cache, io, setup.hbm_blocks), setup.block_bytes) \
        if prefetcher is not None else None

    if fast is not None:
        M, (R, sess_idx) = cache.M, fast
        P = _timed_buffers(w, cache)
        state = timed_ops.request_state(len(w))
        arrive_c, first_token_c = timed_ops.arrive, timed_ops.first_token

    def first_token_fast(eng: BatchingReplica, r: Req) -> None:
        i = r.i
        _, _, h2d, d2s = first_token_c(M, eng.idx, i, P, r.pos0, npre_of.pop(i), state)
        written(eng, r, h2d, d2s)

    def first_token(eng: BatchingReplica, r: Req) -> None:
        i, wk = r.i, eng.idx
        lo = int(offs[i])
        blocks = in_flight.pop(i)
        st = cache.store(wk, blocks, lo, npre_of.pop(i))
        if release is not None:
            release(positions_still_read(npre_of, arrived[0], offs.item))
        turn = partial(pf.turn_done, int(sess[i]), i, wk, blocks, lo) if pf is not None else None
        written(eng, r, st.hbm_to_dram, st.dram_to_ssd, turn)

    def written(eng: BatchingReplica, r: Req, h2d: int, d2s: int, turn: Callable[[], Any] | None = None) -> None:
        """The store's victims go down in the background (then the session prefetcher hears of the turn); the
        first token is out now, or once the write-back is when a synchronous write-through waits for it."""
        wait = sync_backup and h2d > 0
        bg = io.write_back(eng.idx, h2d, d2s, wait)
        if turn is not None:
            turn()
        if wait:
            bg[0].callbacks.append(lambda _e: first_out(eng, r))
        else:
            first_out(eng, r)

    def first_out(eng: BatchingReplica, r: Req) -> None:
        i, now = r.i, env.now
        r.t_kv = now  # first token out: TPOT runs from here (colocated: the KV is where decode reads it)
        b = rows.at(i)
        k = i - b.lo
        b.queue_s[k] = r.t_pstart - r.t_ready
        b.prefill_s[k] = now - r.t_pstart
        b.ttft_s[k] = now - r.t_arr
        workers.start_decode(eng, r)

    def done(r: Req) -> None:
        i, now = r.i, env.now
        n_out = r.out
        b = rows.at(i)
        k = i - b.lo
        b.tpot_s[k] = (now - r.t_kv) / (n_out - 1) if n_out > 1 else 0.0
        b.e2e_s[k] = now - r.t_arr
        load[b.worker[k]] -= 1
        rows.done(i)

    workers = worker_replicas(cfg, setup, env, w, first_token=first_token if fast is None else first_token_fast,
                              done=done)

    # the load-or-recompute choice prices a prefill with the workers' own step model (StepModel.prefill_s:
    # the same floats as iteration_s of the one chunk, unrolled)
    step = workers.step
    prefill_cost: PrefillCost = step.prefill_s if isinstance(step, StepModel) else (
        lambda new, cached: step.iteration_s([(new, cached)], 0, 0.0))

    def request(i: int) -> None:
        """Request i's arrival: route, look up, fetch, start the load; joins its worker when ready.

        A plain call from ``arrivals`` (not a SimPy process: two events and a generator fewer per
        request), made at the same point of the event order as the process's first step was."""
        t0 = env.now
        lo = int(offs[i])
        s = int(sess[i])
        n_in = inp_at(i)
        b = rows.at(i)
        k = i - b.lo
        if fast is not None:
            wk, npre, th, td, ts, d2h, s2h, h2d, d2s = arrive_c(M, R, load, i, sess_idx[i], P, lo,
                                                                (b.worker, b.hit_blocks, b.hit_tokens), k, bt, n_in)
        else:
            arrived[0] = i + 1
            blocks = row(i)
            in_flight[i] = blocks  # first_token stores them: built once per request
            wk = router.choose(i, blocks, s)
            load[wk] += 1
            b.worker[k] = wk
            nh, nd, ns = cache.lookup(wk, blocks)
            if pf is not None:
                pf.arrived(s, wk, blocks, nh, nh + nd + ns)
            tr = cache.fetch(wk, blocks, lo, nh + nd + ns)
            d2h, s2h, h2d, d2s = tr.dram_to_hbm, tr.ssd_to_hbm, tr.hbm_to_dram, tr.dram_to_ssd
            npre = nh + nd + ns
            b.hit_blocks[k] = (nh, nd, ns)
            if npre * bt <= n_in:  # no partial last block to trim (trim_tokens' answer, without the list)
                th, td, ts = nh * bt, nd * bt, ns * bt
            else:
                th, td, ts = trim_tokens([nh, nd, ns], bt, n_in)
            b.hit_tokens[k] = (th, td, ts)
        npre_of[i] = npre
        # Load the cached DRAM/SSD part or recompute it (cache.load_policy); join the replica when the
        # load is in, or layer-wise as soon as its prefill would no longer stall on it (estimated now;
        # a load slower than estimated does not hold the chunked prefill back).
        ld = io.start_load(wk, (th, td, ts), (d2h, s2h), n_in, prefill_cost)
        b.recomputed_tokens[k] = ld.choice.recomputed_tokens
        io.write_back(wk, h2d, d2s, False)
        ready = ld.ready()
        if ready is None:
            join(i, wk, ld, t0, lo, s, n_in)
        else:
            ready.callbacks.append(lambda _e: join(i, wk, ld, t0, lo, s, n_in))

    def join(i: int, wk: int, ld, t0: float, lo: int, s: int, n_in: int) -> None:
        b = rows.at(i)
        b.load_s[i - b.lo] = env.now - t0
        r = Req(i, n_in, out_at(i), no_blocks, lo, t0, s)
        # At least one token is always computed: it yields the first output token's logits.
        r.cached = max(0, min(ld.choice.tokens_used, n_in - 1))
        workers.submit(wk, r)

    def arrivals():
        # Requests arriving at one instant are handled after arrivals' step, in order, before any
        # other event of that instant - where their processes' (urgent) first steps ran before -
        # and after the timeout to the next arrival is scheduled (the same event order).
        due: list[int] = []
        for i in range(len(w)):
            dt = float(arr_s[i]) - env._now  # env.now without the property call
            if dt > 0:
                nxt = timer(env, dt)  # env.timeout's Timeout (dt > 0)
                for j in due:
                    request(j)
                due.clear()
                yield nxt
            due.append(i)
            if i % every == 0:
                _sample(cache, env.now)
                if progress:
                    progress(i)
        for j in due:
            request(j)

    env.process(arrivals())
    run_to_end(env)
    res.sim_time_s = float(env.now)
    busy = [workers.busy(k) for k in range(nw)]
    res.busy_s = {
        "decode": [b[2] for b in busy],
        "prefill": [b[1] for b in busy],
        **io.busy_s(),
    }
    res.io = io.summary()
    if pf is not None:
        pf.finish()
        res.prefetch = pf.report()
    res.iteration_ms = workers.hist.summary_ms()
    res.preemptions = workers.preemptions()

