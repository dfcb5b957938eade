"""Oracle speed and memory on a real trace.

Workload: the Mooncake conversation trace (12,031 requests, 288,500 block
accesses of 512 tokens) from ../shared/traces, or --trace. Measures:

1. load + per-access arrays (not part of the bounds' time);
2. all four bounds (content, relaxed, strict-prefix optimum, LRU) for every
   pool (all + the default length buckets) at one capacity (--capacity
   blocks; 1024 = 160 GiB of Llama-3-70B fp16 KV), method exact and belady;
3. a 20-point capacity curve (geometric, 1% .. 100% of the peak reuse load)
   of all four bounds on the whole trace, exact and belady.

Prints seconds, block accesses per second and peak RSS (ru_maxrss).

    python benchmarks/bench_oracle.py [--trace T] [--capacity 1024] [--points 20]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

DEFAULT_TRACE = os.path.join(os.path.dirname(ROOT), "shared", "traces", "mooncake_conversation.jsonl")


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    from sim.oracle.access import accesses
    from sim.oracle.analysis import pools
    from sim.oracle.bounds import compute_bounds
    from sim.oracle.buckets import parse_buckets
    from sim.oracle.flow import interval_loads
    from trace.loaders import load_trace

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=DEFAULT_TRACE)
    ap.add_argument("--format", default="auto")
    ap.add_argument("--capacity", type=int, default=1024, help="blocks")
    ap.add_argument("--points", type=int, default=20)
    a = ap.parse_args()
    if not os.path.exists(a.trace):
        print(f"trace not found: {a.trace}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    w, _ = load_trace(a.trace, a.format)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    plist = [(lab, pw, accesses(pw)) for lab, pw in pools(w, parse_buckets(None)) if len(pw)]
    t_acc = time.perf_counter() - t0
    n_acc = len(w.block_ids)
    print(f"workload: {w.name}, {len(w):,} requests, {n_acc:,} block accesses, {w.block_tokens}-token blocks")
    print(f"load {t_load:.2f} s, access arrays for {len(plist)} pools {t_acc:.2f} s, peak RSS {rss_mib():.0f} MiB")

    for method in ("exact", "belady"):
        t0 = time.perf_counter()
        parts: dict[str, float] = {}
        proven = True
        for lab, pw, acc in plist:
            b = compute_bounds(acc, a.capacity, method)
            proven &= b.proven_optimal
            for k, v in b.timings_s.items():
                parts[k] = parts.get(k, 0.0) + v
        dt = time.perf_counter() - t0
        total_acc = sum(acc.n for *_, acc in plist)
        print(f"[one capacity, all pools] method={method} capacity={a.capacity} blocks: {dt:.2f} s "
              f"({total_acc / dt:,.0f} accesses/s; " + ", ".join(f"{k} {v:.2f}s" for k, v in parts.items())
              + f"), proven optimal: {proven}, peak RSS {rss_mib():.0f} MiB")

    acc = plist[0][2]
    peak = int(interval_loads(acc, acc.prev >= 0).max())
    caps = sorted({max(1, int(round(x))) for x in np.geomspace(max(1, peak / 100), peak, a.points)})
    for method in ("exact", "belady"):
        t0 = time.perf_counter()
        proven = 0
        for c in caps:
            proven += compute_bounds(acc, c, method).proven_optimal
        dt = time.perf_counter() - t0
        print(f"[curve, all requests] method={method} {len(caps)} capacities {caps[0]}..{caps[-1]} blocks: "
              f"{dt:.2f} s ({len(caps) * acc.n / dt:,.0f} accesses/s), proven {proven}/{len(caps)}, "
              f"peak RSS {rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
