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
from typing import Any

from sim.cache.cluster import ClusterCache
from sim.config import Config
from sim.engine.choice import resolve_engine
from sim.engine.cluster_cache import CompiledClusterCache
from sim.modes.cluster_fast import run_fast
from sim.modes.cluster_result import ClusterResult, cache_summary
from sim.modes.cluster_setup import (
    ClusterSetup,
    CostEstimator,
    build_cluster_cache,
    build_compiled_cache,
    queue_recency,
)
from sim.modes.cluster_timed import run_timed
from sim.modes.common import block_lists
from sim.modes.result_rows import CLUSTER_COLUMNS, ResultRows, RowBlock, block_size, streams
from sim.policies.base import REGISTRY as POLICIES
from sim.policies.base import AccessContext
from sim.report.cluster_totals import ClusterTotals
from sim.report.request_stream import RequestSink
from sim.report.requests import cluster_requests
from sim.report.saturation import ArrivalSpan
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
    requests: RequestSink | None = None,
    stream_rows: bool = False,
    whole_span: ArrivalSpan | None = None,
) -> ClusterResult:
    """Replay `workload` (already re-blocked, see sim.modes.common.prepare_workload) on the cluster.

    `engine` (default ``cache.engine``): "python" runs the reference ``ClusterCache``;
    "compiled" the numba twin (``sim.engine.cluster_cache``; queue-ordered policies only);
    "auto" the compiled one when it can. Both give identical results. `requests`: where the per-request
    rows go (a list, or a RequestStream written as the run goes), or None. `stream_rows`: above
    ``report.exact_quantiles_max_requests`` hand the rows to the report a block at a time and keep none
    (sim.modes.result_rows). `whole_span` (the whole run's arrivals): a pod of a run that merges totals, not
    rows (``sim.modes.partition.run_pod``): its totals are on the whole run's span; with `stream_rows` every row
    goes into them a block at a time and none is kept, without it the pod keeps its rows too (for a per-request
    file)."""
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
    lay, arr_ms = setup.layout, workload.arrival_ms
    streamed = stream_rows and (whole_span is not None or streams(cfg, n, requests))
    totals = ClusterTotals(cfg, timing=timing, n_workers=lay.n_workers, workers_per_rack=lay.workers_per_rack,
                           n_racks=lay.topo.n_racks, arrival_s=arr_ms / 1000.0 if whole_span is None else whole_span)
    labels = {"router": router, "policy": policy}

    def consume(b: RowBlock) -> None:  # a block of complete rows, in request order
        totals.add(vars(b), arr_ms[b.lo:b.lo + b.n] / 1000.0)
        if requests is not None:
            requests.append(cluster_requests(cfg, workload, b, labels, timing, lay.workers_per_rack))

    result_rows = ResultRows(n, timing, block_size(n, streamed), consume, CLUSTER_COLUMNS, keep=not streamed)
    res = ClusterResult(policy=policy, router=router, timing=timing, setup=setup, cache=cache, network=net,
                        workload=workload, totals=totals)
    loads = ClusterLoad(setup.layout)
    prefill_free: dict[int, float] = {}
    clock = [0.0]
    cost = CostEstimator(cfg, setup, prefill_free, lambda: clock[0])
    state = ClusterRouteState(setup.layout, cache, loads, workload.input_tokens, cost, seed=cfg.seed)
    rt = make_router(router, "cluster", state, where="cluster.router")
    # the Python caches' replays tell the context when a request's accesses are done (the learned policy keeps
    # its priorities for a window), unless a session prefetch reads earlier requests' positions
    release = ctx.accesses_done if isinstance(cache, ClusterCache) and not POLICIES[policy].prefetch else None
    if timing:
        run_timed(cfg, workload, rows, setup, cache, net, rt, loads, prefill_free, clock, res, result_rows, progress,
                  release)
    else:
        run_fast(cfg, workload, rows, setup, cache, net, rt, loads, prefill_free, clock, res, result_rows, progress,
                 release)
    result_rows.close()
    res.most_blocks = result_rows.most_open
    for c in CLUSTER_COLUMNS if result_rows.whole is not None else ():  # the one whole block: the result's arrays
        setattr(res, c.name, getattr(result_rows.whole, c.name))
    res.wall_s = time.perf_counter() - t_wall
    return res


__all__ = ["ClusterResult", "ClusterSetup", "build_cluster_cache", "build_compiled_cache", "cache_summary",
           "queue_recency", "run_cluster"]
