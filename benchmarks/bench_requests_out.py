"""What `run --requests-out` costs: the same `run` with and without the per-request file.

Runs `python main.py run --trace T --mode M --no-plot --quiet` in this one process
(the compiled engine loaded once by a warm-up run), best of `--repeat`, with no
per-request file, with a .csv and (when pyarrow is installed) with a .parquet.
Prints wall seconds per variant, the overhead over the plain run, and the file size;
then the writer alone on the same rows (the end-to-end difference is within the
noise of a shared machine, the writer's time is what the option adds).

    python benchmarks/bench_requests_out.py [--trace PATH] [--mode single|cluster|pd] [--limit N]
                                            [--repeat 3] [--set k=v ...]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import main  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.modes.runner import run_mode  # noqa: E402
from sim.report.requests import _has_pyarrow, write_requests  # noqa: E402
from trace.formats import load_trace  # noqa: E402

DEFAULT_TRACE = os.path.join(ROOT, "..", "shared", "traces", "mooncake_conversation.jsonl")


def run_s(argv: list[str]) -> float:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main.main(argv)
    if code != 0:
        raise SystemExit(f"run failed ({code}): {' '.join(argv)}")
    return time.perf_counter() - t0


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=DEFAULT_TRACE)
    ap.add_argument("--mode", default="single", choices=["single", "cluster", "pd"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    a = ap.parse_args()
    base = ["run", "--mode", a.mode, "--trace", a.trace, "--no-plot", "--quiet"]
    base += [x for kv in a.overrides for x in ("--set", kv)]
    if a.limit:
        base += ["--limit", str(a.limit)]
    run_s(base)  # warm-up: JIT cache, trace parser
    w, _ = load_trace(a.trace, limit=a.limit)  # its request count for the rates, and the writer's rows below
    suffixes = [None, ".csv"] + ([".parquet"] if _has_pyarrow() else [])
    with tempfile.TemporaryDirectory() as d:
        best: dict = {}
        for _ in range(a.repeat):  # interleaved, so load changes on a shared machine hit every variant alike
            for s in suffixes:
                argv = base + (["--requests-out", os.path.join(d, "req" + s)] if s else [])
                best[s] = min(best.get(s, float("inf")), run_s(argv))
        plain = best[None]
        print(f"{a.mode} on {os.path.basename(a.trace)}{f' (limit {a.limit})' if a.limit else ''}, "
              f"best of {a.repeat}:")
        for s in suffixes:
            size = f", {os.path.getsize(os.path.join(d, 'req' + s)) / 1e6:.2f} MB" if s else ""
            over = f" (+{best[s] - plain:.2f} s, {100 * (best[s] / plain - 1):+.1f}%){size}" if s else ""
            print(f"  {s or 'no file':>9}: {best[s]:.2f} s{over}, {len(w) / best[s]:,.0f} requests/s")
        if not _has_pyarrow():
            print("  .parquet: skipped (pyarrow not installed)")
        cfg = load_config(overrides=a.overrides)
        tables: list = []
        run_mode(cfg, a.mode, workload=w, requests=tables)
        rows = sum(len(t) for t in tables)
        for s in suffixes[1:]:
            path = os.path.join(d, "alone" + s)
            t0 = time.perf_counter()
            for _ in range(a.repeat):
                write_requests(tables, path)
            dt = (time.perf_counter() - t0) / a.repeat
            print(f"  writer alone {s}: {dt:.3f} s for {rows:,} rows ({rows / max(dt, 1e-9):,.0f} rows/s)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (the whole process)")


if __name__ == "__main__":
    main_()
