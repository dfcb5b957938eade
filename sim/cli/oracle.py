"""`oracle`, `plan`, `estimate`, `calibrate estimator`, `audit`: offline hit-rate bounds and what they imply."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    add_config_args,
    add_trace_args,
    add_wide_arg,
    load_cfg,
    load_stats_obj,
    make_console,
    print_load_stats,
    progress_cb,
)
from sim.cli.tables import calibrate_table, estimate_table, oracle_table, plan_table


def _deployment_args(sp: argparse.ArgumentParser, budget: bool = True) -> None:
    g = sp.add_argument_group("deployment (defaults: config model/hardware sections)")
    g.add_argument("--model", default=None, help="model preset or HuggingFace config.json")
    g.add_argument("--gpu", default=None, help="GPU preset (with --cards)")
    if budget:
        g.add_argument("--cards", default=None,
                       help="GPU cards of the pool (or one value per bucket; `all` gets their sum)")
        g.add_argument("--kv-budget-gb", default=None,
                       help="KV pool size in GiB instead of cards (or one value per bucket)")
    g.add_argument("--tp", type=int, default=None, help="tensor-parallel degree")
    g.add_argument("--pp", type=int, default=None, help="pipeline-parallel degree")
    g.add_argument("--kv-dtype", default=None, help="KV element type (fp16, fp8, ...)")
    g.add_argument("--weight-dtype", default=None, help="weight element type")
    g.add_argument("--reserve-gb", type=float, default=None, help="GiB per card kept for activations")
    g.add_argument("--gpus-per-node", type=int, default=None, help="cards per machine")
    g.add_argument("--machines", type=int, default=None, help="machines for per-machine tiers (default: cards/node)")
    g.add_argument("--tiers", default=None,
                   help="extra per-machine tiers added to HBM, e.g. 1T,10T (default; '' = none)")


def _oracle_common(sp: argparse.ArgumentParser, budget: bool = True) -> None:
    add_config_args(sp)
    add_trace_args(sp)
    _deployment_args(sp, budget)
    sp.add_argument("--buckets", default=None,
                    help="prompt-length bucket edges, e.g. 32K,64K,128K (default) or 'none'")
    sp.add_argument("--scope", choices=["global", "session"], default=None,
                    help="prefix namespace: global (shared, default) or session (reuse within a session only)")
    sp.add_argument("--from-json", default=None,
                    help="openanolis bucket-analysis config (model_profile, bucket_deployments): sets the "
                         "deployment, buckets, tiers, scope and planning anchors")
    sp.add_argument("--method", choices=["exact", "belady"], default="exact",
                    help="exact: min-cost-flow optimum with certificate; belady: fast block-optimal bound")
    sp.add_argument("--block-tokens", type=int, default=None, help="re-block the trace to this page size")
    sp.add_argument("--output-dir", default="results/oracle", help="where the files go")
    sp.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    add_wide_arg(sp)


def add_parser(sub) -> None:
    p = sub.add_parser("oracle", help="offline hit-rate bounds of a trace (content, relaxed, strict-prefix, LRU)")
    _oracle_common(p)
    p.add_argument("--tolerance", type=float, default=0.005,
                   help="hit-rate gap under which two bounds meet (bottleneck 'none')")
    p.set_defaults(func=cmd_oracle)

    p = sub.add_parser("plan", help="cards and machines needed for a target throughput")
    _oracle_common(p, budget=False)
    p.add_argument("--target-tps", type=float, default=None,
                   help="target total tokens/s (required without --from-json)")
    p.add_argument("--baseline-per-card-tps", type=float, default=None, help="tokens/s per card without cache hits")
    p.add_argument("--alpha", type=float, default=None,
                   help="prefill_savings_alpha: share of cost saved per hit token (default 0.8)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("estimate", help="heuristic hit-rate estimate without a trace")
    add_config_args(p)
    _deployment_args(p)
    p.add_argument("--from-json", default=None,
                   help="recommended_heuristic_config.json from calibrate, or an openanolis multi-agent config")
    p.add_argument("--bucket", default=None, help="with --from-json: use this bucket's parameters")
    p.add_argument("--sessions", type=float, default=None, help="concurrent agents/sessions")
    p.add_argument("--shared-prefix-tokens", type=float, default=None, help="prefix shared by all requests, tokens")
    p.add_argument("--new-tokens-per-turn", type=float, default=None, help="average new tokens per turn")
    p.add_argument("--turns", type=float, default=None, help="turns per session")
    p.add_argument("--private-window-tokens", type=float, default=None, help="cap on private history (0 = none)")
    p.add_argument("--curve", default=None, help="linear | power_law_fit | zipf_harmonic")
    p.add_argument("--power-beta", type=float, default=None, help="power_law_fit exponent")
    p.add_argument("--zipf-s", type=float, default=None, help="zipf_harmonic exponent")
    p.add_argument("--population", type=float, default=None, help="zipf_harmonic session population")
    p.add_argument("--policy-efficiency", default=None, help="number in [0,1] or lru_like (0.6)")
    p.add_argument("--block-tokens", type=int, default=None, help="tokens per KV block (default 16)")
    p.add_argument("--target-tps", type=float, default=None, help="target total tokens/s (adds planning)")
    p.add_argument("--baseline-per-card-tps", type=float, default=None, help="tokens/s per card without hits")
    p.add_argument("--alpha", type=float, default=None, help="prefill_savings_alpha (default 0.8)")
    p.add_argument("--output-dir", default=None, help="also write estimate.json (+ planning CSV) here")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("audit", help="recheck every oracle bound with naive reference implementations")
    add_config_args(p)
    add_trace_args(p)
    p.add_argument("--buckets", default=None, help="bucket edges as for oracle")
    p.add_argument("--scope", choices=["global", "session"], default="global", help="prefix namespace")
    p.add_argument("--sample", type=int, default=120, help="requests sampled per pool")
    p.add_argument("--small", type=int, default=10, help="small exhaustive instances per pool")
    p.add_argument("--capacities", default=None, help="capacities in blocks (default: 3 from the sample)")
    p.add_argument("--block-tokens", type=int, default=None, help="re-block the trace to this page size")
    p.add_argument("--output-dir", default="results/audit", help="where audit_report.json/.md go")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_audit)


def add_calibrate_parser(sub) -> None:
    """`calibrate estimator` (also what a bare `calibrate --trace ...` means: sim.cli.calibrate)."""
    p = sub.add_parser("estimator", help="fit the heuristic hit-rate estimator to the oracle on a trace (default)")
    _oracle_common(p)
    p.add_argument("--points", type=int, default=6, help="capacities per pool on the oracle curve")
    p.set_defaults(func=cmd_calibrate)


def _with_progress(args: argparse.Namespace, command: Callable[..., Any]) -> tuple[Any, Any]:
    """The config from the flags, then `command(cfg, args, progress=...)` under a progress line: (console, result)."""
    cfg = load_cfg(args)
    console = make_console(args.quiet, getattr(args, "wide", False))
    cb, prog = progress_cb(not args.quiet)
    with prog:
        return console, command(cfg, args, progress=cb)


def cmd_oracle(args: argparse.Namespace) -> int:
    from sim.oracle.commands import oracle_command

    console, res = _with_progress(args, oracle_command)
    print_load_stats(console, load_stats_obj(res["report"].get("load_stats")))
    console.print(oracle_table(res["report"], args.wide))
    console.print(f"wrote {', '.join(Path(p).name for p in res['paths'].values())} to {args.output_dir}")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from sim.oracle.commands import plan_command

    console, res = _with_progress(args, plan_command)
    title = (f"cards for {args.target_tps:,.0f} TPS (alpha {args.alpha}, baseline "
             f"{args.baseline_per_card_tps:,.0f} TPS/card)") if args.target_tps is not None else \
        f"cards for each bucket's target TPS (alpha {args.alpha}, from {Path(args.from_json).name})"
    console.print(plan_table(title, res["rows"]["strict_prefix"] + res["rows"]["lru"]))
    console.print(f"wrote {', '.join(res['paths'].values())}")
    return EXIT_OK


def cmd_estimate(args: argparse.Namespace) -> int:
    from sim.oracle.commands import estimate_command

    cfg = load_cfg(args)
    res = estimate_command(cfg, args)
    if args.json:
        print(json.dumps(res, indent=1))
        return EXIT_OK
    console = make_console()
    d = res["derived"]
    console.print(f"workload: mean input {d['input_tokens_mean']:,.0f} tokens, content hit rate "
                  f"{100 * d['content_hit_rate']:.1f}%, working set {d['working_set_tokens']:,.0f} tokens "
                  f"(curve {res['params']['curve']})")
    console.print(estimate_table(res["tiers"]))
    if res["planning"]:
        console.print(plan_table("planning (estimated)", res["planning"]))
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from sim.oracle.commands import calibrate_command

    console, res = _with_progress(args, calibrate_command)
    console.print(calibrate_table(res["residual_rows"]))
    console.print(f"wrote {', '.join(res['paths'].values())}")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from sim.oracle.commands import audit_command

    console, rep = _with_progress(args, audit_command)
    console.print(f"audit: {rep['checks']} checks, {rep['failed_checks']} failed "
                  f"({rep['wall_s']:.1f} s); report {rep['paths']['markdown']}")
    for d in rep["disagreements"][:20]:
        print(f"disagreement: {d}", file=sys.stderr)
    return EXIT_OK if rep["ok"] else EXIT_CHECK_FAILED
