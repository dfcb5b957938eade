"""Cluster replay speed and memory, per router, timed and hit-rate-only.

Workload: the Mooncake conversation trace (../shared/traces/, 12,031
requests, 512-token blocks) on the default config.yaml cluster: 160 racks x
64 GPUs = 10,240 H100s (Llama-3-70B TP2 -> 5,120 workers), an EIC pool per
rack, remote SSD, network contention on. Each router runs in a fresh Python
process (so its peak RSS is its own): load the trace, build the topology,
start the cache engine (a 50-request replay: with the compiled engine this
loads the numba kernels, ~0.5 s once per process; the first run on a fresh
checkout compiles them, ~20 s, cached in sim/__pycache__), replay timed,
then hit-rate-only. requests/s = simulated requests per wall second of the
replay itself (trace loading, topology building and engine start excluded,
printed separately); CPU req/s uses the process's CPU time instead, which is
less sensitive to other jobs sharing the machine. Peak RSS is ru_maxrss of
the router's process after both replays. ``--engine python`` measures the
reference Python cache instead of the compiled one (same results).

    python benchmarks/bench_cluster.py [--trace PATH] [--routers a,b] [--policy lru] [--limit N]
                                       [--engine auto|compiled|python] [--set key=value ...] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DEFAULT_TRACE = os.path.join(ROOT, "..", "shared", "traces", "mooncake_conversation.jsonl")
ROUTERS = "random,round_robin,least_loaded,session_affinity,prefix_aware,cache_load_balanced"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_router(args) -> dict:
    """Child process: replay the trace with one router, timed then hit-rate-only."""

    import numpy as np

    from sim.config import load_config
    from sim.modes.cluster import run_cluster
    from sim.modes.common import prepare_workload
    from sim.report.cluster import cluster_metrics
    from sim.timing.topology import Topology
    from trace.formats import load_trace

    cfg = load_config(overrides=args.set)
    t = time.perf_counter()
    w, _ = load_trace(args.trace, limit=args.limit)
    w, ctx = prepare_workload(cfg, w)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    topo = Topology.from_config(cfg)
    topo_s = time.perf_counter() - t
    t = time.perf_counter()
    w0, _ = load_trace(args.trace, limit=50)
    w0, ctx0 = prepare_workload(cfg, w0)
    run_cluster(cfg, w0, args.policy, args.worker, ctx=ctx0, timing=False, topo=topo, engine=args.engine)
    start_s = time.perf_counter() - t
    out = {"router": args.worker, "requests": len(w), "load_s": load_s, "topology_s": topo_s,
           "engine_start_s": start_s, "gpus": topo.n_gpus, "racks": topo.n_racks}
    for timing in (True, False):
        c0 = time.process_time()
        res = run_cluster(cfg, w, args.policy, args.worker, ctx=ctx, timing=timing, topo=topo, engine=args.engine)
        cpu = time.process_time() - c0
        m = cluster_metrics(res, cfg)
        key = "timed" if timing else "fast"
        out[key] = {
            "req_s": len(w) / res.wall_s, "cpu_req_s": len(w) / cpu, "wall_s": res.wall_s,
            "hit_rate": m["hit_rate"], "by_location": m["hit_rate_by_location"],
            "ttft_p50_ms": m["ttft_ms"]["p50"], "ttft_p99_ms": m["ttft_ms"]["p99"],
            "ttft_network_share": m["network"]["ttft_network_share"],
            "worker_req_skew": m["skew"]["worker"]["requests"]["max_mean"],
            "rack_req_skew": m["skew"]["rack"]["requests"]["max_mean"],
            "rack_load_skew": m["skew"]["rack"]["load"]["max_mean"],
            "workers_used": m["skew"]["worker"]["used"], "hbm_tiers": len(res.cache.hbm),
            "links": m["network"]["links_instantiated"], "engine": type(res.cache).__name__,
        }
        del res
    out["peak_rss_mb"] = rss_mb()
    out["numpy"] = np.__version__
    return out


def main() -> None:
    from sim.engine.choice import ENGINES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=DEFAULT_TRACE)
    ap.add_argument("--routers", default=ROUTERS)
    ap.add_argument("--policy", default="lru")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--engine", default="auto", choices=ENGINES, help="cache engine")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--no-reference", action="store_true", help="skip the single-node reference measurement")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: run one router, print JSON
    args = ap.parse_args()
    if not os.path.exists(args.trace):
        sys.exit(f"trace not found: {args.trace}")
    if args.worker:
        print(json.dumps(one_router(args)))
        return
    from sim.config import load_config

    cfg = load_config(overrides=args.set)
    c = cfg.cluster
    print(f"workload: {os.path.basename(args.trace)}{'' if args.limit is None else f' (first {args.limit})'}; "
          f"cluster {c.racks} racks x {c.gpus_per_rack} GPUs = {c.racks * c.gpus_per_rack:,} x {cfg.hardware.gpu}, "
          f"model {cfg.model.name} TP{cfg.model.tp}, EIC {cfg.hardware.eic.capacity_gib:g} GiB/rack "
          f"({c.eic_nodes_per_rack} nodes), policy {args.policy}, contention {cfg.network.contention}, "
          f"engine {args.engine}")
    print(f"{'router':<20}{'timed req/s':>12}{'(CPU)':>8}{'fast req/s':>11}{'(CPU)':>8}{'hit':>7}"
          f"{'HBM':>6}{'peer':>6}{'DRAM':>6}{'EIC':>6}{'rEIC':>6}{'SSD':>6}{'TTFT p50':>10}{'p99 ms':>9}"
          f"{'net%':>6}{'GPU skew':>9}{'rack skew':>10}{'RSS MB':>8}", flush=True)
    rows = []
    for r in args.routers.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", r, "--trace", args.trace,
               "--policy", args.policy, "--engine", args.engine] + [x for s in args.set for x in ("--set", s)]
        if args.limit is not None:
            cmd += ["--limit", str(args.limit)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"{r:<20}failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
            continue
        d = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append(d)
        t, f = d["timed"], d["fast"]
        loc = t["by_location"]
        print(f"{r:<20}{t['req_s']:>12,.0f}{t['cpu_req_s']:>8,.0f}{f['req_s']:>11,.0f}{f['cpu_req_s']:>8,.0f}"
              f"{100 * t['hit_rate']:>6.1f}%" + "".join(f"{100 * loc[k]:>6.1f}" for k in loc)
              + f"{t['ttft_p50_ms']:>10,.0f}{t['ttft_p99_ms']:>9,.0f}{100 * t['ttft_network_share']:>6.2f}"
              f"{t['worker_req_skew']:>9.1f}{t['rack_req_skew']:>10.1f}{d['peak_rss_mb']:>8.0f}", flush=True)
    if rows:
        print(f"trace load {rows[0]['load_s']:.2f} s, topology ({rows[0]['gpus']:,} GPUs) "
              f"{rows[0]['topology_s']:.2f} s, engine start ({rows[0]['timed']['engine']}) "
              f"{max(r['engine_start_s'] for r in rows):.2f} s at most per process; "
              f"hit rates in % of input tokens (timed run)")
    if not args.no_reference:
        # The same machine's speed on a fixed job, so figures from shared or throttled machines compare.
        from sim.modes.common import prepare_workload
        from sim.modes.single import run_single
        from trace.formats import load_trace

        ref_cfg = load_config(overrides=["hardware.hbm.capacity_gib=8"])
        w, _ = load_trace(args.trace, limit=args.limit)
        w, ctx = prepare_workload(ref_cfg, w)
        run_single(ref_cfg, w.head(64), "lru", timing=False)  # load the compiled engine first
        res = run_single(ref_cfg, w, "lru", ctx=ctx, timing=False)
        print(f"machine reference: single-node lru hit-rate-only replay of the same requests "
              f"(benchmarks/bench_single_node.py, HBM 8 GiB) ran at {len(w) / res.wall_s:,.0f} req/s now")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
