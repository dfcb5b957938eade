"""Cluster simulator: racks of GPU nodes, an EIC pool per rack, remote SSD, a network, a router.

Two replay paths share the cache hierarchy (``ClusterCache``), the network
(``Network``: bytes per link class) and the routers (``sim.routing``):

* ``timing=True``: SimPy, callback-driven (no process per request): arrival
  -> router -> cached prefix served into the worker's HBM from wherever it
  lives (peer HBM over NVLink, host DRAM over PCIe, the rack's EIC pool or
  another rack's over RDMA, remote SSD), one network transfer per source,
  in parallel, with jitter/tail/contention - or, part by part, recomputed
  when that gives the earlier first token (``sim.modes.cluster_io``:
  cache.load_policy, cache.load_overlap) -> the worker's replica
  (``sim.replica``, as on one node: chunked prefill sharing iterations with
  the decode batch, at most compute.max_num_seqs requests, a KV token pool,
  compute.preemption) -> first token when the last chunk is done -> new
  blocks written to HBM (victims demoted in the background; the EIC -> SSD
  spills load the links that reads use, the other write-backs only travel
  link directions no request waits on, so their bytes are counted but cost
  no events) -> decode in the same replica's continuous batch.
* ``timing=False``: the hit-rate-only replay, no SimPy: requests in arrival
  order, stored at once; load is tracked with estimated service times.

Everything per worker (HBM tier, replica - the one SimPy process per used
worker -, load index of a rack) is created on first use; idle GPUs cost an
array slot. Requests are callbacks, never processes.

A worker is one model replica of tp x pp GPUs inside a node (hardware,
compute and tier sizes come from ``sim.modes.common.NodeSetup``); its lead
GPU is its network endpoint and its shards move over its GPUs' links in
parallel (``lanes``).
"""
from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

import sim.policies  # noqa: F401  (registers every policy in REGISTRY)
from sim.cache.cluster import ClusterCache
from sim.cache.layout import LOC_NAMES, Layout
from sim.cache.unbounded import Unbounded
from sim.config import Config
from sim.engine.choice import resolve_engine
from sim.engine.cluster_cache import CompiledClusterCache
from sim.modes.cluster_io import ClusterIO
from sim.modes.cluster_prefetch import ClusterPrefetchHost, prefetch_instant
from sim.modes.common import NodeSetup, policy_params, service_times, trim_tokens, worker_replicas
from sim.policies import make_policy
from sim.policies.base import REGISTRY, AccessContext, Policy
from sim.policies.fifo import FIFO
from sim.policies.lru import LRU
from sim.replica.engine import BatchingReplica
from sim.replica.histogram import IterationHistogram
from sim.replica.request import Req
from sim.routing.cluster import ClusterLoad, ClusterRouteState
from sim.routing.registry import make as make_router
from sim.timing.event_loop import run_to_end, timer
from sim.timing.network import Network
from sim.timing.prefetch import InstantPrefetch, SessionPrefetcher, prefetch_untimed
from sim.timing.step_cost import StepModel
from sim.timing.topology import Topology
from trace.workload import Workload

GiB = 1024**3
NLOC = len(LOC_NAMES)


@dataclass
class ClusterSetup:
    """Sizes derived once from config + workload."""

    node: NodeSetup  # per-worker HBM, per-node DRAM, block bytes, model/GPU specs
    topo: Topology
    layout: Layout
    eic_blocks: int  # per rack
    ssd_blocks: int  # remote pool

    @classmethod
    def from_config(cls, cfg: Config, block_tokens: int, topo: Topology | None = None) -> ClusterSetup:
        node = NodeSetup.from_config(cfg, block_tokens)
        topo = topo if topo is not None else Topology.from_config(cfg)
        layout = Layout(topo, node.gpus_per_worker)
        bb = node.block_bytes
        eic = int(cfg.hardware.eic.capacity_gib * GiB // bb) if topo.has_eic else 0
        ssd = int(cfg.cluster.remote_ssd_capacity_gib * GiB // bb) if topo.has_remote_ssd else 0
        return cls(node=node, topo=topo, layout=layout, eic_blocks=eic, ssd_blocks=ssd)


@dataclass
class ClusterResult:
    """Everything one cluster replay measured; sim.report.cluster turns it into the report schema."""

    policy: str
    router: str
    timing: bool
    setup: ClusterSetup
    cache: ClusterCache | CompiledClusterCache
    network: Network
    workload: Workload
    hit_blocks: np.ndarray  # (n, 6) blocks per location (LOC_NAMES)
    hit_tokens: np.ndarray  # (n, 6) tokens per location
    worker: np.ndarray
    net_s: np.ndarray  # waiting for the cached prefix to arrive
    queue_s: np.ndarray  # prefill queue
    prefill_s: np.ndarray
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_s: np.ndarray
    busy_s: np.ndarray  # per request: time it occupied its worker (e2e, or the estimate without timing)
    recomputed_tokens: np.ndarray  # cached tokens recomputed rather than loaded (cache.load_policy; timed)
    sim_time_s: float = 0.0
    wall_s: float = 0.0
    decode_busy_s: dict = field(default_factory=dict)  # worker -> seconds with a non-empty batch
    iteration_ms: dict | None = None  # p50/p90/p99/mean of the replicas' iteration times (timed)
    preemptions: int = 0
    io: dict = field(default_factory=dict)  # ClusterIO.summary(): tier_io bytes, recomputed prefixes (timed runs)
    prefetch: dict = field(default_factory=dict)  # the report's prefetch block (sim.timing.prefetch)
    iteration_hist: IterationHistogram | None = None  # the replicas' iterations together (timed)

    def cache_summary(self) -> dict:
        """The cache's counters as plain data (what the report reads; summed over pods when partitioned)."""
        return cache_summary(self.cache)

    def network_stats(self) -> dict:
        return self.network.stats()


_TIER_COUNTERS = ("hits", "inserts", "demotions_in", "promotions_out", "taken", "evictions", "dropped", "rejected")


def cache_summary(cache: ClusterCache | CompiledClusterCache) -> dict:
    """Per tier kind: summed counters, blocks held, instances used; capacities; block moves."""
    tiers = {}
    for name, group in cache.tier_groups().items():
        st = [t.stats for t in group]
        agg = {key: int(sum(getattr(s, key) for s in st)) for key in _TIER_COUNTERS}
        tiers[name] = {**agg, "used_blocks": int(sum(len(t) for t in group)), "instances_used": len(group)}
    return {"tiers": tiers, "capacity_blocks": {k: int(v) for k, v in cache.capacity_blocks().items()},
            "moved": {str(k): int(v) for k, v in cache.moved.items()},
            "eic_blocks": int(cache.eic_blocks), "ssd_blocks": int(cache.ssd_blocks)}


def prefill_fn(cfg: Config, setup: ClusterSetup) -> Callable[[int, int], float]:
    """(new tokens, cached tokens) -> prefill seconds on one worker."""
    return StepModel.from_config(cfg).prefill_s


class CostEstimator:
    """TTFT estimate on a worker (cache_load_balanced): queue wait + prefix transfer + prefill."""

    def __init__(self, cfg: Config, setup: ClusterSetup, prefill_free: dict[int, float],
                 now: Callable[[], float]) -> None:
        topo, lay = setup.topo, setup.layout
        self.bt = setup.node.block_tokens
        self.bb = setup.node.block_bytes
        self.prefill_free = prefill_free
        self.now = now
        lanes = lay.gpus_per_worker
        # Latency and bottleneck per location: uniform across workers (a regular topology),
        # taken from worker 0 and, for the remote pools, the next rack.
        me = topo.gpu(lay.gpu(0))
        srcs = [None, topo.gpu(lay.gpu(1)) if lay.workers_per_node > 1 else None, topo.dram(0),
                topo.eic(0) if topo.has_eic else None,
                topo.eic(1 % topo.n_racks) if topo.has_eic and topo.n_racks > 1 else None,
                topo.ssd() if topo.has_remote_ssd else None]
        self.paths = [
            (topo.path_latency_s(s, me), topo.bottleneck_bytes_s(s, me, lanes)) if s is not None else (0.0, 1.0)
            for s in srcs
        ]
        self.prefill = prefill_fn(cfg, setup)
        # Prefill seconds by cached tokens for the request being routed: its candidates
        # often share a cached prefix length (0 on the idle ones).
        self._pre_inp = -1
        self._pre: dict[int, float] = {}

    def transfer_s(self, counts: list[int]) -> float:
        t = 0.0
        bb = self.bb
        for k in range(1, NLOC):
            n = counts[k]
            if n:
                lat, bw = self.paths[k]
                t = max(t, lat + n * bb / bw)
        return t

    def queue_s(self, w: int) -> float:
        """Wait before w's prefill engine is free (FIFO)."""
        return max(0.0, self.prefill_free.get(w, 0.0) - self.now())

    def ttft_after_queue_s(self, queue_s: float, counts: list[int], input_tokens: int) -> float:
        cached = min(sum(counts) * self.bt, input_tokens)
        if input_tokens != self._pre_inp:
            self._pre_inp = input_tokens
            self._pre.clear()
        pre = self._pre.get(cached)
        if pre is None:
            pre = self._pre[cached] = self.prefill(input_tokens - cached, cached)
        return queue_s + self.transfer_s(counts) + pre


def build_cluster_cache(cfg: Config, setup: ClusterSetup, policy: str, ctx: AccessContext,
                        distinct_blocks: int) -> ClusterCache:
    """Lazy tiers with `policy`; a tier that can hold all `distinct_blocks` of the run gets `Unbounded`."""
    # One parameter set (and one reuse history for selective_write) for every tier of the run.
    params = policy_params(cfg, setup.node.block_tokens)
    distinct = distinct_blocks

    def make(cap: int):
        p = make_policy(policy, cap, ctx, **params)
        if cap >= distinct and type(p).admit is Policy.admit:
            return Unbounded(cap)  # never fills up: same behaviour, no recency bookkeeping
        return p

    return ClusterCache(
        setup.layout,
        hbm_blocks=setup.node.hbm_blocks, dram_blocks=setup.node.dram_blocks,
        eic_blocks=setup.eic_blocks, ssd_blocks=setup.ssd_blocks, block_bytes=setup.node.block_bytes,
        policy=make,
        admission_filter=REGISTRY[policy].admit is not Policy.admit,
        evict_to_eic=cfg.cluster.evict_to_eic, cross_rack_lookup=cfg.cluster.cross_rack_lookup,
        write_through=cfg.cache.write_policy == "write_through",
    )


def queue_recency(policy: str) -> bool | None:
    """How the compiled cache can run `policy` exactly: True (LRU order: a hit moves the block to
    the back), False (FIFO order), None (it cannot: own victim choice or an admission filter)."""
    cls = REGISTRY.get(policy)
    if cls is None or not issubclass(cls, LRU) or cls.wants_incoming:
        return None
    if any(getattr(cls, m) is not getattr(LRU, m) for m in ("insert", "victim", "remove", "admit")):
        return None
    if cls.touch is LRU.touch:
        return True
    return False if cls.touch is FIFO.touch else None


def build_compiled_cache(cfg: Config, setup: ClusterSetup, recency: bool, distinct_blocks: int) -> CompiledClusterCache:
    return CompiledClusterCache(
        setup.layout,
        hbm_blocks=setup.node.hbm_blocks, dram_blocks=setup.node.dram_blocks,
        eic_blocks=setup.eic_blocks, ssd_blocks=setup.ssd_blocks, block_bytes=setup.node.block_bytes,
        n_blocks=distinct_blocks, recency=recency,
        evict_to_eic=cfg.cluster.evict_to_eic, cross_rack_lookup=cfg.cluster.cross_rack_lookup,
        write_through=cfg.cache.write_policy == "write_through",
    )


def run_cluster(
    cfg: Config,
    workload: Workload,
    policy: str,
    router: str | None = None,
    *,
    ctx: AccessContext | None = None,
    timing: bool = True,
    topo: Topology | None = None,
    progress: Callable[[int], None] | None = None,
    engine: str | None = None,
) -> ClusterResult:
    """Replay `workload` (already re-blocked, see sim.modes.common.prepare_workload) on the cluster.

    `engine` (default ``cache.engine``): "python" runs the reference ``ClusterCache``;
    "compiled" the numba twin (``sim.engine.cluster_cache``; queue-ordered policies only);
    "auto" the compiled one when it can. Both give identical results."""
    t_wall = time.perf_counter()
    router = router or cfg.cluster.router
    recency = queue_recency(policy)
    compiled = resolve_engine(engine or cfg.cache.engine, policy, recency is not None, kernel="compiled cluster cache",
                              compiled="LRU and FIFO order: lru, fifo, session_prefetch")
    if ctx is None:
        ctx = AccessContext.from_workload(workload)
    setup = ClusterSetup.from_config(cfg, workload.block_tokens, topo)
    cache: ClusterCache | CompiledClusterCache
    rows: Callable[[int], Any]  # request i's blocks, as the cache takes them
    if compiled and recency is not None and setup.node.hbm_blocks > 0:  # recency: the compiled queue order
        # Dense block ids 0..U-1 index the compiled cache's per-block arrays; renumbering the prefix
        # form's own blocks renumbers every request's (trace.prefix), without expanding the trace.
        pb, n_unique = workload.prefix_blocks().densified()
        rows = pb.row
        cache = build_compiled_cache(cfg, setup, recency, n_unique)
    else:
        ids = workload.block_ids.tolist()  # Python ints: the dict-based cache's fastest keys
        offs = workload.block_offsets.tolist()

        def python_rows(i: int) -> list[int]:
            return ids[offs[i]:offs[i + 1]]

        rows = python_rows
        cache = build_cluster_cache(cfg, setup, policy, ctx, ctx.n_unique)
    net = Network.from_config(cfg, setup.topo)
    n = len(workload)
    nan = np.full(n, np.nan)
    res = ClusterResult(
        policy=policy, router=router, timing=timing, setup=setup, cache=cache, network=net, workload=workload,
        hit_blocks=np.zeros((n, NLOC), dtype=np.int64), hit_tokens=np.zeros((n, NLOC), dtype=np.int64),
        worker=np.zeros(n, dtype=np.int64), net_s=nan.copy(), queue_s=nan.copy(), prefill_s=nan.copy(),
        ttft_s=nan.copy(), tpot_s=nan.copy(), e2e_s=nan.copy(), busy_s=np.zeros(n),
        recomputed_tokens=np.zeros(n, dtype=np.int64),
    )
    loads = ClusterLoad(setup.layout)
    prefill_free: dict[int, float] = {}
    clock = [0.0]
    cost = CostEstimator(cfg, setup, prefill_free, lambda: clock[0])
    state = ClusterRouteState(setup.layout, cache, loads, workload.input_tokens, cost, seed=cfg.seed)
    rt = make_router(router, "cluster", state, where="cluster.router")
    run = _run_timed if timing else _run_fast
    run(cfg, workload, rows, setup, cache, net, rt, loads, prefill_free, clock, res, progress)
    res.wall_s = time.perf_counter() - t_wall
    return res


def _every(n: int) -> int:
    return max(1, n // 200)


def _run_fast(cfg, w: Workload, rows, setup: ClusterSetup, cache, net, router, loads, prefill_free, clock, res,
              progress) -> None:
    # Python lists: per-request scalar reads from numpy arrays are slow in this loop.
    arr_s = (w.arrival_ms / 1000.0).tolist()
    offs = w.block_offsets.tolist()
    inp, sess = w.input_tokens.tolist(), w.session_id.tolist()
    service = service_times(cfg, setup.node, w).tolist()
    bt, bb = setup.node.block_tokens, setup.node.block_bytes
    lanes = setup.layout.gpus_per_worker
    prefill = prefill_fn(cfg, setup)
    workers: list[int] = []
    hb: list[list[int]] = []
    ht: list[list[int]] = []
    departures: list[tuple[float, int, int]] = []  # (estimated finish, seq, worker): the load signal
    every = _every(len(w))
    account = net.account
    pf = InstantPrefetch() if REGISTRY[res.policy].prefetch else None
    prefetches: list[tuple[float, int, int, int]] = []  # (time, session, req, worker)
    prefetched = 0

    def account_moves(moves) -> None:
        for (src, dst), nb in moves.items():
            account(src, dst, nb * bb, lanes)

    choose, acquire, store = router.choose, cache.acquire, cache.store
    busy_s = res.busy_s
    for i in range(len(w)):
        t = float(arr_s[i])
        clock[0] = t
        while departures and departures[0][0] <= t:
            loads.dec(heapq.heappop(departures)[2])
        while prefetches and prefetches[0][0] <= t:
            _, s, r, pw = heapq.heappop(prefetches)
            if pf is not None and pf.still_latest(s, r):
                prefetched += prefetch_instant(cache, pw, rows(r), int(offs[r]), account_moves)
        lo = offs[i]
        blocks = rows(i)
        wk = choose(i, blocks, sess[i])
        c, crit, bg = acquire(wk, blocks, lo)
        npre = sum(c)
        bg2 = store(wk, blocks, lo, npre)
        for moves in (crit, bg, bg2):
            for (src, dst), nb in moves.items():
                account(src, dst, nb * bb, lanes)
        n_in = inp[i]
        tok = trim_tokens(c, bt, n_in)
        workers.append(wk)
        hb.append(c)
        ht.append(tok)
        cached = sum(tok)
        start = max(t, prefill_free.get(wk, 0.0))
        prefill_free[wk] = start + prefill(n_in - cached, cached)
        svc = service[i]
        busy_s[i] = svc
        loads.inc(wk)
        heapq.heappush(departures, (t + svc, i, wk))
        s = int(sess[i])
        if pf is not None and s >= 0:
            when = pf.observe(s, i, t)
            if when is not None:
                heapq.heappush(prefetches, (when, s, i, wk))
        if progress and i % every == 0:
            progress(i)
    if len(w):
        res.worker[:] = workers
        res.hit_blocks[:] = hb
        res.hit_tokens[:] = ht
    res.sim_time_s = float(arr_s[-1]) if len(w) else 0.0
    res.prefetch = prefetch_untimed(prefetched, bb)


def _run_timed(cfg, w: Workload, rows, setup: ClusterSetup, cache, net, router, loads, prefill_free, clock, res,
               progress) -> None:
    env = simpy.Environment()
    node = setup.node
    bt, bb = node.block_tokens, node.block_bytes
    lanes = setup.layout.gpus_per_worker
    arr_s = (w.arrival_ms / 1000.0).tolist()
    offs = w.block_offsets.tolist()
    inp, out, sess = w.input_tokens.tolist(), w.output_tokens.tolist(), w.session_id.tolist()
    every = _every(len(w))
    n = len(w)
    wk_of = [0] * n
    hb: list = [None] * n
    ht: list = [None] * n
    prefill = prefill_fn(cfg, setup)
    t_arrive = [0.0] * n
    t_first = [0.0] * n
    cached_tok = [0] * n
    net_s, queue_s, prefill_s = res.net_s, res.queue_s, res.prefill_s
    ttft_s, tpot_s, e2e_s = res.ttft_s, res.tpot_s, res.e2e_s
    no_blocks: list[int] = []  # the replica's scheduler does not read blocks here (PoolAdmission)

    layout = setup.layout
    io = ClusterIO(env, net, block_bytes=bb, lanes=lanes, layers=node.spec.n_layers, policy=cfg.cache.load_policy,
                   overlap=cfg.cache.load_overlap, prefill_s=prefill)

    background = io.background

    pf = SessionPrefetcher(env, ClusterPrefetchHost(env, cache, net, lanes=lanes, background=background,
                                                    count_read=io.count_background), bb) \
        if REGISTRY[res.policy].prefetch else None

    choose, acquire, inc, start_load = router.choose, cache.acquire, loads.inc, io.start_load
    recomputed = res.recomputed_tokens
    wpr = layout.workers_per_rack
    blk_of: list = [None] * n  # request i's blocks from its arrival until its first token (rows once)

    def arrive(i: int) -> None:
        now = env.now
        clock[0] = now
        if i + 1 < n:
            d = arr_s[i + 1] - now
            timer(env, d if d > 0.0 else 0.0).callbacks.append(lambda _e: arrive(i + 1))
        if progress and i % every == 0:
            progress(i)
        lo = offs[i]
        blk_of[i] = blocks = rows(i)
        wk = choose(i, blocks, sess[i])
        inc(wk)
        wk_of[i] = wk
        t_arrive[i] = now
        if pf is not None:  # before the lookup moves anything: which pending prefetched blocks are still in HBM
            c0 = cache.probe(wk, blocks)
            pf.arrived(sess[i], wk, blocks, c0[0], sum(c0))
        cnt, crit, bg = acquire(wk, blocks, lo)
        n_in = inp[i]
        tok = trim_tokens(cnt, bt, n_in)
        hb[i] = cnt
        ht[i] = tok
        if bg:
            background(bg)
        if not crit:
            cached_tok[i] = sum(tok)
            loaded(i)
            return
        # Load each lower part or recompute it (cache.load_policy); join the replica when the load is
        # in, or layer-wise as soon as the prefill would no longer stall on it (cache.load_overlap).
        ld = start_load(wk // wpr, tok, crit, n_in)
        choice = ld.choice
        cached_tok[i] = choice.tokens_used
        if choice.recomputed_tokens:
            recomputed[i] = choice.recomputed_tokens
        ready = ld.ready()
        if ready is None:
            loaded(i)
        else:
            ready.callbacks.append(lambda _e: loaded(i))

    def loaded(i: int) -> None:
        now = env.now
        wk = wk_of[i]
        net_s[i] = now - t_arrive[i]
        cached = cached_tok[i]
        n_in = inp[i]
        # The cost-aware router's queue estimate: when this worker's prefill queue would drain if
        # prefills ran back to back (its signal only; the replica decides the real timeline).
        prefill_free[wk] = max(now, prefill_free.get(wk, 0.0)) + prefill(n_in - cached, cached)
        r = Req(i, n_in, out[i], no_blocks, offs[i], t_arrive[i], sess[i])
        # At least one token is always computed: it yields the first output token's logits.
        r.cached = max(0, min(cached, n_in - 1))
        workers.submit(wk, r)

    def first_token(eng: BatchingReplica, r: Req) -> None:
        i, now = r.i, env.now
        clock[0] = now
        wk = eng.idx
        lo = offs[i]
        blocks = blk_of[i]
        blk_of[i] = None
        bg = cache.store(wk, blocks, lo, sum(hb[i]))
        if bg:
            background(bg)
        if pf is not None:
            pf.turn_done(int(sess[i]), i, wk, blocks, lo)
        t_first[i] = now
        queue_s[i] = r.t_pstart - r.t_ready
        prefill_s[i] = now - r.t_pstart
        ttft_s[i] = now - r.t_arr
        workers.start_decode(eng, r)

    def done(r: Req) -> None:
        i, now = r.i, env.now
        tpot_s[i] = (now - t_first[i]) / (r.out - 1) if r.out > 1 else 0.0
        e2e_s[i] = now - r.t_arr
        res.busy_s[i] = e2e_s[i]
        loads.dec(wk_of[i])

    workers = worker_replicas(cfg, node, env, w, first_token=first_token, done=done)

    if n:
        env.timeout(float(arr_s[0])).callbacks.append(lambda _e: arrive(0))
    run_to_end(env)
    if n:
        res.worker[:] = wk_of
        res.hit_blocks[:] = hb
        res.hit_tokens[:] = ht
    res.sim_time_s = float(env.now)
    res.decode_busy_s = {wk: workers.busy(wk)[2] for wk in workers.replicas}
    res.iteration_ms = workers.hist.summary_ms()
    res.iteration_hist = workers.hist
    res.preemptions = workers.preemptions()
    res.io = io.summary()
    if pf is not None:
        pf.finish()
        res.prefetch = pf.report()
    else:
        res.prefetch = prefetch_untimed(0, bb)
