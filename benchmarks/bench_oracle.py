"""Oracle speed and memory on a real trace.

Workload: the Mooncake conversation trace (12,031 requests, 288,500 block
accesses of 512 tokens) from ../shared/traces, or --trace. Measures:

1. load + per-access arrays (not part of the bounds' time);
2. start-up: the first bounds call of a process loads the compiled (numba)
   kernels; timed on its own, once;
3. all four bounds (content, relaxed, strict-prefix optimum, LRU) for every
   pool (all + the default length buckets) at one capacity, for each of
   --capacities (blocks; 1024 = 160 GiB of Llama-3-70B fp16 KV; small ones are
   the hardest for the exact optimum), method exact and belady, and the worst;
4. a 20-point capacity curve (geometric, 1% .. 100% of the peak reuse load)
   of all four bounds on the whole trace, exact and belady.

Prints wall seconds, CPU seconds (the machine is shared), block accesses per
second and peak RSS (ru_maxrss).

    python benchmarks/bench_oracle.py [--trace T] [--capacities 64,100,128,256,1024,4096] [--points 20]
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
    from trace.formats import load_trace

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=DEFAULT_TRACE)
    ap.add_argument("--format", default="auto")
    ap.add_argument("--capacities", default="64,100,128,256,1024,4096", help="blocks, comma-separated")
    ap.add_argument("--points", type=int, default=20)
    a = ap.parse_args()
    if not os.path.exists(a.trace):
        print(f"trace not found: {a.trace}", file=sys.stderr)
        return 2
    capacities = [int(x) for x in a.capacities.split(",") if x.strip()]
    t0 = time.perf_counter()
    w, _ = load_trace(a.trace, a.format)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    plist = [(lab, pw, accesses(pw)) for lab, pw in pools(w, parse_buckets(None)) if len(pw)]
    t_acc = time.perf_counter() - t0
    n_acc = len(w.block_ids)
    total_acc = sum(acc.n for *_, acc in plist)
    print(f"workload: {w.name}, {len(w):,} requests, {n_acc:,} block accesses, {w.block_tokens}-token blocks")
    print(f"load {t_load:.2f} s, access arrays for {len(plist)} pools {t_acc:.2f} s, peak RSS {rss_mib():.0f} MiB")

    t0 = time.perf_counter()
    smallest = min(plist, key=lambda p: p[2].n)[2]
    for method in ("exact", "belady"):
        compute_bounds(smallest, 1, method)
    print(f"start-up (first call in the process: compiled kernels from numba's cache) "
          f"{time.perf_counter() - t0:.2f} s")

    for method in ("exact", "belady"):
        worst = (0.0, 0)
        for cap in capacities:
            t0, c0 = time.perf_counter(), time.process_time()
            parts: dict[str, float] = {}
            proven = True
            for _lab, _pw, acc in plist:
                b = compute_bounds(acc, cap, method)
                proven &= b.proven_optimal
                for k, v in b.timings_s.items():
                    parts[k] = parts.get(k, 0.0) + v
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            worst = max(worst, (dt, cap))
            print(f"[one capacity, all pools] method={method} capacity={cap} blocks: {dt:.2f} s wall, "
                  f"{cpu:.2f} s CPU ({total_acc / dt:,.0f} accesses/s; "
                  + ", ".join(f"{k} {v:.2f}s" for k, v in parts.items())
                  + f"), proven optimal: {proven}, peak RSS {rss_mib():.0f} MiB")
        print(f"[one capacity, all pools] method={method} worst: {worst[0]:.2f} s at {worst[1]} blocks "
              f"(target < 2 s)")

    acc = plist[0][2]
    peak = int(interval_loads(acc, acc.prev >= 0).max())
    caps = sorted({max(1, int(round(x))) for x in np.geomspace(max(1, peak / 100), peak, a.points)})
    for method in ("exact", "belady"):
        t0, c0 = time.perf_counter(), time.process_time()
        n_proven = 0
        for c in caps:
            n_proven += compute_bounds(acc, c, method).proven_optimal
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"[curve, all requests] method={method} {len(caps)} capacities {caps[0]}..{caps[-1]} blocks: "
              f"{dt:.2f} s wall, {cpu:.2f} s CPU ({len(caps) * acc.n / dt:,.0f} accesses/s), "
              f"proven {n_proven}/{len(caps)}, peak RSS {rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
