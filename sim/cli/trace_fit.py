"""`trace fit` and `trace synth`: a workload model learned from a trace, and traces generated from it."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from sim.cli.common import EXIT_OK, print_load_stats
from sim.errors import InputError, check_number
from sim.io_safe import check_output_path


def cmd_fit(args: argparse.Namespace, console) -> int:
    from trace.fit import fit_workload
    from trace.fitmodel import load_fit, save_fit
    from trace.formats import load_trace

    check_output_path(args.out, "--out")
    w, ls = load_trace(args.trace, args.trace_format or "auto", strict=args.strict, limit=args.limit)
    if len(w) == 0:
        raise InputError("no requests to fit", where=str(args.trace))
    fit = fit_workload(w)
    save_fit(fit, args.out)
    ps, ss = fit["prefix_structure"], fit["sessions"]
    console.print(f"wrote {args.out}: {len(w):,} requests, {ss['count']:,} sessions "
                  f"({'inferred from prefix chains' if fit['source']['sessions_inferred'] else 'from session ids'}, "
                  f"{ss['turns_mean']:.2f} turns each), {len(ps['roots'])} shared roots")
    if not ps["observed"]:
        console.print(ps["message"])
    print_load_stats(console, ls)
    if args.check:
        _check(w, load_fit(args.out), args.seed, console)
    return EXIT_OK


def _check(w, fit: dict, seed: int, console) -> None:
    from trace.fidelity import compare, fidelity_metrics
    from trace.formats import load_trace
    from trace.synth import synthesize

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "synth.jsonl"
        synthesize(fit, out, requests=len(w), seed=seed)
        ws, _ = load_trace(out)
    console.print(f"{'metric':32} {'original':>12} {'synthetic':>12} {'difference':>11}  target")
    for k, v, s, diff, ok in compare(fidelity_metrics(w), fidelity_metrics(ws)):
        console.print(f"{k:32} {v:12.4g} {s:12.4g} {diff:>11}  {'ok' if ok else 'MISSED'}")


def cmd_synth(args: argparse.Namespace, console) -> int:
    from trace.fitmodel import load_fit
    from trace.synth import synthesize

    check_number(args.requests, "--requests", lo=1, integer=True)
    check_number(args.rate_scale, "--rate-scale", lo=0, lo_open=True)
    check_number(args.session_scale, "--session-scale", lo=1, integer=True)
    if args.duration is not None:
        check_number(args.duration, "--duration", lo=0, lo_open=True)
    check_output_path(args.out, "--out")
    if args.store_ids and not str(args.out).lower().endswith(".npz"):
        raise InputError("applies to .npz output only (JSONL always holds the ids)", where="--store-ids")
    fit = load_fit(args.fit)
    res = synthesize(fit, args.out, requests=args.requests, seed=args.seed, rate_scale=args.rate_scale,
                     session_scale=args.session_scale, duration_s=args.duration, store_ids=args.store_ids)
    console.print(f"wrote {res['requests']:,} requests ({res['sessions']:,} sessions, "
                  f"{res['duration_s']:,.1f} s) to {args.out}")
    return EXIT_OK
