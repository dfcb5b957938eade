"""`trace synth` speed: 1M requests from the Mooncake fit (or a given fit), requests/s and peak RSS.

    python3 benchmarks/bench_trace_synth.py [--fit FIT.yaml] [--requests 1000000]

Without --fit it fits ../shared/traces/mooncake_conversation.jsonl first (not timed).
Also prints the fidelity table of a same-size synthetic trace and of --rate-scale 10.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trace.fidelity import compare, fidelity_metrics  # noqa: E402
from trace.fit import fit_workload  # noqa: E402
from trace.fitmodel import load_fit, save_fit  # noqa: E402
from trace.formats import load_trace  # noqa: E402
from trace.synth import synthesize  # noqa: E402

MOONCAKE = ROOT.parent / "shared" / "traces" / "mooncake_conversation.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", default=None)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--fidelity", action="store_true", help="also print the fidelity tables (Mooncake)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        fit_path = Path(a.fit) if a.fit else Path(d) / "fit.yaml"
        w = None
        if not a.fit:
            w, _ = load_trace(MOONCAKE)
            save_fit(fit_workload(w), fit_path)
        fit = load_fit(fit_path)
        out = Path(d) / "synth.jsonl"
        t = time.perf_counter()
        res = synthesize(fit, out, requests=a.requests, seed=0)
        dt = time.perf_counter() - t
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"trace synth: {res['requests']:,} requests in {dt:.1f} s = {res['requests'] / dt:,.0f} requests/s, "
              f"{out.stat().st_size / 1e9:.2f} GB written, peak RSS {rss_mb:,.0f} MB")
        if a.fidelity and w is not None:
            base = fidelity_metrics(w)
            span_s = float(w.arrival_ms.max() - w.arrival_ms.min()) / 1000.0
            got = {}
            # Scale 1: the same size. Scale 10: the same time window, so 10x the requests.
            for scale, n in ((1.0, len(w)), (10.0, 10 * len(w))):
                synthesize(fit, out, requests=n, seed=0, rate_scale=scale, duration_s=span_s)
                ws, _ = load_trace(out)
                got[scale] = fidelity_metrics(ws)
                print(f"\nrate scale {scale:g} ({len(ws):,} requests in {span_s:.0f} s): "
                      "metric | original | synthetic | difference")
                for k, v, s, diff, ok in compare(base, got[scale]):
                    print(f"{k} | {v:.4g} | {s:.4g} | {diff} | {'ok' if ok else 'missed'}")
            r = got[10.0]["arrival_rate_req_s"] / got[1.0]["arrival_rate_req_s"]
            t1, t10 = (got[k].get("turns_per_session_mean", 0.0) for k in (1.0, 10.0))
            print(f"\nrate-scale 10 / rate-scale 1 arrival rate: {r:.3f}; turns per session {t1:.3f} vs {t10:.3f}")

if __name__ == "__main__":
    main()
