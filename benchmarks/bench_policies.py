"""Per-policy replay speed and memory.

Workload: Zipf(s=1.0) over 100k keys (key of rank r drawn with probability
proportional to 1/r, ranks shuffled onto ids), 1M accesses, one tier of
capacity 10k keys, replayed with ``sim.policies.replay.replay`` (hit ->
touch; miss -> admit, evict while full, insert). Each policy runs in its own
subprocess so its peak RSS (``resource.getrusage``, ru_maxrss) is its own;
the access sequence and AccessContext build are not timed; the RSS peak
before the replay (numpy, the sequence, the context) is printed beside it.

    python benchmarks/bench_policies.py [--accesses N] [--keys K] [--capacity C]
        [--policies lru,arc,...] [--seed S]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def zipf_keys(n_access: int, n_keys: int, s: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_keys + 1, dtype=np.float64) ** s
    p /= p.sum()
    ranks = rng.choice(n_keys, size=n_access, p=p)
    ids = rng.permutation(n_keys).astype(np.int64)
    return ids[ranks]


def run_one(name: str, args) -> dict:
    from sim.policies.replay import context_for_keys, replay

    keys = zipf_keys(args.accesses, args.keys, 1.0, args.seed)
    ctx = context_for_keys(keys)  # depth 0 everywhere: selective_write admits all
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    st = replay(name, keys, args.capacity, ctx)
    dt = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "policy": name,
        "seconds": dt,
        "ops_per_s": args.accesses / dt,
        "hit_rate": st.hits / args.accesses,
        "evictions": st.evictions,
        "peak_rss_mb": rss_kb / 1024,
        "rss_before_replay_mb": base_kb / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accesses", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--capacity", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policies", default="")
    ap.add_argument("--one", default="", help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args()

    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return

    from sim.policies import REGISTRY

    names = [n for n in args.policies.split(",") if n] or sorted(REGISTRY)
    print(
        f"workload: Zipf(1.0) over {args.keys:,} keys, {args.accesses:,} accesses, "
        f"single tier, capacity {args.capacity:,} keys, seed {args.seed}; "
        f"replay = hit->touch, miss->admit/evict/insert; one subprocess per policy"
    )
    print(f"{'policy':<18}{'ops/s':>12}{'seconds':>10}{'hit rate':>10}{'peak RSS MB':>13}{'(before replay)':>17}")
    base = [sys.executable, os.path.abspath(__file__), "--accesses", str(args.accesses), "--keys",
            str(args.keys), "--capacity", str(args.capacity), "--seed", str(args.seed)]
    for name in names:
        out = subprocess.run(base + ["--one", name], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            print(f"{name:<18} FAILED: {out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:<18}{r['ops_per_s']:>12,.0f}{r['seconds']:>10.2f}{r['hit_rate']:>10.4f}{r['peak_rss_mb']:>13.1f}{r['rss_before_replay_mb']:>17.1f}")


if __name__ == "__main__":
    main()
