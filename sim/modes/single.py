"""Single-node simulator: N GPU workers, shared host DRAM and local NVMe SSD.

Two replay paths share the cache hierarchy (``NodeCache``) and routers:

* ``timing=True``: a SimPy process per request - arrival -> worker choice ->
  longest cached prefix (HBM, DRAM, SSD) -> load of the DRAM/SSD part, or
  its recompute when that is faster, over read-first links, layer-wise
  overlapped with the prefill (``sim.timing.node_io``) -> FIFO prefill on the worker -> decode in the
  worker's continuous batch (fluid model: events only when a request joins
  or leaves, never per token) -> new blocks written to HBM (victims demoted).
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
from typing import Any

import numpy as np
import simpy

from sim.cache.node import NodeCache, Traffic
from sim.cache.tier import Tier
from sim.config import Config
from sim.engine.choice import resolve_engine
from sim.engine.dispatch import KERNELS
from sim.engine.node_cache import CompiledNodeCache
from sim.engine.replay import run_fast as run_fast_compiled
from sim.engine.routing import ROUTER_KERNELS, CompiledRouter, router_state, session_index
from sim.modes.common import NodeSetup, policy_params, service_times, trim_tokens
from sim.policies import make_policy
from sim.policies.base import REGISTRY as POLICIES
from sim.policies.base import AccessContext
from sim.routing.base import Router
from sim.routing.node import RouteState
from sim.routing.registry import make as make_router
from sim.timing import compute
from sim.timing.fluid import FluidShare
from sim.timing.node_io import NodeIO
from sim.timing.slots import SlotServer
from trace.workload import Workload

OCCUPANCY_SAMPLES = 200
PREFETCH_GAP_FRACTION = 0.8  # prefetch a session at 80% of its expected think time


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
    hit_blocks: np.ndarray  # (n, 3) blocks served from hbm, dram, ssd
    hit_tokens: np.ndarray  # (n, 3) tokens served from hbm, dram, ssd
    worker: np.ndarray
    queue_s: np.ndarray
    load_s: np.ndarray
    prefill_s: np.ndarray
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_s: np.ndarray
    sim_time_s: float = 0.0
    wall_s: float = 0.0
    prefetch_traffic: Traffic = field(default_factory=Traffic)
    prefetch_skipped: int = 0
    busy_s: dict = field(default_factory=dict)
    io: dict = field(default_factory=dict)  # NodeIO.summary(): tier_io bytes, recomputed prefixes (timed runs)


class _SessionPrefetch:
    """Predicts a session's next turn from observed turn gaps (no look-ahead)."""

    def __init__(self) -> None:
        self.last_arrival: dict[int, float] = {}
        self.last_req: dict[int, int] = {}
        self.gap_sum = 0.0
        self.gap_n = 0
        self.skipped = 0  # prefetches dropped because the link was busy (timed replay)

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


def run_single(
    cfg: Config,
    workload: Workload,
    policy: str,
    *,
    ctx: AccessContext | None = None,
    timing: bool = True,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Replay `workload` (already re-blocked, see prepare_workload) with `policy` in every tier."""
    t_wall = time.perf_counter()
    if ctx is None:
        ctx = AccessContext.from_workload(workload)
    setup = NodeSetup.from_config(cfg, workload.block_tokens)
    cache = build_cache(cfg, setup, policy, ctx)
    n = len(workload)
    nan = np.full(n, np.nan)
    res = RunResult(
        policy=policy, timing=timing, setup=setup, cache=cache, workload=workload,
        hit_blocks=np.zeros((n, 3), dtype=np.int64), hit_tokens=np.zeros((n, 3), dtype=np.int64),
        worker=np.zeros(n, dtype=np.int64), queue_s=nan.copy(), load_s=nan.copy(),
        prefill_s=nan.copy(), ttft_s=nan.copy(), tpot_s=nan.copy(), e2e_s=nan.copy(),
    )
    load = np.zeros(setup.n_workers, dtype=np.int64)
    # blocks: a list (Python cache) or an int64 array (compiled cache)
    hbm_prefix: Callable[[int, Any], int] = cache.hbm_prefix
    router: Router | CompiledRouter = make_router(
        cfg.cluster.router, "node", RouteState(setup.n_workers, load, hbm_prefix, seed=cfg.seed)
    )
    do_prefetch = POLICIES[policy].prefetch
    prefetcher = _SessionPrefetch() if do_prefetch else None
    service = service_times(cfg, setup, workload)
    compiled = isinstance(cache, CompiledNodeCache) and cfg.cluster.router in ROUTER_KERNELS
    if compiled:
        assert isinstance(cache, CompiledNodeCache)  # part of `compiled`
        sess = session_index(workload.session_id)
        R = router_state(cfg.cluster.router, router, n, int(sess.max()) + 1 if n else 0)
        router = CompiledRouter(cache.M, R, load, sess)
    if timing:
        _run_timed(cfg, workload, setup, cache, router, load, prefetcher, res, progress)
    elif compiled:
        out = run_fast_compiled(cache, R, workload, sess, service, load, _sample_every(n), do_prefetch, progress)
        res.worker, res.hit_blocks, res.hit_tokens = out["worker"], out["hit_blocks"], out["hit_tokens"]
        res.sim_time_s = float(workload.arrival_ms[-1] / 1000.0) if n else 0.0
    else:
        _run_fast(workload, setup, cache, router, load, prefetcher, service, res, progress)
    if prefetcher is not None:
        res.prefetch_skipped = prefetcher.skipped
    res.wall_s = time.perf_counter() - t_wall
    return res


def _sample_every(n: int) -> int:
    return max(1, n // OCCUPANCY_SAMPLES)


def _sample(cache: NodeCache, t: float) -> None:
    occ = cache.occupancy
    occ["hbm"].append((t, sum(len(h) for h in cache.hbm)))
    occ["dram"].append((t, len(cache.dram)))
    occ["ssd"].append((t, len(cache.ssd)))


def _run_fast(w: Workload, setup, cache, router, load, prefetcher, service: np.ndarray, res, progress) -> None:
    arr_s = w.arrival_ms / 1000.0
    offs, ids = w.block_offsets, w.block_ids
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
                cache.prefetch(pw, ids[offs[r]:offs[r + 1]], int(offs[r]))
        lo, hi = int(offs[i]), int(offs[i + 1])
        blocks = ids[lo:hi]
        s = int(sess[i])
        wk = router.choose(i, blocks, s)
        nh, nd, ns = cache.lookup(wk, blocks)
        npre = nh + nd + ns
        cache.fetch(wk, blocks, lo, npre)
        cache.store(wk, blocks, lo, npre)
        res.worker[i] = wk
        res.hit_blocks[i] = (nh, nd, ns)
        res.hit_tokens[i] = trim_tokens([nh, nd, ns], bt, int(inp[i]))
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


def _run_timed(cfg, w: Workload, setup, cache, router, load, prefetcher, res, progress) -> None:
    env = simpy.Environment()
    c = cfg.compute
    nw = setup.n_workers
    gpw = setup.gpus_per_worker
    tp = cfg.model.tp
    # PCIe in/out per worker, the node's host bridge and NVMe; loads vs recompute; layer-wise overlap
    io = NodeIO(env, cfg, nw, gpw, setup.block_bytes, setup.spec.n_layers)
    prefill_gpu = [SlotServer(env, 1) for _ in range(nw)]
    batch_slots = [SlotServer(env, c.max_batch_size) for _ in range(nw)]
    spec, gpu, kv_dtype, wdt = setup.spec, setup.gpu, cfg.model.kv_dtype, cfg.model.weight_dtype
    overhead = c.decode_overhead_ms / 1000.0

    step_s = compute.decode_iteration_time_fn(spec, gpu, kv_dtype=kv_dtype, weight_dtype=wdt, tp=tp,
                                              overhead_s=overhead)

    def iteration_rate(n_active: int, kv_tokens: float) -> float:
        # tokens per second per request in a batch of n_active requests
        return 1.0 / step_s(kv_tokens)

    decoders = [FluidShare(env, iteration_rate) for _ in range(nw)]
    sync_backup = cache.write_through and not cfg.cache.async_backup
    arr_s = w.arrival_ms / 1000.0
    offs, ids = w.block_offsets, w.block_ids
    inp, out, sess = w.input_tokens, w.output_tokens, w.session_id
    bt = setup.block_tokens
    every = _sample_every(len(w))
    done = [0]

    def background(traffic: Traffic, wk: int):
        return io.write_back(wk, traffic.hbm_to_dram, traffic.dram_to_ssd)

    def prefill_cost(new: int, cached: int) -> float:
        return compute.prefill_time_s(spec, gpu, new, cached, tp=tp, mfu=c.mfu, compute_dtype=c.dtype)

    def prefetch_proc(delay: float, s: int, r: int, wk: int):
        yield env.timeout(delay)
        if prefetcher.still_latest(s, r):
            blocks = ids[offs[r]:offs[r + 1]]
            _, nd, ns = cache.lookup(wk, blocks)
            # Prefetch is background work: it yields to demand loads instead of
            # queueing in front of them on a busy link.
            if io.reads_busy(wk, bool(nd), bool(ns)):
                prefetcher.skipped += 1
                return
            t = cache.prefetch(wk, blocks, int(offs[r]))
            res.prefetch_traffic.add(t)
            evs = io.load(wk, t.dram_to_hbm, t.ssd_to_hbm) + background(t, wk)
            if evs:
                yield env.all_of(evs)

    def request(i: int):
        t0 = env.now
        lo, hi = int(offs[i]), int(offs[i + 1])
        blocks = ids[lo:hi]
        s = int(sess[i])
        wk = router.choose(i, blocks, s)
        load[wk] += 1
        res.worker[i] = wk
        nh, nd, ns = cache.lookup(wk, blocks)
        npre = nh + nd + ns
        traffic = cache.fetch(wk, blocks, lo, npre)
        res.hit_blocks[i] = (nh, nd, ns)
        th, td, ts = trim_tokens([nh, nd, ns], bt, int(inp[i]))
        res.hit_tokens[i] = (th, td, ts)
        if prefetcher is not None and s >= 0:
            when = prefetcher.observe(s, i, t0)
            if when is not None:
                env.process(prefetch_proc(when - t0, s, i, wk))
        # Load the cached DRAM/SSD part or recompute it (cache.load_policy); queue for the GPU when
        # the load is in, or layer-wise as soon as the prefill would not stall on it.
        ld = io.start_load(wk, (th, td, ts), (traffic.dram_to_hbm, traffic.ssd_to_hbm), int(inp[i]), prefill_cost)
        background(traffic, wk)
        ready = ld.ready()
        if ready is not None:
            yield ready
        t_loaded = env.now
        wait = prefill_gpu[wk].acquire()
        if wait is not None:
            yield wait
        t_start = env.now
        yield from ld.prefill(ld.choice.prefill_s)
        prefill_gpu[wk].release()
        t_first = env.now
        st = cache.store(wk, blocks, lo, npre)
        bg = background(st, wk)
        if sync_backup and st.hbm_to_dram:
            yield bg[0]
            t_first = env.now
        res.load_s[i] = ld.load_s
        res.queue_s[i] = t_start - t_loaded
        res.prefill_s[i] = t_first - t_start
        res.ttft_s[i] = t_first - t0
        n_out = int(out[i])
        if n_out > 1:
            wait = batch_slots[wk].acquire()
            if wait is not None:
                yield wait
            # KV read per iteration ~ prompt + half the output, averaged over the decode.
            yield decoders[wk].serve(n_out - 1, load=float(inp[i]) + n_out / 2.0)
            batch_slots[wk].release()
            res.tpot_s[i] = (env.now - t_first) / (n_out - 1)
        else:
            res.tpot_s[i] = 0.0
        res.e2e_s[i] = env.now - t0
        load[wk] -= 1
        done[0] += 1

    def arrivals():
        for i in range(len(w)):
            dt = float(arr_s[i]) - env.now
            if dt > 0:
                yield env.timeout(dt)
            env.process(request(i))
            if i % every == 0:
                _sample(cache, env.now)
                if progress:
                    progress(i)

    env.process(arrivals())
    env.run()
    res.sim_time_s = float(env.now)
    res.busy_s = {"decode": [d.busy_time for d in decoders], **io.busy_s()}
    res.io = io.summary()

