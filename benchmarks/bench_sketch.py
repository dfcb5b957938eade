"""What the report's quantile sketches cost: update and merge speed, memory, accuracy.

* update: `--values` lognormal values (ms; mu 4, sigma 1.5, like TTFTs) generated chunk by chunk and
  added to one QuantileSketch, `--chunk` values at a time; values/s, best of `--repeat`.
* sink: a SketchSink fed the six per-request latency columns of a run (ttft, tpot, e2e, load, queue,
  prefill) for `--values` requests; requests/s.
* merge: `--merges` sketches (one per pod, say) merged into one; merges/s and values/s represented.
  Varies 2x from process to process (7-16 M/s here): glibc serves the 512 KB numpy temporaries by mmap
  (a page fault per page) until its dynamic threshold rises, so run it more than once.
* memory: the sketch's bucket arrays (fixed) and the process's peak RSS (ru_maxrss) after the updates,
  which never held more than one chunk - against the 8 bytes/value an exact array needs.
* accuracy: p50/p90/p99 against numpy's exact percentiles on the first `--exact-check` values.

    python benchmarks/bench_sketch.py [--values 10000000] [--chunk 65536] [--merges 1000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from sim.report.sink import SketchSink  # noqa: E402
from sim.report.sketch import RELATIVE_ERROR, QuantileSketch  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def chunks(n: int, size: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    for lo in range(0, n, size):
        yield rng.lognormal(4.0, 1.5, min(size, n - lo))


def bench_update(n: int, size: int, repeat: int) -> tuple[float, QuantileSketch]:
    pre = [c for _, c in zip(range(16), chunks(16 * size, size), strict=False)]  # timed without generation
    best, sk = 0.0, QuantileSketch()
    for _ in range(repeat):
        sk = QuantileSketch()
        t0 = time.perf_counter()
        done = 0
        while done < n:
            c = pre[(done // size) % len(pre)]
            sk.add(c)
            done += len(c)
        best = max(best, done / (time.perf_counter() - t0))
    return best, sk


def bench_sink(n: int, size: int, repeat: int) -> float:
    rng = np.random.default_rng(2)
    base = {k: rng.lognormal(-3.0, 1.5, size) for k in ("ttft", "tpot", "e2e", "load", "queue", "prefill")}
    best = 0.0
    for _ in range(repeat):
        sink = SketchSink()
        t0 = time.perf_counter()
        for _ in range(0, n, size):
            sink.add(base)
        best = max(best, (n // size) * size / (time.perf_counter() - t0))
    return best


def bench_merge(sk: QuantileSketch, merges: int, repeat: int) -> float:
    parts = [QuantileSketch.from_dict(sk.to_dict()) for _ in range(min(merges, 50))]
    best = 0.0
    for _ in range(repeat):
        total = QuantileSketch()
        t0 = time.perf_counter()
        for i in range(merges):
            total.merge(parts[i % len(parts)])
        best = max(best, merges / (time.perf_counter() - t0))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--values", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=65_536)
    ap.add_argument("--merges", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--exact-check", type=int, default=2_000_000)
    a = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; numpy {np.__version__}")
    rss0 = rss_mb()
    streamed = QuantileSketch()
    for c in chunks(a.values, a.chunk):  # generated and dropped chunk by chunk: memory stays flat
        streamed.add(c)
    print(f"memory: {a.values:,} values streamed into one sketch: buckets {streamed.nbytes() / 1024:.1f} KiB "
          f"({len(streamed.pos) * 2:,} fixed, {streamed.buckets_used():,} used); peak RSS {rss0:.0f} -> "
          f"{rss_mb():.0f} MB (an exact float64 array: {a.values * 8 / 2**20:,.0f} MB per metric)")
    ups, sk = bench_update(a.values, a.chunk, a.repeat)
    print(f"update: {ups / 1e6:,.1f} M values/s ({a.chunk:,} per add, best of {a.repeat})")
    sps = bench_sink(a.values, a.chunk, a.repeat)
    print(f"sink: {sps / 1e6:,.2f} M requests/s (6 latency columns per request, best of {a.repeat})")
    mps = bench_merge(sk, a.merges, a.repeat)
    print(f"merge: {mps:,.0f} merges/s ({mps * sk.count / 1e9:,.0f} G values/s represented, best of {a.repeat})")
    x = np.concatenate(list(chunks(min(a.exact_check, a.values), a.chunk)))
    check = QuantileSketch()
    check.add(x)
    t0 = time.perf_counter()
    exact = np.percentile(x, [50, 90, 99])
    t_exact = time.perf_counter() - t0
    est = check.quantiles([0.5, 0.9, 0.99])
    err = np.abs(est - exact) / exact
    print(f"accuracy on {len(x):,} values: p50/p90/p99 relative error {', '.join(f'{e:.4%}' for e in err)} "
          f"(bound {RELATIVE_ERROR:.0%}); numpy.percentile took {t_exact:.2f} s on the array")
    return 0


if __name__ == "__main__":
    sys.exit(main())
