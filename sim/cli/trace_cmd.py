"""`trace stats | validate | convert | fit | synth`: look at a trace before simulating it, fit it, scale it.

Not named trace.py: the repository's top-level `trace` package is what the commands import.
"""
from __future__ import annotations

import argparse
import json

from sim.cli.common import EXIT_CHECK_FAILED, EXIT_OK, add_trace_args, make_console, print_load_stats


def add_parser(sub) -> None:
    p = sub.add_parser("trace", help="look at a trace before simulating it: stats | validate | convert | fit | synth")
    tsub = p.add_subparsers(dest="trace_cmd", metavar="ACTION", required=True)
    for name, hlp in (("stats", "request count, token distributions, arrival rate, prefix reuse"),
                      ("validate", "like stats; exit code 1 if any row was rejected"),
                      ("convert", "write the loaded trace as mooncake JSONL or npz")):
        t = tsub.add_parser(name, help=hlp)
        add_trace_args(t, required=True)
        if name == "convert":
            t.add_argument("--out", required=True, help="output file")
            t.add_argument("--to", default="mooncake", choices=["mooncake", "npz"], help="output format")
        else:
            t.add_argument("--json", action="store_true", help="JSON output")
    t = tsub.add_parser("fit", help="learn sessions, prefix roots, lengths and arrivals of a trace into a YAML")
    add_trace_args(t, required=True)
    t.add_argument("--out", required=True, help="fit YAML to write")
    t.add_argument("--check", action="store_true",
                   help="also synthesize a trace of the same size and print the fidelity table")
    t.add_argument("--seed", type=int, default=0, help="seed of the --check synthesis")
    t = tsub.add_parser("synth", help="write a trace from a fit YAML at another scale (streamed)")
    t.add_argument("--fit", required=True, help="fit YAML written by `trace fit`")
    t.add_argument("--out", required=True, help="output trace (mooncake JSONL, .gz ok)")
    t.add_argument("--requests", type=int, required=True, help="requests to write (at most)")
    t.add_argument("--rate-scale", type=float, default=1.0, help="multiply the session start rate (default 1)")
    t.add_argument("--session-scale", type=int, default=1,
                   help="K independent copies of the shared roots and K x the sessions (default 1)")
    t.add_argument("--duration", type=float, default=None, help="stop at this many seconds")
    t.add_argument("--seed", type=int, default=0, help="RNG seed")
    p.set_defaults(func=cmd_trace)


def cmd_trace(args: argparse.Namespace) -> int:
    from trace.formats import load_trace
    from trace.stats import render_stats, workload_stats

    console = make_console()
    if args.trace_cmd in ("fit", "synth"):
        from sim.cli.trace_fit import cmd_fit, cmd_synth

        return cmd_fit(args, console) if args.trace_cmd == "fit" else cmd_synth(args, console)
    if args.trace_cmd == "convert":
        from sim.io_safe import check_output_path

        check_output_path(args.out, "--out")  # before reading a possibly large trace
    strict = args.strict or args.trace_cmd == "validate" and args.strict
    w, ls = load_trace(args.trace, args.trace_format or "auto", strict=strict, limit=args.limit)
    if args.trace_cmd == "convert":
        from trace.convert import write_workload

        write_workload(w, args.out, args.to)
        console.print(f"wrote {len(w):,} requests to {args.out} ({args.to})")
        print_load_stats(console, ls)
        return EXIT_OK
    st = workload_stats(w)
    if args.json:
        print(json.dumps({"stats": st, "load": ls.to_dict()}, indent=1, default=float))
    else:
        console.print(render_stats(st, ls))
    if args.trace_cmd == "validate" and ls.rejected_total:
        return EXIT_CHECK_FAILED
    return EXIT_OK
