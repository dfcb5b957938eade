"""Scale: millions of multi-turn requests in bounded memory (issue #19).

Workload: the built-in synthetic ``multi_turn`` generator, 16-token blocks, `--requests` requests
(default 10,000,000) and `--sessions` concurrent sessions (default requests / 10, as the issue's
1M-request / 100k-session case; capped at 1,000,000); otherwise the schema's built-in defaults
(``sim.config.Config()``, not config.yaml's scenario): Llama-3-8B fp16 at TP 1 on 8 x H100 per node, so
8 workers, each with 0.5 GiB of KV in HBM (256 blocks of 16 tokens), and per node 8 GiB of DRAM (4,096
blocks) and 64 GiB of SSD (32,768). One run per process, so the peak RSS is this run's:

* ``--run single``: single node, LRU, hit-rate-only (the compiled replay);
* ``--run single_timed``: single node, LRU, timed (SimPy);
* ``--run cluster``: cluster mode at ``--racks`` racks (default 1,600 = 102,400 GPUs), prefix_aware
  router, LRU, timed unless ``--hit-rate-only``.

Above ``--exact-max`` requests the per-request rows are streamed a block at a time (sim.modes.result_rows).

Prints the generation time, the replay's requests/s (wall and CPU), and the peak RSS
(resource.getrusage ru_maxrss) of the whole process and, on Linux, of the replay alone (VmHWM reset
after generating: at 1M requests the generation's transient peak hides the replay's), plus the memory
estimate the run was checked against (sim.modes.memory). ``--identical N`` also replays the first N
requests on the old in-memory path (the expanded CSR) and checks every per-request result is equal.

    python benchmarks/bench_scale.py --run single [--requests 10000000] [--identical 1000000]
    python benchmarks/bench_scale.py --run cluster --requests 1000000 --quick
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from sim.config import Config  # noqa: E402


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def reset_hwm() -> bool:
    """Reset the kernel's RSS high-water mark (Linux: clear_refs 5), so hwm_gib() is the peak from now on."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def hwm_gib() -> float:
    with open("/proc/self/status") as f:
        kb = next(line for line in f if line.startswith("VmHWM:")).split()[1]
    return int(kb) / 1024**2


def machine() -> str:
    from machine_ref import yardstick  # beside this script

    from sim.modes.memory import machine_bytes

    arch = platform.processor() or platform.machine()
    return f"{os.cpu_count()} cores, {machine_bytes() / 1024**3:.0f} GiB, {arch}, " \
           f"load {os.getloadavg()[0]:.1f}\n{yardstick()}"


def config(requests: int, *, sessions: int = 0, racks: int = 1600, exact_max: int | None = None) -> Config:
    """The benchmark's config (module doc); `sessions` 0 = requests / 10, capped at 1,000,000. Keyword
    arguments, not the argparse namespace: bench_cluster_kernels.py builds the same workload."""
    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={
        "kind": "multi_turn", "requests": requests, "block_tokens": 16,
        "sessions": sessions or min(1_000_000, max(1, requests // 10))})
    cfg.cluster = cfg.cluster.model_copy(update={"racks": racks, "router": "prefix_aware"})
    if exact_max is not None:
        cfg.report = cfg.report.model_copy(update={"exact_quantiles_max_requests": exact_max})
    return cfg


def replay(cfg: Config, w, run: str, timing: bool):
    """One replay: (per-request results, wall s, CPU s)."""
    from sim.modes.cluster import run_cluster
    from sim.modes.common import prepare_workload
    from sim.modes.single import run_single

    pw, ctx = prepare_workload(cfg, w)
    w0, c0 = time.perf_counter(), time.process_time()
    if run == "cluster":
        res = run_cluster(cfg, pw, "lru", "prefix_aware", ctx=ctx, timing=timing, stream_rows=True)
    else:
        res = run_single(cfg, pw, "lru", ctx=ctx, timing=timing)
    return res, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", choices=["single", "single_timed", "cluster"], default="single")
    ap.add_argument("--requests", type=int, default=10_000_000)
    ap.add_argument("--sessions", type=int, default=0)
    ap.add_argument("--racks", type=int, default=1600)
    ap.add_argument("--hit-rate-only", action="store_true", help="cluster: the untimed replay")
    ap.add_argument("--quick", action="store_true", help="100,000 requests (a smoke run)")
    ap.add_argument("--exact-max", type=int, default=None, metavar="N",
                    help="report.exact_quantiles_max_requests (default 2,000,000): runs above it stream their "
                         "per-request rows a block at a time (sim.modes.result_rows); 0 streams every run")
    ap.add_argument("--identical", type=int, default=0, metavar="N",
                    help="also check the first N requests against the expanded in-memory path")
    args = ap.parse_args()
    if args.quick:
        args.requests = 100_000
    from sim.modes.memory import limit_bytes, synthetic_estimate
    from trace.synthetic import generate

    cfg = config(args.requests, sessions=args.sessions, racks=args.racks, exact_max=args.exact_max)
    timing = args.run == "single_timed" or (args.run == "cluster" and not args.hit_rate_only)
    print(f"machine: {machine()}")
    print(f"workload: synthetic multi_turn, {args.requests:,} requests, {cfg.synthetic.sessions:,} sessions; "
          f"run: {args.run}{' timed' if timing else ' hit-rate-only'}"
          + (f", {args.racks} racks" if args.run == "cluster" else ""))
    print(f"estimate before generating: {synthetic_estimate(cfg.synthetic).total / 1024**3:.2f} GiB "
          f"(limit {limit_bytes() / 1024**3:.1f} GiB)")
    t0 = time.perf_counter()
    w = generate(cfg.synthetic, cfg.seed)
    print(f"generated in {time.perf_counter() - t0:.1f} s: {w.total_blocks:,} block accesses, "
          f"{w.prefix_blocks().n_own():,} own blocks "
          f"({'dense ids, none stored' if w.prefix_blocks().dense else 'ids stored'}), "
          f"workload {w.nbytes() / 1024**3:.2f} GiB "
          f"(the CSR would hold {w.total_blocks * 8 / 1024**3:.2f} GiB of ids); peak RSS so far {rss_gib():.2f} GiB")
    from sim.modes.runner import NEEDS

    est = NEEDS["cluster" if args.run == "cluster" else "single"](cfg, w, ["lru"], timing).est  # as `run` checks
    print(f"run estimate: {est.total / 1024**3:.2f} GiB ("
          + ", ".join(f"{k} {v / 1024**3:.2f}" for k, v in est.parts.items()) + ")")
    replay(cfg, w.head(50), args.run, timing)  # compile outside the timing
    hwm = reset_hwm()  # the replay's own peak, apart from the generation's transient one
    start = hwm_gib() if hwm else None  # what the process holds as the replay starts (freed pages it keeps too)
    res, wall, cpu = replay(cfg, w, args.run, timing)
    replay_peak = hwm_gib() if hwm else None
    hit = float(res.totals.hit_tokens.sum() / max(1, w.input_tokens.sum()))  # the rows may be streamed
    print(f"replay: {wall:.1f} s wall, {cpu:.1f} s CPU: {len(w) / wall:,.0f} requests/s wall, "
          f"{len(w) / cpu:,.0f} requests/s CPU; token hit rate {hit:.4f}")
    print(f"peak RSS: {rss_gib():.2f} GiB"
          + (f"; during the replay {replay_peak:.2f} GiB (VmHWM reset after generating, at {start:.2f} GiB)"
             if replay_peak else ""))
    from sim.modes.result_rows import ROW_BLOCK

    held = "whole" if res.worker is not None else \
        f"streamed, at most {res.most_blocks} of {-(-len(w) // ROW_BLOCK)} blocks of {ROW_BLOCK:,} held at once"
    print(f"per-request rows: {held}")
    if args.identical:
        k = min(args.identical, len(w))
        head = w.head(k)
        # every row kept, to compare them (a run above the exact-quantile limit streams them)
        keep = cfg.model_copy(update={"report": cfg.report.model_copy(update={"exact_quantiles_max_requests": k})})
        a, _, _ = replay(keep, head, args.run, timing)
        del res
        b, _, _ = replay(keep, head.expanded(), args.run, timing)
        cols = ["hit_blocks", "hit_tokens", "worker"] + (["ttft_s"] if timing else [])
        same = all(np.array_equal(getattr(a, c), getattr(b, c), equal_nan=c == "ttft_s") for c in cols)
        print(f"first {k:,} requests identical to the in-memory path ({', '.join(cols)}): {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
