"""Belady and the oracle on loaded trace files, which re-parenting (trace.reparent) makes distinct.

    python3 benchmarks/bench_distinct_traces.py [--trace X.jsonl ...] [--requests 1000000] [--root TREE]
                                                [--dir DIR] [--kv-budget-gb 40] [--skip-oracle]

Traces: ../shared/traces/mooncake_conversation.jsonl, plus (unless --requests 0) a JSONL of N requests
written by `trace synth` from the Mooncake fit (512-token blocks; kept in --dir and reused when there).
Each step runs in a fresh interpreter of the tree at --root (default this one; an export of an older
commit, e.g. ``git archive <commit> | tar -x -C DIR``, measures "before") and reports its wall time and
peak RSS (ru_maxrss of its own process):
  1. load: load_trace + compacted(): the form it ends in (compact, distinct, own blocks);
  2. `run --mode single --policy belady --hit-rate-only --trace X`: hit rate, engine req/s;
  3. `oracle --trace X --method belady --scope global --buckets none --kv-budget-gb G`: strict-prefix and
     LRU hit rates (the per-access arrays unless the workload is distinct).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_trace_files import _SYNTH, LOAD_STEP, MOONCAKE, REPLAY_STEP, make_fit, step  # noqa: E402

_ORACLE = """
from sim.cli import main
rc = main(["oracle", "--trace", {trace!r}, "--method", "belady", "--scope", "global", "--buckets", "none",
           "--kv-budget-gb", {gb!r}, "--output-dir", {out!r}, "--quiet"])
rows = open({out!r} + "/summary.csv").read().splitlines()
res = {{"rc": rc, "summary": rows[:3]}}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace", action="append", default=None, help="trace files (default: Mooncake)")
    ap.add_argument("--requests", type=int, default=1_000_000, help="also a synthesized JSONL of N (0: none)")
    ap.add_argument("--root", default=str(ROOT), help="the source tree measured")
    ap.add_argument("--dir", default="/tmp/kvsim_bench_distinct", help="where the synthesized JSONL is kept")
    ap.add_argument("--kv-budget-gb", default="40")
    ap.add_argument("--skip-oracle", action="store_true")
    a = ap.parse_args()
    root = Path(a.root).resolve()
    d = Path(a.dir)
    d.mkdir(parents=True, exist_ok=True)
    traces = [Path(t) for t in a.trace] if a.trace else [MOONCAKE]
    if a.requests:
        big = d / f"mooncake_fit_{a.requests}.jsonl"
        if not big.exists():
            s = step(_SYNTH.format(fit=str(make_fit(None, None, d)), out=str(big), n=a.requests, seed=0), ROOT)
            print(f"trace synth -> {big}: {s['result']['requests']:,} requests, {s['wall_s']:.1f} s")
        traces.append(big)
    print(f"tree: {root}")
    for t in traces:
        ld = step(LOAD_STEP.format(trace=str(t)), root)
        r = ld["result"]
        print(f"{t.name}: {r['requests']:,} requests, {r['accesses']:,} accesses, {r['own_blocks']:,} own blocks, "
              f"compact={r['compact']} distinct={r['distinct']}; load {ld['wall_s']:.1f} s, "
              f"peak RSS {ld['rss_gib']:.3f} GiB")
        b = step(REPLAY_STEP.format(policy="belady", trace=str(t), out=str(d / "belady")), root)
        print(f"  belady hit-rate-only: rc {b['result']['rc']}, hit rate {b['result']['hit_rate']:.6f}, "
              f"engine {b['result']['sim_speed_req_s']:,.0f} req/s, wall {b['wall_s']:.1f} s, "
              f"peak RSS {b['rss_gib']:.3f} GiB")
        if not a.skip_oracle:
            o = step(_ORACLE.format(trace=str(t), gb=a.kv_budget_gb, out=str(d / "oracle")), root)
            print(f"  oracle belady global none: rc {o['result']['rc']}, wall {o['wall_s']:.1f} s, "
                  f"peak RSS {o['rss_gib']:.3f} GiB")
            for row in o["result"]["summary"]:
                print(f"    {row}")


if __name__ == "__main__":
    main()
