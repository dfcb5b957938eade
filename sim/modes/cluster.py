"""Cluster simulator: racks of GPU nodes, an EIC pool per rack, remote SSD, a network, a router.

Two replay paths (``sim.modes.cluster_timed``, ``sim.modes.cluster_fast``) share the cache
hierarchy (``ClusterCache``), the network (``Network``: bytes per link class) and the routers
(``sim.routing``); ``run_cluster`` builds them (``sim.modes.cluster_setup``) and the result
(``sim.modes.cluster_result``):

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

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from sim.cache.cluster import ClusterCache
from sim.config import Config
from sim.engine.choice import resolve_engine
from sim.engine.cluster_cache import CompiledClusterCache
from sim.modes.cluster_fast import run_fast
from sim.modes.cluster_result import ClusterResult, cache_summary
from sim.modes.cluster_setup import (
    NLOC,
    ClusterSetup,
    CostEstimator,
    build_cluster_cache,
    build_compiled_cache,
    queue_recency,
)
from sim.modes.cluster_timed import run_timed
from sim.modes.common import block_lists, nan_rows
from sim.policies.base import REGISTRY as POLICIES
from sim.policies.base import AccessContext
from sim.routing.cluster import ClusterLoad, ClusterRouteState
from sim.routing.registry import make as make_router
from sim.timing.network import Network
from sim.timing.topology import Topology
from trace.prefix import row_reader
from trace.workload import Workload


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
        rows = row_reader(pb)
        cache = build_compiled_cache(cfg, setup, recency, n_unique)
    else:
        rows = block_lists(workload)  # Python ints (the dict-based cache's fastest keys), built per request
        cache = build_cluster_cache(cfg, setup, policy, ctx, ctx.n_unique)
    net = Network.from_config(cfg, setup.topo)
    n = len(workload)
    times = partial(nan_rows, n, written=timing)  # a latency per request: only the timed replay writes them
    res = ClusterResult(
        policy=policy, router=router, timing=timing, setup=setup, cache=cache, network=net, workload=workload,
        hit_blocks=np.zeros((n, NLOC), dtype=np.int64), hit_tokens=np.zeros((n, NLOC), dtype=np.int64),
        worker=np.zeros(n, dtype=np.int64), net_s=times(), queue_s=times(), prefill_s=times(),
        ttft_s=times(), tpot_s=times(), e2e_s=times(), busy_s=np.zeros(n),
        recomputed_tokens=np.zeros(n, dtype=np.int64),
    )
    loads = ClusterLoad(setup.layout)
    prefill_free: dict[int, float] = {}
    clock = [0.0]
    cost = CostEstimator(cfg, setup, prefill_free, lambda: clock[0])
    state = ClusterRouteState(setup.layout, cache, loads, workload.input_tokens, cost, seed=cfg.seed)
    rt = make_router(router, "cluster", state, where="cluster.router")
    if timing:
        run_timed(cfg, workload, rows, setup, cache, net, rt, loads, prefill_free, clock, res, progress)
    else:
        # the Python caches' replay tells the context when a request's accesses are done (the learned policy
        # keeps its priorities for a window), unless a session prefetch reads earlier requests' positions
        python = isinstance(cache, ClusterCache) and not POLICIES[policy].prefetch
        run_fast(cfg, workload, rows, setup, cache, net, rt, loads, prefill_free, clock, res, progress,
                 release=ctx.accesses_done if python else None)
    res.wall_s = time.perf_counter() - t_wall
    return res


__all__ = ["ClusterResult", "ClusterSetup", "build_cluster_cache", "build_compiled_cache", "cache_summary",
           "queue_recency", "run_cluster"]
