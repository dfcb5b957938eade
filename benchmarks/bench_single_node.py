"""Single-node replay speed and memory, per policy, timed and hit-rate-only.

Workload: the Mooncake conversation trace (../shared/traces/, 12,031
requests, 512-token blocks simulated at their own granularity), llama-3-8b
fp16 on 8 x H100, the default config.yaml tiers with an HBM KV budget of
`--hbm-gb` GiB per GPU. Each policy replays the full trace in this one
process; requests/s is simulated requests per wall second of the replay
(trace loading excluded, printed separately); peak RSS is the process's
ru_maxrss after all runs.

    python benchmarks/bench_single_node.py [--trace PATH] [--policies lru,arc] [--hbm-gb 8] [--limit N]
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
from sim.single_node import prepare_workload, run_single  # noqa: E402
from trace.loaders import load_trace  # noqa: E402

DEFAULT_TRACE = os.path.join(ROOT, "..", "shared", "traces", "mooncake_conversation.jsonl")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=DEFAULT_TRACE)
    ap.add_argument("--policies", default="lru,lfu,fifo,arc,s3fifo,selective_write,session_prefetch,belady")
    ap.add_argument("--hbm-gb", type=float, default=8.0)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    if not os.path.exists(args.trace):
        sys.exit(f"trace not found: {args.trace}")
    cfg = load_config(overrides=[f"hardware.hbm.capacity_gb={args.hbm_gb}"])
    t = time.perf_counter()
    w, stats = load_trace(args.trace, limit=args.limit)
    load_s = time.perf_counter() - t
    w, ctx = prepare_workload(cfg, w)
    print(f"workload: {w.name}, {len(w):,} requests, {len(w.block_ids):,} block accesses of "
          f"{w.block_tokens} tokens; model {cfg.model.name}, {cfg.hardware.gpus_per_node} x {cfg.hardware.gpu}, "
          f"HBM {args.hbm_gb} GiB/GPU, DRAM {cfg.hardware.dram.capacity_gb} GiB, SSD {cfg.hardware.ssd.capacity_gb} GiB")
    print(f"trace load: {load_s:.2f} s; RSS after load {rss_mb():.0f} MB")
    print(f"{'policy':<18}{'timed req/s':>12}{'fast req/s':>12}{'hit rate':>10}{'fast hit':>10}")
    for name in args.policies.split(","):
        timed = run_single(cfg, w, name, ctx=ctx, timing=True)
        fast = run_single(cfg, w, name, ctx=ctx, timing=False)
        hr = timed.hit_tokens.sum() / w.input_tokens.sum()
        hf = fast.hit_tokens.sum() / w.input_tokens.sum()
        print(f"{name:<18}{len(w) / timed.wall_s:>12,.0f}{len(w) / fast.wall_s:>12,.0f}{hr:>10.3f}{hf:>10.3f}",
              flush=True)
    print(f"peak RSS: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
