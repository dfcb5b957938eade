"""`learned train`: train the LightGBM reuse model of the learned eviction policy and save it."""
from __future__ import annotations

import argparse
import json

from sim.cli.common import EXIT_OK, add_config_args, add_trace_args, load_cfg, make_console


def add_parser(sub) -> None:
    p = sub.add_parser("learned", help="the LightGBM eviction policy: train a model file")
    lsub = p.add_subparsers(dest="learned_cmd", metavar="ACTION", required=True)
    t = lsub.add_parser("train", help="train the reuse model on a trace (or the synthetic workload) and save it")
    add_config_args(t)
    add_trace_args(t)
    t.add_argument("--out", required=True, help="model file to write (LightGBM text format)")
    t.add_argument("--rounds", type=int, default=None, help="boosting rounds (default 30)")
    t.add_argument("--horizon", type=int, default=None,
                   help="label horizon in block accesses (default: 1.5 x the 90th percentile reuse distance)")
    t.add_argument("--max-rows", type=int, default=300_000,
                   help="train on at most this many of the latest labelled accesses (default 300000)")
    t.add_argument("--json", action="store_true", help="print the training summary as JSON")
    t.set_defaults(func=cmd_learned)


def cmd_learned(args: argparse.Namespace) -> int:
    """`learned train`: label a trace's accesses, train the LightGBM reuse model, save it."""
    from learned.train import TrainParams, train_from_config
    from sim.errors import InputError

    for flag, v in (("--rounds", args.rounds), ("--horizon", args.horizon), ("--max-rows", args.max_rows)):
        if v is not None and not 1 <= v <= 10_000_000:
            raise InputError(f"must be in 1..10000000, got {v}", where=flag)
    from sim.io_safe import output_file

    output_file(args.out, "--out")
    cfg = load_cfg(args)
    params = TrainParams(seed=cfg.seed, horizon=args.horizon)
    if args.rounds is not None:
        params.rounds = args.rounds
    if args.max_rows is not None:
        params.max_rows = args.max_rows
    summary = train_from_config(cfg, args.out, params)
    if args.json:
        print(json.dumps(summary, indent=1, default=float))
        return EXIT_OK
    console = make_console()
    rejected = summary.get("load", {}).get("rejected_total", 0)
    if rejected:
        console.print(f"[yellow]trace: {rejected} rows rejected ({summary['load']['rejected']})[/]")
    auc = summary.get("validation_auc")
    console.print(
        f"trained on {summary['workload']}: {summary['requests']:,} requests, {summary['accesses']:,} block accesses "
        f"of {summary['block_tokens']} tokens\n"
        f"label: reused within {summary['horizon']:,} block accesses; {summary['rows']:,} rows, "
        f"{100 * summary['positive_rate']:.1f}% reused\n"
        f"time-split validation AUC (last 20% of requests, model trained on the first 80%): "
        f"{'-' if auc is None else f'{auc:.3f}'}\n"
        f"training {summary['train_s']:.2f} s (total with features and validation {summary['total_s']:.2f} s)\n"
        f"model: {summary['out']}  ->  python main.py run --policy learned --model {summary['out']} --trace ..."
    )
    return EXIT_OK
