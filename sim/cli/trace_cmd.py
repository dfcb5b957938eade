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
            from trace.converters import CONVERTERS

            t.add_argument("--out", required=True, help="output file")
            t.add_argument("--to", default="mooncake", choices=["mooncake", "npz"], help="output format")
            t.add_argument("--from", dest="from_fmt", default=None, choices=sorted(CONVERTERS), metavar="FORMAT",
                           help="convert a file that is not a trace: "
                                + "; ".join(f"{c.name}: {c.help}" for c in CONVERTERS.values())
                                + " (metadata in OUT.meta.json)")
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
    if args.trace_cmd == "convert" and args.from_fmt:
        return _convert_from(args, console)
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


def _convert_from(args: argparse.Namespace, console) -> int:
    """`trace convert --from FORMAT`: the converter's trace and its OUT.meta.json, written as one set."""
    import functools
    from pathlib import Path

    from sim.errors import InputError
    from sim.io_safe import OutputSet
    from trace.convert import write_workload
    from trace.converters import CONVERTERS, meta_path
    from trace.formats import local_path
    from trace.remote import is_url
    from trace.rowio import check_file

    if args.trace_format:
        raise InputError("--trace-format names a trace format; with --from the converter reads the file",
                         where="--trace-format")
    src = check_file(local_path(args.trace))
    w, ls, meta = CONVERTERS[args.from_fmt].convert(src, strict=args.strict, limit=args.limit)
    if is_url(args.trace):
        meta["url"] = args.trace
    out = Path(args.out)
    fmt = "npz" if args.to == "npz" else "mooncake"
    meta.update(trace=out.name, trace_format=fmt, notes=list(ls.notes))
    with OutputSet() as outs:
        # the trace goes last: until the set commits, neither file is in place
        outs.write(meta_path(out), "--out", lambda t: t.write_text(json.dumps(meta, indent=1, default=str) + "\n"))
        outs.write(out, "--out", functools.partial(write_workload, w, fmt=fmt))
        outs.commit()
    console.print(f"wrote {len(w):,} requests to {args.out} ({fmt}, from {args.from_fmt}); metadata in "
                  f"{meta_path(out)}", highlight=False, soft_wrap=True)
    print_load_stats(console, ls)
    return EXIT_OK
