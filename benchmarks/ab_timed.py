"""Paired A/B of the single-node timed replay between two checkouts, for a busy machine (issue #19 speed).

Alternating single runs in separate processes spread by 10-20 % when other jobs share the cores, which
hides a change worth a few per cent. Here each checkout gets one long-lived worker process that builds
the workload once (``bench_scale``'s: synthetic ``multi_turn``, 16-token blocks, sessions = requests /
10, LRU) and then replays it on demand; the driver asks the two in turn (ABBA order), so both see the
same load, and reports the CPU time (``time.process_time``) per request of every pair, the medians and
the median of the paired differences.

``--python-only``: SimPy's event model (``sim.modes.single.COMPILED_EVENTS`` off where the checkout has the
compiled one); the compiled cache calls of the timed replay (``sim.engine.timed_ops.arrive`` and
``first_token``) are answered from a recording of a first replay (their rows written and the worker
load counted as they do), so the time is that of the Python around them - the part that moves when
the event code changes - without the memory-bound cache work that varies most with the machine's
load. Each replay is checked against the recorded one (TTFT, bit for bit).

``--hit-rate-only``: the same pairs for the compiled hit-rate-only replay (``sim.engine.replay``).
Either way the two sides' per-request results (worker, hit blocks and tokens, TTFT when timed) must
hash the same, or the driver stops.

    python benchmarks/ab_timed.py --base /path/to/old/checkout [--new .] [--requests 20000] [--pairs 10]
        [--python-only | --hit-rate-only]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)


def worker(root: str, n: int, python_only: bool, timing: bool) -> None:
    sys.path.insert(0, root)
    import numpy as np

    import sim.engine.timed_ops as ops
    import sim.modes.single as single
    from sim.config import Config
    from sim.modes.common import prepare_workload
    from trace.synthetic import generate

    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={
        "kind": "multi_turn", "requests": n, "block_tokens": 16, "sessions": max(1, n // 10)})
    pw, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    single.run_single(cfg, pw.head(min(n, 2000)), "lru", timing=timing)  # compile outside the timing
    ref = None
    if python_only:
        # the SimPy event model (a checkout with the compiled one, sim.engine.timed_node, runs that by default)
        single.COMPILED_EVENTS = False
        arrive, first_token = ops.arrive, ops.first_token
        got_a: dict = {}
        got_f: dict = {}

        def rec_arrive(M, R, load, i, sess, P, pos0, out, row, bt, n_in):
            r = arrive(M, R, load, i, sess, P, pos0, out, row, bt, n_in)
            got_a[i] = (r, out[1][row].copy(), out[2][row].copy())
            return r

        def rec_first_token(M, wk, i, P, pos0, start, state):
            got_f[i] = first_token(M, wk, i, P, pos0, start, state)
            return got_f[i]

        ops.arrive, ops.first_token = rec_arrive, rec_first_token
        ref = single.run_single(cfg, pw, "lru", ctx=ctx, timing=True).ttft_s

        def play_arrive(M, R, load, i, sess, P, pos0, out, row, bt, n_in):
            r, hb, ht = got_a[i]
            load[r[0]] += 1
            out[0][row], out[1][row], out[2][row] = r[0], hb, ht
            return r

        ops.arrive, ops.first_token = play_arrive, lambda M, wk, i, P, pos0, start, state: got_f[i]
    print("ready", flush=True)
    for _ in sys.stdin:
        c0 = time.process_time()
        res = single.run_single(cfg, pw, "lru", ctx=ctx, timing=timing)
        cpu = time.process_time() - c0
        if ref is not None and not np.array_equal(res.ttft_s, ref, equal_nan=True):
            raise SystemExit("the replay differs from the recorded one")
        rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB
        h = hashlib.sha1()
        for col in ("worker", "hit_blocks", "hit_tokens") + (("ttft_s",) if timing else ()):
            h.update(np.ascontiguousarray(getattr(res, col)).tobytes())
        print(f"{cpu / n * 1e6:.3f} {rss_gib:.3f} {h.hexdigest()[:16]}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="the checkout to compare against (its root); required")
    ap.add_argument("--new", default=os.path.dirname(os.path.dirname(HERE)), help="default: this checkout")
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--python-only", action="store_true")
    ap.add_argument("--hit-rate-only", action="store_true", help="A/B the compiled hit-rate-only replay instead")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.requests, args.python_only, not args.hit_rate_only)
        return
    if not args.base:
        ap.error("--base is required")
    if args.python_only and args.hit_rate_only:
        ap.error("--python-only replays the timed run's compiled calls; it cannot go with --hit-rate-only")
    sides = {"base": os.path.abspath(args.base), "new": os.path.abspath(args.new)}
    procs = {k: subprocess.Popen([sys.executable, HERE, "--worker", root, "--requests", str(args.requests)]
                                 + (["--python-only"] if args.python_only else [])
                                 + (["--hit-rate-only"] if args.hit_rate_only else []),
                                 cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for k, root in sides.items()}
    for k, p in procs.items():
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"{k} worker failed")
    us: dict[str, list[float]] = {"base": [], "new": []}
    rss: dict[str, float] = {}
    what = "Python side only" if args.python_only else "hit-rate-only replay" if args.hit_rate_only else "whole replay"
    digests = set()
    print(f"{args.requests:,} requests, {what}, "
          f"load {os.getloadavg()[0]:.1f}")
    for j in range(args.pairs):
        for k in (("base", "new") if j % 2 == 0 else ("new", "base")):
            p = procs[k]
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write("go\n")
            p.stdin.flush()
            cpu_us, peak, digest = p.stdout.readline().split()
            digests.add(digest)
            if len(digests) > 1:
                raise SystemExit(f"the two sides' per-request results differ (pair {j + 1})")
            us[k].append(float(cpu_us))
            rss[k] = float(peak)
        print(f"pair {j + 1}: base {us['base'][-1]:.1f}  new {us['new'][-1]:.1f} us/request CPU", flush=True)
    for p in procs.values():
        assert p.stdin is not None
        p.stdin.close()
        p.wait()
    d = [b - a for a, b in zip(us["base"], us["new"], strict=True)]
    mb, mn, md = statistics.median(us["base"]), statistics.median(us["new"]), statistics.median(d)
    print(f"median base {mb:.1f}, new {mn:.1f} us/request ({1e6 / mb:,.0f} -> {1e6 / mn:,.0f} CPU requests/s); "
          f"paired new - base {md:+.1f} us ({md / mb * 100:+.1f} %), "
          f"pairs where new is faster: {sum(x < 0 for x in d)}/{len(d)}; load {os.getloadavg()[0]:.1f}")
    print(f"peak RSS per worker: base {rss['base']:.2f} GiB, new {rss['new']:.2f} GiB; "
          f"per-request results identical (sha1 {digests.pop()})")


if __name__ == "__main__":
    main()
