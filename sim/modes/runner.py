"""Run a simulation mode on a config and return its report (one call per CLI command)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sim.config import Config
from sim.errors import InputError
from sim.modes.learned_window import WindowCheck, recheck_learned
from sim.modes.load import finish, node_pools, pre_run, saturation_of
from sim.modes.result_rows import CLUSTER_COLUMNS, RowBlock, streams
from sim.report.cluster_totals import totals_of
from sim.report.request_stream import RequestSink
from sim.report.requests import cluster_requests
from sim.report.schema import build_report
from sim.report.single import single_metrics
from sim.timing.confidence import for_run
from trace.workload import LoadStats, Workload

if TYPE_CHECKING:
    from sim.modes.memory import Need

Progress = Callable[[str, int, int], None]  # (label, done, total)
# `requests`: a list (or a sim.report.request_stream.RequestStream) every runner appends one
# sim.report.requests.RequestTable per run to (--requests-out)


def check_policies(names: list[str]) -> None:
    import sim.policies  # noqa: F401  (registers every policy)
    from sim.policies.base import REGISTRY

    for n in names:
        if n not in REGISTRY:
            raise InputError(f"unknown policy {n!r} (known: {', '.join(sorted(REGISTRY))})", where="--policy")


def _compile_engine_once(cfg: Config, w: Workload, policies: list[str], timing: bool,
                         progress: Progress | None) -> None:
    """On a machine's first run, build the compiled engine up front, saying so."""
    from sim.engine import is_compiled
    from sim.modes.common import prepare_workload
    from sim.modes.single import run_single, use_engine

    compiled = [p for p in policies if use_engine(cfg, p)]
    if not compiled or is_compiled():
        return
    label = "compiling the cache engine (first run on this machine, ~20-60 s)"
    if progress:
        progress(label, 0, 1)
    tiny, ctx = prepare_workload(cfg, w.head(8))
    run_single(cfg, tiny, compiled[0], ctx=ctx, timing=timing)
    if progress:
        progress(label, 1, 1)


# policies whose compiled kernels read per-access arrays (sim.engine.node_cache) unless the workload is
# distinct: then Belady reads next-use steps (trace.next_use); selective_write always reads depths from
# the request starts (sim.engine.layout.depth_at)
PER_ACCESS_UNLESS_DISTINCT = {"belady"}
# the Python policies that read AccessContext's per-access arrays (Belady's next use, selective_write's depth)
READS_PER_ACCESS = {"belady", "selective_write"}


def workload_change(w: Workload) -> str:
    """The setting that makes `w` smaller, as a refusal names it."""
    return "lower synthetic.requests" if not w.extra and w.name.startswith("synthetic") else "set trace.limit"


def _learned_mode(cfg: Config, policies: list[str]) -> str | None:
    """How the learned policy holds its features in this run (sim.modes.memory.run_estimate)."""
    if "learned" not in policies:
        return None
    return "model" if cfg.policies.learned_model else "online"


def _single_need(cfg: Config, w: Workload, ctx, node, policies: list[str], timing: bool,
                 requests: RequestSink | None = None, offered: dict | None = None) -> Need:
    """The replay's up-front estimate (a sim.modes.memory.Need). `requests`: where the run's rows go (a list
    keeps them all); `offered`: the offered-load block, when the caller has it."""
    from sim.modes.memory import Need, run_estimate
    from sim.modes.single import use_engine

    distinct = w.prefix_blocks().distinct
    steps = any(p in PER_ACCESS_UNLESS_DISTINCT for p in policies) and distinct
    # the learned policy runs on the Python engine, which reads each request's list from the parent form;
    # what it holds itself is its own part of the estimate (a model file streams its features)
    learned = _learned_mode(cfg, policies)
    per_access = any((not use_engine(cfg, p) and p != "learned") or (p in PER_ACCESS_UNLESS_DISTINCT and not distinct)
                     for p in policies)
    slots = min(node.n_workers * node.hbm_blocks + node.dram_blocks + node.ssd_blocks, ctx.key_bound)
    # the replays release the learned priorities behind their requests (sim.modes.single: hit-rate-only after
    # each request, timed behind the oldest between arrival and first token)
    widest = int(w.n_blocks().max()) if learned and len(w) else None
    # above the exact-quantile limit the rows are streamed (sim.modes.single.run_single), unless a list keeps
    # them (--compare-measured); timed, the estimate counts the blocks its requests in flight span
    streamed = streams(cfg, len(w), requests)
    span = (0, 0)
    if timing and (streamed or learned):
        if offered is None:
            offered = pre_run(cfg, w, node_pools(node.n_workers, node))
        span = _in_flight_span(cfg, w, offered)
    est = run_estimate(w, mode="single", timing=timing, per_access=per_access, slots=slots, runs=len(policies),
                       next_use_steps=steps, learned=learned, learned_widest=widest, learned_span=span[1],
                       streamed_rows=streamed, rows_span=span[0] if timing and streamed else None)
    return Need(est, f"replaying {len(w):,} requests on one node", workload_change(w), "--mode single")


def _check(need: Need, cfg: Config, w: Workload, ctx) -> None:
    """A replay's up-front check, then its online learned policy's with the exact window (first pass on
    `ctx`, shared with the replay): every mode whose learned policy trains in the driver."""
    need.check()
    recheck_learned(WindowCheck.of(need.est, need.what, workload_change(w)), cfg, w, ctx)


def _check_single(cfg: Config, w: Workload, ctx, node, policies: list[str], timing: bool,
                  requests: RequestSink | None, offered: dict) -> None:
    _check(_single_need(cfg, w, ctx, node, policies, timing, requests, offered), cfg, w, ctx)


def _cluster_need(cfg: Config, w: Workload, ctx, topo, policies: list[str], routers: list[str],
                  timing: bool, partition=None, rows: bool = True, pods=None, requests: RequestSink | None = None,
                  offered: dict | None = None) -> Need:
    """The replays' up-front estimate (a sim.modes.memory.Need): the whole cluster, or its driver and the
    pods simulated at once. `requests`, `offered`: as _single_need."""
    from sim.modes.cluster import ClusterSetup, queue_recency
    from sim.modes.memory import Need, limit_bytes, lists_in_flight_b, run_estimate
    from sim.modes.partition_merge import spills_rows

    setup = ClusterSetup.from_config(cfg, w.block_tokens, topo)
    compiled = all(queue_recency(p) is not None for p in policies)
    # The compiled cache keeps no slots for a remote SSD pool that can hold every distinct block.
    ssd_slots = 0 if compiled and setup.ssd_blocks >= ctx.key_bound else setup.ssd_blocks
    cap = (setup.layout.n_workers * setup.node.hbm_blocks + topo.n_nodes * setup.node.dram_blocks
           + cfg.cluster.racks * setup.eic_blocks + ssd_slots)
    runs = len(policies) + len(routers) - 1
    gpus = f"{setup.layout.n_workers * setup.node.gpus_per_worker:,} GPUs"
    # the Python caches take each request's list when it arrives (sim.modes.common.block_lists): per access
    # only for a policy reading per-access arrays; timed, the lists of the requests in flight
    per_access = not compiled and any(p in READS_PER_ACCESS for p in policies)
    in_flight = 0
    streamed = partition is None and streams(cfg, len(w), requests)
    spills = spills_rows(rows, requests)  # pods keep their rows for the per-request file (run_partitioned)
    # pods merging totals stream their rows into them (PodTask.reduce_span); timed, each holds the blocks its
    # requests in flight span, counted as the whole run's span (a pod's arrivals are a subset of the whole's)
    reduces = not rows and not spills
    learned = _learned_mode(cfg, policies)
    if timing and (streamed or reduces or learned or not compiled) and offered is None:
        offered = pre_run(cfg, w, node_pools(setup.layout.n_workers, setup.node))
    if timing and not compiled:
        assert offered is not None  # set just above
        in_flight = requests_in_flight(cfg, len(w), setup.layout.n_workers, offered)
    # the replays release the learned priorities behind their requests (sim.modes.cluster_fast after each one,
    # sim.modes.cluster_timed behind the oldest between arrival and first token); a pod's span is within the
    # whole workload's
    widest = int(w.n_blocks().max()) if learned and len(w) else None
    span = _in_flight_span(cfg, w, offered) if timing and (streamed or reduces or learned) and offered is not None \
        else (0, 0)
    pod_span = span[0] if timing and reduces else None
    if partition is None:
        # above the exact-quantile limit the rows are streamed (sim.modes.cluster.run_cluster, stream_rows), unless
        # a list keeps them; timed, the estimate counts the blocks its requests in flight span
        est = run_estimate(w, mode="cluster", timing=timing, per_access=per_access,
                           slots=min(cap, ctx.key_bound), cluster_compiled=compiled, runs=runs,
                           learned=learned, learned_widest=widest, learned_span=span[1], streamed_rows=streamed,
                           rows_span=span[0] if timing and streamed else None)
        if in_flight:
            est.add("block lists in flight", lists_in_flight_b(w, in_flight))
        change = workload_change(w) + ", or split the cluster into pods (--pods K, or cluster.pods)"
        if est.total > limit_bytes():  # name the fewest pods that fit (pods share no remote SSD pool)
            fit = _pods_that_fit(cfg, lambda part, assignment: _partition_estimate(
                w, part, cap - ssd_slots, compiled, timing, runs, rows, assignment, learned=learned,
                per_access=per_access, in_flight=in_flight, learned_widest=widest, learned_span=span[1],
                pod_rows=spills, rows_span=pod_span), w)
            if fit is not None:
                ssd = "" if cfg.cluster.remote_ssd_capacity_gib == 0 else " --set cluster.remote_ssd_capacity_gib=0"
                change = (f"{workload_change(w)}, or split the cluster into pods: --pods {fit[0]}{ssd} fits "
                          f"({fit[1] / 1024**3:.1f} GiB estimated, one pod at a time)")
        return Need(est, f"replaying {len(w):,} requests on {gpus}", change, "--mode cluster")
    est = _partition_estimate(w, partition, cap, compiled, timing, runs, rows, pods, learned=learned,
                              per_access=per_access, in_flight=in_flight, learned_widest=widest,
                              learned_span=span[1], pod_rows=spills, rows_span=pod_span)
    return Need(est, f"replaying {len(w):,} requests on {gpus} in {partition.pods} pods ({partition.at_once} at once)",
                workload_change(w) + ", use more pods or fewer --workers", "--pods")


def _pods_that_fit(cfg: Config, estimate: Callable[..., Any], w: Workload) -> tuple[int, float] | None:
    """(the fewest pods that fit the memory bound simulated one at a time, their estimate in bytes), or None when
    no split of cluster.racks does. `estimate(partition, assignment)`: _partition_estimate for those pods. Pods
    are divisors of the racks; more pods never make the largest pod bigger, so a binary search finds it."""
    from sim.modes.memory import limit_bytes
    from sim.modes.partition import Partition, assign_pods

    racks = cfg.cluster.racks
    ks = [k for k in range(2, racks + 1) if racks % k == 0]
    lim = limit_bytes()

    def total(k: int) -> float:
        part = Partition(k, cfg.cluster.partition_by, 1)
        return estimate(part, assign_pods(w, part)).total

    lo, hi, best = 0, len(ks) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        t = total(ks[mid])
        if t <= lim:
            best, hi = (ks[mid], t), mid - 1
        else:
            lo = mid + 1
    return best


def _check_cluster(cfg: Config, w: Workload, ctx, topo, policies: list[str], routers: list[str],
                   timing: bool, partition=None, rows: bool = True, pods=None, requests: RequestSink | None = None,
                   offered: dict | None = None) -> tuple[WindowCheck | None, float]:
    """Refuse a run that does not fit. A partitioned run's: (the learned window re-check for its pods, the
    estimated peak of one pod's worker: what its Ray task asks for); (None, 0) for one cluster."""
    from sim.modes.memory import AT_ONCE, LEARNED_WINDOW, limit_bytes, one_pod_b
    from sim.modes.partition_merge import spills_rows
    from sim.modes.partition_run import check_scratch

    need = _cluster_need(cfg, w, ctx, topo, policies, routers, timing, partition, rows, pods, requests, offered)
    if partition is not None and spills_rows(rows, requests):
        check_scratch(len(w))  # one run's spill at a time: each is removed once its rows are written
    if partition is None:
        _check(need, cfg, w, ctx)
        return None, 0.0
    need.check()
    # each pod's first pass runs inside the pod: the pod re-checks this estimate with its own exact
    # window in place of the largest pod's assumed one, against the bound read here (sim.modes.partition)
    at_once = min(partition.at_once, partition.pods)
    return (WindowCheck.of(need.est, need.what, need.change, part=AT_ONCE + LEARNED_WINDOW, copies=at_once,
                           limit=limit_bytes()), one_pod_b(need.est, at_once))


def _partition_estimate(w: Workload, part, cap: int, compiled: bool, timing: bool, runs: int, rows: bool = True,
                        pods=None, learned: str | None = None, per_access: bool = False, in_flight: int = 0,
                        learned_widest: int | None = None, learned_span: int = 0, pod_rows: bool = False,
                        rows_span: int | None = None):
    """The driver (the workload, its pods' copies, the merged per-request results: rows, or totals and
    TTFT) plus the largest pod's replay once per pod simulated at the same time (each a process of its
    own unless in this one), its parts listed as "pods at once: <part>". `learned`: as in run_estimate;
    each pod's learned policy keeps the features of its own requests (a pod is a cluster of its own), so
    its part follows the pod's share. `per_access`, `in_flight`, `learned_widest`, `learned_span`: as
    _cluster_need counts them for the whole cluster (a pod holds the lists of at most that many of its
    requests). `pod_rows`: with `rows` False, the pods keep their rows anyway, for a per-request file the driver
    writes a block at a time from their spilled copies. `rows_span`: the requests a timed run holds from its oldest in
    flight on (_in_flight_span), the rows a timed pod merging totals holds (None: it is counted a row a request)."""
    from sim.modes.memory import (
        AT_ONCE,
        BASE_B,
        MERGED_PER_REQ_B,
        REDUCED_PER_REQ_B,
        Estimate,
        lists_in_flight_b,
        run_estimate,
    )
    from sim.modes.partition import pod_sizes
    from sim.modes.result_rows import ROW_BLOCK

    def pod(s) -> Estimate:
        # a pod of a run merging totals streams its rows into them (PodTask.reduce_span): a hit-rate-only one
        # holds a block of them, a timed one the blocks `rows_span` requests cover
        e = run_estimate(s, mode="cluster", timing=timing, per_access=per_access,
                         slots=min(cap // part.pods, s.own_blocks), cluster_compiled=compiled, runs=runs,
                         learned=learned, learned_widest=learned_widest, learned_span=learned_span,
                         streamed_rows=not rows and not pod_rows, rows_span=rows_span)
        if in_flight:
            e.add("block lists in flight", lists_in_flight_b(s, in_flight))
        return e

    biggest = max((pod(s) for s in pod_sizes(w, part, pods)), key=lambda e: e.total)
    at_once = min(part.at_once, part.pods)
    est = Estimate()
    est.add("workload and its pods", 2 * w.nbytes())
    if rows:
        est.add("merged per-request results", len(w) * MERGED_PER_REQ_B * runs)
    else:  # one run's at a time: its cover counts, dropped after its report
        est.add("merged totals and cover counts", len(w) * REDUCED_PER_REQ_B)
        if pod_rows:  # a block of rows read back from the spill, and its table for the file
            est.add("per-request file block", 2 * min(len(w), ROW_BLOCK) * MERGED_PER_REQ_B)
    for name, nbytes in biggest.parts.items():
        est.add(AT_ONCE + name, at_once * nbytes)
    if at_once > 1:  # each pod a process of its own, with its own interpreter and engine
        est.add(AT_ONCE + "base", at_once * BASE_B)
    return est


def _single_setup(cfg: Config, workload: Workload, policies: list[str]):
    """What a single-node run checks and builds before its estimate: (re-blocked workload, context, node)."""
    from sim.modes.common import NodeSetup, prepare_workload
    from sim.routing.registry import router_class

    check_policies(policies)
    router_class(cfg.cluster.router, "node", where="cluster.router")
    w, ctx = prepare_workload(cfg, workload)
    return w, ctx, NodeSetup.from_config(cfg, w.block_tokens)


def run_single_mode(
    cfg: Config,
    workload: Workload,
    policies: list[str],
    *,
    timing: bool = True,
    load_stats: LoadStats | None = None,
    progress: Progress | None = None,
    requests: RequestSink | None = None,
) -> dict:
    """Replay `workload` once per policy on one node; the first policy is the headline."""
    from sim.modes.single import run_single

    t0 = time.perf_counter()
    w, ctx, node = _single_setup(cfg, workload, policies)
    pools = node_pools(node.n_workers, node)
    offered = pre_run(cfg, w, pools)
    _check_single(cfg, w, ctx, node, policies, timing, requests, offered)
    _compile_engine_once(cfg, w, policies, timing, progress)
    runs = []
    sim_time = 0.0
    for name in policies:
        cb = (lambda i, _n=name: progress(_n, i, len(w))) if progress else None
        res = run_single(cfg, w, name, ctx=ctx, timing=timing, progress=cb, requests=requests)
        if progress:
            progress(name, len(w), len(w))
        m = single_metrics(res, cfg)
        if res.totals.saturation is not None:
            m["saturation"] = saturation_of(res.totals.saturation, m, node.n_workers)
        m["sim_speed_req_s"] = len(w) / res.wall_s if res.wall_s > 0 else None
        runs.append((name, m))
        sim_time = max(sim_time, res.sim_time_s)
        del res  # its cache and rows go before the next policy's replay builds its own
    return build_report(
        "single", cfg, w, runs,
        wall_s=time.perf_counter() - t0, sim_time_s=sim_time,
        load_stats=load_stats.to_dict() if load_stats else None,
        extra={"timing": timing, "confidence": for_run(cfg, timing),
               "load": finish(offered, runs[0][1] if runs else None, [p.name for p in pools])},
    )


def _cluster_setup(cfg: Config, workload: Workload, policies: list[str], routers: list[str], partition,
                   requests_listed: bool):
    """What a cluster run checks and builds before its estimate: (re-blocked workload, context, topology,
    node, whether per-request rows are kept, the pod of each request or None)."""
    from sim.modes.common import NodeSetup, prepare_workload
    from sim.modes.partition import assign_pods, check_partition
    from sim.modes.partition_merge import needs_rows
    from sim.routing.registry import router_class
    from sim.timing.topology import Topology

    check_policies(policies)
    if partition:
        check_partition(cfg, partition, "cluster")
    for r in routers:
        router_class(r, "cluster", where="--router" if len(routers) > 1 else "cluster.router")
    w, ctx = prepare_workload(cfg, workload)
    topo = Topology.from_config(cfg)  # built once, shared by every run (it holds no run state)
    node = NodeSetup.from_config(cfg, w.block_tokens)
    rows = needs_rows(cfg, len(w), requests_listed)
    assignment = assign_pods(w, partition) if partition else None  # once for the estimate and every run
    return w, ctx, topo, node, rows, assignment


def run_cluster_mode(
    cfg: Config,
    workload: Workload,
    policies: list[str],
    *,
    routers: list[str] | None = None,
    timing: bool = True,
    load_stats: LoadStats | None = None,
    progress: Progress | None = None,
    requests: RequestSink | None = None,
    partition: Any = None,
    pod_runner: Any = None,
    pod_store: Any = None,
) -> dict:
    """Replay `workload` on the cluster once per router (first policy) and once per extra policy
    (first router). The first router x first policy is the headline; ``report["routers"]`` holds
    the router comparison, ``report["policies"]`` the policy comparison.

    `partition` (a ``sim.modes.partition.Partition``, from ``cluster.pods``): the deployment is pods of racks, each
    replayed on its own (by `pod_runner`, default one after another here; finished pods kept in
    `pod_store`) and merged exactly (``sim.modes.partition_run``)."""
    from sim.cache.layout import Layout
    from sim.modes.cluster import run_cluster
    from sim.report.cluster import cluster_metrics

    t0 = time.perf_counter()
    routers = routers or [cfg.cluster.router]
    w, ctx, topo, node, rows, assignment = _cluster_setup(cfg, workload, policies, routers, partition,
                                                          isinstance(requests, list))
    pools = node_pools(Layout(topo, node.gpus_per_worker).n_workers, node)
    offered = pre_run(cfg, w, pools)
    window, pod_b = _check_cluster(cfg, w, ctx, topo, policies, routers, timing, partition, rows, assignment,
                                   requests=requests, offered=offered)

    def one(policy: str, router: str) -> tuple[dict, float]:
        label = f"{router}/{policy}" + (f" ({partition.pods} pods)" if partition else "")
        cb = (lambda i, _l=label: progress(_l, i, len(w))) if progress else None
        res: Any
        if partition:
            from sim.modes.cluster import ClusterSetup
            from sim.modes.partition_run import run_partitioned

            res = run_partitioned(cfg, w, policy, router, partition, timing=timing,
                                  setup=ClusterSetup.from_config(cfg, w.block_tokens, topo), runner=pod_runner,
                                  store=pod_store, progress=cb, rows=rows, pods=assignment, window=window,
                                  pod_b=pod_b, requests=requests)
        else:  # its rows go to `requests` as the run goes
            res = run_cluster(cfg, w, policy, router, ctx=ctx, timing=timing, topo=topo, progress=cb,
                              requests=requests, stream_rows=True)
        if progress:
            progress(label, len(w), len(w))
        m = cluster_metrics(res, cfg)
        tot = totals_of(res, cfg)
        if tot.saturation is not None:
            m["saturation"] = saturation_of(tot.saturation, m, pools[0].workers)
        if requests is not None and partition and rows:  # the pods' rows, merged (else written by the pods' merge)
            rows_of = RowBlock.of({c.name: getattr(res, c.name) for c in CLUSTER_COLUMNS})
            requests.append(cluster_requests(cfg, w, rows_of, {"router": router, "policy": policy}, timing,
                                             res.setup.layout.workers_per_rack))
        m["sim_speed_req_s"] = len(w) / res.wall_s if res.wall_s > 0 else None
        return m, res.sim_time_s

    by_router: list[dict[str, Any]] = []
    sim_time = 0.0
    for r in routers:
        m, st = one(policies[0], r)
        by_router.append({"name": r, "policy": policies[0], "metrics": m})
        sim_time = max(sim_time, st)
    runs = [(policies[0], by_router[0]["metrics"])]
    for p in policies[1:]:
        m, st = one(p, routers[0])
        runs.append((p, m))
        sim_time = max(sim_time, st)
    return build_report(
        "cluster", cfg, w, runs,
        wall_s=time.perf_counter() - t0, sim_time_s=sim_time,
        load_stats=load_stats.to_dict() if load_stats else None,
        extra={"timing": timing, "router": routers[0], "routers": by_router, "topology": topo.summary(),
               "confidence": for_run(cfg, timing),
               "load": finish(offered, runs[0][1], [p.name for p in pools]),
               **({"partition": partition.describe(cfg)} if partition else {})},
    )


def run_mode(
    cfg: Config,
    mode: str,
    *,
    workload: Workload | None = None,
    load_stats: LoadStats | None = None,
    policies: list[str] | None = None,
    routers: list[str] | None = None,
    timing: bool = True,
    progress: Progress | None = None,
    requests: RequestSink | None = None,
    partition: Any = None,
    pod_runner: Any = None,
    pod_store: Any = None,
) -> dict:
    """Run one simulation mode on `cfg` and return its report.

    The workload comes from ``cfg.trace``/``cfg.synthetic`` unless given.
    ``policies`` defaults to ``[cfg.policies.eviction]``; ``routers`` (several
    names -> a router comparison) defaults to ``[cfg.cluster.router]`` and is
    passed only to modes that take it (cluster). ``requests``, when a list or a ``RequestStream``
    (a ``RequestSink``), receives one ``sim.report.requests.RequestTable`` per run (policy, router or deployment).
    """
    if workload is None:
        from trace.source import workload_from_config

        workload, load_stats = workload_from_config(cfg)
    if len(workload) == 0:
        raise InputError("the workload has no requests", where=cfg.trace.path or "synthetic")
    policies = policies or [cfg.policies.eviction]
    runner = MODES.get(mode)
    if runner is None:
        raise InputError(f"unknown or unavailable mode {mode!r} (available: {', '.join(MODES)})", where="--mode")
    extra: dict[str, Any] = {}
    if partition is None and cfg.cluster.pods:  # the config's partition (a sweep point's, a config file's)
        from sim.modes.partition import Partition

        partition = Partition.of(cfg)
    if partition:  # cluster mode only: refused by name for the others
        from sim.modes.partition import check_partition

        check_partition(cfg, partition, mode)
        extra.update(partition=partition, pod_runner=pod_runner, pod_store=pod_store)
    if requests is not None:
        extra["requests"] = requests
    if routers and len(routers) > 1:
        if mode not in ROUTER_MODES:
            raise InputError(f"several routers are compared in {', '.join(sorted(ROUTER_MODES))} mode only",
                             where="--router")
        extra["routers"] = routers
    elif routers and mode in ROUTER_MODES:
        extra["routers"] = routers
    return runner(cfg, workload, policies, timing=timing, load_stats=load_stats, progress=progress, **extra)


# mode name -> function(cfg, workload, policies, *, timing, load_stats, progress) -> report
MODES: dict[str, Callable[..., dict]] = {"single": run_single_mode}
MODES["cluster"] = run_cluster_mode
ROUTER_MODES = {"cluster"}  # modes whose runner takes routers=[...]


def requests_in_flight(cfg: Config, n: int, replicas: int, offered: dict) -> int:
    """Requests a timed run holds at once (their block lists; PD, the cluster on the Python caches): what its
    replicas run at once (``compute.max_num_seqs`` each) plus the backlog (requests_backlog)."""
    return min(n, replicas * cfg.compute.max_num_seqs + requests_backlog(n, offered))


def requests_backlog(n: int, offered: dict) -> int:
    """When the offered load (sim.modes.load.pre_run) exceeds a pool's capacity, the backlog that grows through a
    timed run of `n` requests: the share 1 - 1/load of them (0 when every pool keeps up), at the load without
    cache hits (busiest_cold_load)."""
    rho = busiest_cold_load(offered)
    return int(n * (1.0 - 1.0 / rho)) if rho > 1.0 else 0


def busiest_cold_load(offered: dict) -> float:
    """The highest offered load of `offered`'s pools (pre_run's block) without cache hits: a small cache hits far
    less than the unbounded one the offered load with hits assumes, so the memory estimates take this one."""
    pools = offered.get("pools", {}).values()
    return max((p.get("offered_load_cold_share") or p.get("offered_load_share") or 0.0 for p in pools), default=0.0)


def _in_flight_span(cfg: Config, w: Workload, offered: dict) -> tuple[int, int]:
    """(requests, block accesses) a timed run holds from its oldest request in flight on: the rows it streams
    and the learned priorities it releases behind them (sim.modes.memory.run_estimate's `rows_span` and
    `learned_span`). The most arrivals within one request's time in system (span_in_flight): TIME_IN_SYSTEM_MARGIN
    x its uncontended service time plus its wait in a fluid queue at busiest_cold_load (`offered`: pre_run's
    block), each request's work its service time scaled so the work adds up to that load."""
    from sim.modes.common import service_times
    from sim.modes.memory import TIME_IN_SYSTEM_MARGIN, fluid_wait_s, span_in_flight

    arr = w.arrival_ms / 1000.0
    service = service_times(cfg, w)
    stay = TIME_IN_SYSTEM_MARGIN * service
    rho = busiest_cold_load(offered)
    total = float(service.sum())
    if rho > 0 and total > 0 and len(w) > 1:
        stay += fluid_wait_s(arr, service * (rho * float(arr[-1] - arr[0]) / total))
    return span_in_flight(arr, stay, w.block_offsets)


PD_BOTH = ("pd", "colocated")  # `run --mode pd`'s deployments with its colocated baseline


def pd_run_estimate(cfg: Config, workload: Workload, prep, offered: dict, policy: str,
                    kinds: tuple[str, ...] = PD_BOTH, requests: RequestSink | None = None):
    """`run --mode pd`'s estimate (sim.modes.memory.pd_estimate): (the deployment at the peak, Estimate).
    `prep`: sim.modes.pd.setup.prepare's; `offered`: sim.modes.load.pre_run's block; `kinds`: the
    deployments simulated (PD alone without the baseline; `experiment pd-ratio` runs one a job); `requests`:
    where the rows go (above the exact-quantile limit they are streamed unless a list keeps them)."""
    from sim.modes.memory import pd_estimate
    from sim.modes.pd.simulator import releases_positions

    w, setup = prep.workload, prep.setup
    distinct = prep.ctx.key_bound
    streamed = streams(cfg, len(w), requests)
    learned = _learned_mode(cfg, [policy])
    # a large enough deployment releases the learned priorities behind its oldest request not done
    released = learned is not None and releases_positions(w.total_blocks)
    span = _in_flight_span(cfg, w, offered) if streamed or released else (0, 0)
    return pd_estimate(w, slots={k: setup.cache_slots(k, distinct) for k in kinds},
                       in_flight=requests_in_flight(cfg, len(w), len(setup.replica_gpus), offered),
                       per_access=policy in READS_PER_ACCESS, learned=learned,
                       input_nbytes=0 if w is workload else workload.nbytes(),
                       rows_span=span[0] if streamed else None,
                       learned_widest=int(w.n_blocks().max()) if released and len(w) else None,
                       learned_span=span[1], tree_slots={k: setup.tree_slots(k, distinct) for k in kinds})


def _pd_need(cfg: Config, workload: Workload, prep, offered: dict, policy: str, kinds: tuple[str, ...],
             requests: RequestSink | None = None) -> Need:
    from sim.modes.memory import Need

    kind, est = pd_run_estimate(cfg, workload, prep, offered, policy, kinds, requests)
    on = f"replaying {len(prep.workload):,} requests on {prep.setup.layout()['gpus']:,} GPUs"
    if len(kinds) == 1:
        what = f"{on} {'as PD' if kind == 'pd' else 'colocated'}"
    else:
        what = f"{on} as PD and colocated (one after the other; the {kind} one is larger)"
    return Need(est, what, workload_change(workload), "--mode pd")


def _check_pd(cfg: Config, workload: Workload, prep, offered: dict, policy: str, baseline: bool,
              requests: RequestSink | None = None) -> None:
    """The PD estimate against the bound, before either deployment runs; an online learned policy's again
    with its exact window once its first pass has run (prep.ctx's scorer: the PD deployment's, and the
    colocated one's too unless the PD run released its positions, sim.modes.pd.simulator.releases_positions)."""
    _check(_pd_need(cfg, workload, prep, offered, policy, PD_BOTH if baseline else ("pd",), requests), cfg,
           prep.workload, prep.ctx)


def pd_need(cfg: Config, workload: Workload, policy: str, kinds: tuple[str, ...] = PD_BOTH) -> Need:
    """The estimate a PD run of `workload` checks for the deployments `kinds`, derived as the run derives
    it (sim.modes.pd.run.prepared_run), nothing simulated: a sweep's and `experiment pd-ratio`'s fit."""
    from sim.modes.pd.run import prepared_run

    prep, _lay, offered = prepared_run(cfg, workload, policy)
    return _pd_need(cfg, workload, prep, offered, policy, kinds)


def run_pd_mode(cfg: Config, workload: Workload, policies: list[str], **kw) -> dict:
    """Prefill/decode disaggregation vs colocated on the same GPUs (sim.modes.pd.simulator, sim.modes.pd.run),
    checked against the memory bound once the workload is prepared (_check_pd)."""
    from sim.modes.pd.run import run_pd_mode as _run

    return _run(cfg, workload, policies, check=_check_pd, **kw)


MODES["pd"] = run_pd_mode


def _single_need_of(cfg: Config, workload: Workload, policies: list[str], timing: bool) -> Need:
    w, ctx, node = _single_setup(cfg, workload, policies)
    return _single_need(cfg, w, ctx, node, policies, timing)


def _cluster_need_of(cfg: Config, workload: Workload, policies: list[str], timing: bool) -> Need:
    from sim.modes.partition import Partition

    partition = Partition.of(cfg) if cfg.cluster.pods else None  # as run_mode takes the config's
    routers = [cfg.cluster.router]
    w, ctx, topo, _node, rows, assignment = _cluster_setup(cfg, workload, policies, routers, partition, False)
    return _cluster_need(cfg, w, ctx, topo, policies, routers, timing, partition, rows, assignment)


def _pd_need_of(cfg: Config, workload: Workload, policies: list[str], timing: bool) -> Need:
    return pd_need(cfg, workload, policies[0])  # a sweep's pd point: PD and its colocated baseline


# mode name -> function(cfg, workload, policies, timing) -> its up-front sim.modes.memory.Need
NEEDS: dict[str, Callable[..., Need]] = {"single": _single_need_of, "cluster": _cluster_need_of, "pd": _pd_need_of}


def run_need(cfg: Config, mode: str, workload: Workload, policies: list[str], timing: bool) -> Need | None:
    """The estimate ``run_mode(cfg, mode, workload=workload, policies=policies, timing=timing)`` checks before
    it replays (the same setup and arithmetic, nothing replayed; the online learned policy's window as
    assumed, not re-checked after its first pass), or None for a mode without one. A sweep's driver checks
    its points with it (experiments.memory_fit)."""
    fn = NEEDS.get(mode)
    return None if fn is None or len(workload) == 0 else fn(cfg, workload, policies, timing)
