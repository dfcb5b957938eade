"""`sweep` (a grid of config overrides), `plot` (its PNGs) and `experiment` (standard studies: pd-ratio)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sim.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    add_config_args,
    add_trace_args,
    add_wide_arg,
    load_cfg,
    make_console,
    print_load_stats,
    progress_cb,
)
from sim.cli.tables import pd_ratio_table


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a sweep spec: a grid of config overrides, local processes or Ray")
    p.add_argument("spec", help="sweep spec YAML, e.g. experiments/specs/policies.yaml")
    p.add_argument("--preset", default=None,
                   help="the spec's preset overlay (smoke: few points, small workloads), else the config's preset")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (local) or CPUs of the local Ray instance (default: experiments.workers, "
                        "0 = all cores)")
    p.add_argument("--backend", choices=["local", "ray"], default="local", help="where points run")
    p.add_argument("--address", default=None,
                   help="ray: cluster to join (auto or HOST:PORT); default: start a local Ray instance")
    p.add_argument("--ship-traces", action="store_true",
                   help="ray: put the trace files into Ray's object store (for nodes that do not see the "
                        "driver's paths); default: workers read them at the same path")
    p.add_argument("--out", default=None, help="sweep directory (default: results/<name>[-<preset>])")
    p.add_argument("--resume", action="store_true", help="continue a sweep: skip the points already done")
    p.add_argument("--overwrite", action="store_true", help="start over in a directory that holds a sweep")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNGs at the end")
    p.add_argument("--quiet", action="store_true", help="no progress, no table")
    add_wide_arg(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("plot", help="PNG plots of a sweep directory (results/<sweep>)")
    p.add_argument("dir", help="sweep directory holding points.csv and sweep.json")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("experiment", help="standard studies: pd-ratio (P:D 1:1..1:7 vs colocated)")
    esub = p.add_subparsers(dest="experiment", metavar="STUDY", required=True)
    e = esub.add_parser("pd-ratio", help="goodput and SLO attainment of PD per P:D ratio, colocated as baseline")
    add_config_args(e)
    add_trace_args(e)
    e.add_argument("--ratios", default=None, help="P:D ratios per rack, e.g. 1:1,1:3,2:5 (default 1:1..1:7)")
    e.add_argument("--policy", default=None, help="eviction order of the radix trees (default: policies.eviction)")
    e.add_argument("--workers", type=int, default=None,
                   help="processes running the ratios (default: experiments.workers, 0 there = every core)")
    e.add_argument("--no-baseline", action="store_true", help="skip the colocated run")
    e.add_argument("--out", default=None, help="output directory (default: <experiments.out_dir>/pd_ratio)")
    e.add_argument("--no-plot", action="store_true", help="do not write pd_ratio.png")
    e.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    e.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    add_wide_arg(e)
    e.set_defaults(func=cmd_experiment)


def cmd_sweep(args: argparse.Namespace) -> int:
    """`sweep SPEC.yaml`: run every point of a spec (local pool or Ray), then plot it."""
    from experiments.console import sweep_progress, sweep_summary
    from experiments.engine import run_sweep
    from experiments.spec import load_spec

    sweep = load_spec(args.spec, args.preset)
    cb, prog = sweep_progress(sweep, args.quiet)
    with prog:
        out = run_sweep(sweep, out_dir=args.out, workers=args.workers, backend=args.backend, address=args.address,
                        resume=args.resume, overwrite=args.overwrite, progress=cb,
                        ship_traces=args.ship_traces)
    console = make_console(args.quiet, args.wide)
    for item in sweep_summary(sweep, out, args.wide):
        console.print(item)
    if not args.no_plot and out.failed < out.total:
        from experiments.plots import plot_sweep

        paths, notes = plot_sweep(out.out_dir)
        for n in notes:
            console.print(f"[yellow]plot skipped: {n}[/]")
        console.print("plots: " + ", ".join(str(p) for p in paths))
    if out.failed:
        print(f"error: {out.failed} of {out.total} points failed (errors in {out.paths['csv']})", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    """`plot DIR`: PNGs of a sweep directory (points.csv + sweep.json)."""
    from experiments.plots import plot_sweep

    paths, notes = plot_sweep(args.dir)
    for n in notes:
        print(f"plot skipped: {n}", file=sys.stderr)
    for p in paths:
        print(p)
    return EXIT_OK


def cmd_experiment(args: argparse.Namespace) -> int:
    """`experiment pd-ratio`: PD at P:D 1:1..1:7 (or --ratios) + colocated on the same GPUs."""
    from experiments.pd_ratio import parse_ratios, run_pd_ratio, write_pd_ratio
    from sim.io_safe import output_dir
    from trace.source import workload_from_config

    cfg = load_cfg(args)
    console = make_console(args.quiet or args.json, args.wide)
    ratios = parse_ratios(args.ratios)
    if args.workers is not None and args.workers < 1:
        from sim.errors import InputError

        raise InputError(f"must be >= 1, got {args.workers}", where="--workers")
    out_dir = output_dir(Path(args.out or Path(cfg.experiments.out_dir) / "pd_ratio"),
                            "--out" if args.out else "experiments.out_dir")
    workload, load_stats = workload_from_config(cfg)
    print_load_stats(console, load_stats)
    cb, prog = progress_cb(not (args.quiet or args.json))
    with prog:
        res = run_pd_ratio(cfg, workload, ratios=ratios, policy=args.policy, baseline=not args.no_baseline,
                           workers=args.workers or 0, progress=cb)
    paths = write_pd_ratio(res, out_dir, plot=not args.no_plot)
    if args.json:
        print(json.dumps(res, indent=1, default=float))
        return EXIT_OK
    console.print(pd_ratio_table(res, args.wide))
    rej = res.get("rejected") or {}
    if rej.get("count"):
        console.print(f"[yellow]warning: {rej['count']:,} requests rejected ({rej['reason']}); "
                      f"counted as SLO misses[/]")
    wrote = ", ".join(str(p) for p in paths.values())
    console.print(f"best goodput: P:D {res['best_ratio']} (marked *); wrote {wrote}")
    return EXIT_OK
