"""PD mode speed and memory: the full Mooncake trace through the default PD cluster.

Workload: the Mooncake conversation trace (../shared/traces/, 12,031
requests, 512-token blocks) on the default config.yaml: Llama-3-70B TP 2 on
H100s, ``pd.racks`` x ``cluster.gpus_per_rack`` GPUs (2 x 64 = 128, 64
replicas) split ``pd.prefill_ratio:pd.decode_ratio`` per rack, push
transfer with layer-wise pipelining, network contention on. Each
deployment (PD, then colocated on the same GPUs) replays the whole trace
once in this process. requests/s = simulated requests per wall second of
the replay (trace loading and preparation excluded, printed separately);
CPU requests/s uses process CPU time instead (what the replay costs when the
machine is shared). Peak RSS = the process's ru_maxrss after all runs.

`--requests N` replays the built-in synthetic workload (multi-turn, N / 10 sessions) instead, and every run
prints the memory estimate `run --mode pd` checks before it starts (sim.modes.runner.pd_run_estimate), to
set against the peak. Above ``report.exact_quantiles_max_requests`` (``--set
report.exact_quantiles_max_requests=0`` for any size) the finished requests' rows are streamed to the report a
block at a time (sim.modes.pd.finished), as `run --mode pd` does.

    python benchmarks/bench_pd.py [--trace PATH] [--limit N] [--set pd.transfer=pull ...] [--kinds pd,colocated]
    python benchmarks/bench_pd.py --requests 100000
"""
from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sim.config import load_config  # noqa: E402
from sim.modes.memory import BASE_B  # noqa: E402
from sim.modes.pd.run import prepared_run  # noqa: E402
from sim.modes.pd.simulator import simulate  # noqa: E402
from sim.modes.result_rows import streams  # noqa: E402
from sim.modes.runner import pd_run_estimate  # noqa: E402
from sim.report.pd import PDTotals, deployment_metrics  # noqa: E402
from trace.formats import load_trace  # noqa: E402
from trace.source import workload_from_config  # noqa: E402

DEFAULT_TRACE = os.path.join(ROOT, "..", "shared", "traces", "mooncake_conversation.jsonl")
TARGET_REQ_S = 2000
TARGET_RSS_MB = 2048


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=DEFAULT_TRACE)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--kinds", default="pd,colocated", help="deployments to time, comma-separated")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--requests", type=int, default=0,
                    help="the built-in synthetic workload of N requests (N/10 sessions) instead of the trace")
    args = ap.parse_args()
    overrides = list(args.overrides)
    if args.requests:
        overrides += [f"synthetic.requests={args.requests}", f"synthetic.sessions={max(1, args.requests // 10)}"]
    elif not os.path.exists(args.trace):
        sys.exit(f"trace not found: {args.trace}")
    cfg = load_config(overrides=overrides)
    t = time.perf_counter()
    if args.requests:
        w, _stats = workload_from_config(cfg)
    else:
        w, _stats = load_trace(args.trace, limit=args.limit)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    prep, lay, offered = prepared_run(cfg, w, cfg.policies.eviction)  # as run --mode pd derives them
    prep_s = time.perf_counter() - t
    n = len(prep.workload)
    print(f"workload: {w.name}, {len(w):,} requests ({n:,} simulated, {len(prep.rejected):,} rejected: larger than a "
          f"replica's KV), {lay['block_tokens']}-token blocks")
    print(f"cluster: {lay['gpus']} x {lay['gpu']} in {lay['racks']} racks, {lay['model']} tp {lay['tp']}, "
          f"{lay['replicas']} replicas, P:D {lay['ratio']} -> {lay['prefill_replicas']}P + {lay['decode_replicas']}D; "
          f"transfer {cfg.pd.transfer}{' layer-wise' if cfg.pd.layerwise else ''}, "
          f"KV {lay['kv_gib_per_gpu']:.1f} GiB/GPU")
    print(f"trace load {load_s:.2f} s, prepare {prep_s:.2f} s; RSS after load {rss_mb():.0f} MB")
    kinds = args.kinds.split(",")
    at, est = pd_run_estimate(cfg, w, prep, offered, cfg.policies.eviction, tuple(kinds))
    print(f"memory estimate (sim.modes.memory.pd_estimate, {at} at the peak): {est.total / 2**20:.0f} MB "
          f"({', '.join(f'{k} {v / 2**20:.0f}' for k, v in est.parts.items())}, base {BASE_B / 2**20:.0f})")
    print(f"{'deployment':<12}{'wall s':>8}{'req/s':>9}{'CPU s':>8}{'CPU req/s':>11}{'iterations':>12}"
          f"{'events':>9}{'TTFT p50':>10}{'TPOT p50':>10}{'SLO':>7}")
    worst = None
    for kind in kinds:
        res = None
        gc.collect()  # the previous deployment freed first, as run --mode pd does (sim.modes.pd.run)
        c0, t0 = time.process_time(), time.perf_counter()
        totals = PDTotals(cfg, prep.workload, prep.setup.block_tokens, kind, streamed=streams(cfg, n, None))
        res = simulate(kind, cfg, prep, cfg.policies.eviction, totals=totals)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        m = deployment_metrics(res, cfg, len(prep.rejected))
        it = sum(p["iterations"] for p in m["pools"].values())
        ev = sum(p["events"] for p in m["pools"].values())
        rate = n / wall
        worst = rate if worst is None else min(worst, rate)
        print(f"{kind:<12}{wall:>8.2f}{rate:>9,.0f}{cpu:>8.2f}{n / cpu:>11,.0f}{it:>12,}{ev:>9,}"
              f"{m['ttft_ms']['p50']:>10,.0f}{m['tpot_ms']['p50']:>10,.1f}{100 * m['slo_attainment']:>6.1f}%",
              flush=True)
    peak = rss_mb()
    print(f"finished requests' rows: {'streamed' if streams(cfg, n, None) else 'whole'}")
    print(f"peak RSS: {peak:.0f} MB (target < {TARGET_RSS_MB}); slowest deployment {worst:,.0f} simulated requests "
          f"per wall second (target >= {TARGET_REQ_S:,})")


if __name__ == "__main__":
    main()
