"""Single-node replay speed and memory, per policy, timed and hit-rate-only.

Workload: the Mooncake conversation trace (../shared/traces/, 12,031
requests, 512-token blocks simulated at their own granularity), Llama-3-70B
TP 2 on 8 x H100 (4 workers), the default config.yaml tiers with an HBM KV
budget of `--hbm-gb` GiB per GPU and the default router. Each policy
replays the full trace in this one process, timed (SimPy) and hit-rate-only.

requests/s = simulated requests per second of the replay itself (trace
loading excluded, printed separately), by wall clock and by the process's
CPU time (less sensitive to other jobs sharing the machine). The compiled
engine is JIT-compiled once per machine (cached in __pycache__); the first
replay of each kind is run once untimed so compilation is not counted, and
the compile time is printed. `--engine python` measures the Python
reference implementation instead. Peak RSS is the process's ru_maxrss after
all runs.

    python benchmarks/bench_single_node.py [--trace PATH] [--policies lru,arc] [--hbm-gb 8]
                                           [--limit N] [--engine auto|python] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


from sim.config import load_config  # noqa: E402
from sim.modes.common import prepare_workload  # noqa: E402
from sim.modes.single import run_single  # noqa: E402
from trace.formats import load_trace  # noqa: E402

DEFAULT_TRACE = os.path.join(ROOT, "..", "shared", "traces", "mooncake_conversation.jsonl")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_of(repeat: int, fn):
    """(result, best wall s, best CPU s) over `repeat` runs."""
    best_w = best_c = float("inf")
    res = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        res = fn()
        best_w = min(best_w, time.perf_counter() - w0)
        best_c = min(best_c, time.process_time() - c0)
    return res, best_w, best_c


def main() -> None:
    from sim.engine.choice import ENGINES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=DEFAULT_TRACE)
    ap.add_argument("--policies", default="lru,lfu,fifo,arc,s3fifo,selective_write,session_prefetch,belady")
    ap.add_argument("--hbm-gb", type=float, default=8.0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--engine", default="auto", choices=ENGINES)
    ap.add_argument("--repeat", type=int, default=3, help="replays per measurement; the best is kept")
    args = ap.parse_args()
    if not os.path.exists(args.trace):
        sys.exit(f"trace not found: {args.trace}")
    cfg = load_config(overrides=[f"hardware.hbm.capacity_gib={args.hbm_gb}", f"cache.engine={args.engine}"])
    t = time.perf_counter()
    w, stats = load_trace(args.trace, limit=args.limit)
    load_s = time.perf_counter() - t
    w, ctx = prepare_workload(cfg, w)
    print(f"workload: {w.name}, {len(w):,} requests, {len(w.block_ids):,} block accesses of "
          f"{w.block_tokens} tokens; model {cfg.model.name}, {cfg.hardware.gpus_per_node} x {cfg.hardware.gpu}, "
          f"HBM {args.hbm_gb} GiB/GPU, DRAM {cfg.hardware.dram.capacity_gib} GiB, "
          f"SSD {cfg.hardware.ssd.capacity_gib} GiB, "
          f"router {cfg.cluster.router}, engine {args.engine}")
    print(f"trace load: {load_s:.2f} s; RSS after load {rss_mb():.0f} MB")
    t = time.perf_counter()
    warm, wctx = prepare_workload(cfg, w.head(64))
    for timing in (False, True):
        run_single(cfg, warm, "lru", ctx=wctx, timing=timing)
    print(f"warm-up (JIT compile or cache load): {time.perf_counter() - t:.1f} s")
    n = len(w)
    print(f"{'policy':<18}{'timed req/s':>12}{'(CPU)':>10}{'fast req/s':>12}{'(CPU)':>10}"
          f"{'hit rate':>10}{'fast hit':>10}")
    for name in args.policies.split(","):
        timed, tw, tc = best_of(args.repeat, lambda name=name: run_single(cfg, w, name, ctx=ctx, timing=True))
        fast, fw, fc = best_of(args.repeat, lambda name=name: run_single(cfg, w, name, ctx=ctx, timing=False))
        hr = timed.hit_tokens.sum() / w.input_tokens.sum()
        hf = fast.hit_tokens.sum() / w.input_tokens.sum()
        print(f"{name:<18}{n / tw:>12,.0f}{n / tc:>10,.0f}{n / fw:>12,.0f}{n / fc:>10,.0f}{hr:>10.3f}{hf:>10.3f}",
              flush=True)
    print(f"peak RSS: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
