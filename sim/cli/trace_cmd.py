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
            t.add_argument("--to", default=None, choices=["mooncake", "npz"],
                           help="output format (default: npz for a .npz name, else mooncake)")
            _add_from_args(t)
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
    t.add_argument("--out", required=True,
                   help="output trace: .npz = parent form, memory-mapped when loaded; else mooncake JSONL (.gz ok)")
    t.add_argument("--store-ids", action="store_true",
                   help=".npz only: store the block ids as the JSONL would have them (default: dense ids, none stored)")
    t.add_argument("--requests", type=int, required=True, help="requests to write (at most)")
    t.add_argument("--rate-scale", type=float, default=1.0, help="multiply the session start rate (default 1)")
    t.add_argument("--session-scale", type=int, default=1,
                   help="K independent copies of the shared roots and K x the sessions (default 1)")
    t.add_argument("--duration", type=float, default=None, help="stop at this many seconds")
    t.add_argument("--seed", type=int, default=0, help="RNG seed")
    p.set_defaults(func=cmd_trace)


# The flags of `trace convert --from` (dataset converters); refused without --from.
_FROM_FLAGS = (("tokenizer", "--tokenizer"), ("block_tokens", "--block-tokens"), ("session_rate", "--session-rate"),
               ("think_time_s", "--think-time-s"), ("reply_tokens_s", "--reply-tokens-s"), ("seed", "--seed"))


def _add_from_args(t: argparse.ArgumentParser) -> None:
    g = t.add_argument_group("dataset conversion (--from)")
    g.add_argument("--from", dest="from_format", default=None, metavar="FORMAT",
                   help="convert a dataset instead of a trace: sharegpt | openai | lmsys | wildchat | vllm-bench "
                        "(metadata in OUT.meta.json)")
    g.add_argument("--tokenizer", default=None, help="a HuggingFace tokenizer.json (default: ~4 bytes per token)")
    g.add_argument("--block-tokens", type=int, default=None, help="tokens per hashed block (default 16)")
    g.add_argument("--session-rate", type=float, default=None,
                   help="sessions/s of a Poisson process (default: dataset times, else 1.0)")
    g.add_argument("--think-time-s", type=float, default=None, help="mean think time between turns (default 30)")
    g.add_argument("--reply-tokens-s", type=float, default=None,
                   help="assumed decode speed placing the end of a reply (default 50 tokens/s)")
    g.add_argument("--seed", type=int, default=None, help="seed of the arrival process (default 0)")


def _convert_from(args: argparse.Namespace, console) -> int:
    from pathlib import Path

    from sim.errors import InputError, check_number
    from sim.io_safe import check_output_path
    from trace.converters import ConvertOptions, convert, get
    from trace.converters.output import meta_notes

    get(args.from_format)  # an unknown name fails before anything is read
    if args.trace_format:
        raise InputError("does not apply to a dataset conversion (--from names the input format)",
                         where="--trace-format")
    if args.to not in (None, "mooncake"):
        raise InputError("a dataset conversion writes mooncake JSONL (convert that to npz afterwards)", where="--to")
    bt = 16 if args.block_tokens is None else int(check_number(args.block_tokens, "--block-tokens", lo=1,
                                                                     hi=1 << 20, integer=True))
    for key, flag in (("session_rate", "--session-rate"), ("reply_tokens_s", "--reply-tokens-s")):
        if getattr(args, key) is not None:
            check_number(getattr(args, key), flag, lo=0, lo_open=True)
    if args.think_time_s is not None:
        check_number(args.think_time_s, "--think-time-s", lo=0)
    if args.limit is not None:
        check_number(args.limit, "--limit", lo=1, integer=True)
    out = check_output_path(args.out, "--out")
    from trace.formats import local_path
    from trace.remote import is_url

    opts = ConvertOptions(
        src=Path(local_path(args.trace)), out=out, url=args.trace if is_url(args.trace) else None,
        tokenizer=Path(args.tokenizer) if args.tokenizer else None,
        block_tokens=bt, session_rate=args.session_rate, think_time_s=args.think_time_s,
        reply_tokens_s=args.reply_tokens_s, seed=args.seed or 0, strict=args.strict, limit=args.limit,
    )
    res = convert(args.from_format, opts)
    console.print(f"wrote {res.requests:,} requests to {res.out} (mooncake JSONL; metadata in {res.meta_path})")
    for note in meta_notes(res.meta):
        console.print(f"[dim]convert: {note}[/]")
    return EXIT_OK


def cmd_trace(args: argparse.Namespace) -> int:
    from trace.formats import load_trace
    from trace.stats import render_stats, workload_stats

    console = make_console()
    if args.trace_cmd in ("fit", "synth"):
        from sim.cli.trace_fit import cmd_fit, cmd_synth

        return cmd_fit(args, console) if args.trace_cmd == "fit" else cmd_synth(args, console)
    if args.trace_cmd == "convert":
        from sim.errors import InputError
        from sim.io_safe import check_output_path

        if args.from_format is not None:
            return _convert_from(args, console)
        for key, flag in _FROM_FLAGS:
            if getattr(args, key) is not None:
                raise InputError("applies to dataset conversions only (add --from FORMAT)", where=flag)
        check_output_path(args.out, "--out")  # before reading a possibly large trace
    strict = args.strict or args.trace_cmd == "validate" and args.strict
    w, ls = load_trace(args.trace, args.trace_format or "auto", strict=strict, limit=args.limit)
    if args.trace_cmd == "convert":
        from trace.convert import write_workload

        to = args.to or ("npz" if str(args.out).lower().endswith(".npz") else "mooncake")
        write_workload(w, args.out, to)
        console.print(f"wrote {len(w):,} requests to {args.out} ({to})")
        print_load_stats(console, ls)
        return EXIT_OK
    from trace.converters.output import meta_notes, read_meta

    st = workload_stats(w)
    conv = read_meta(args.trace)
    if conv is not None:
        ls.notes.extend(meta_notes(conv))
    if args.json:
        out = {"stats": st, "load": ls.to_dict()}
        if conv is not None:
            out["conversion"] = conv
        print(json.dumps(out, indent=1, default=float))
    else:
        console.print(render_stats(st, ls))
    if args.trace_cmd == "validate" and ls.rejected_total:
        return EXIT_CHECK_FAILED
    return EXIT_OK

