#!/usr/bin/env python3
"""kvsim command line: parse, load config, call one library function, print/write.

Run `python main.py --help` for the subcommands. With no arguments it runs
the main job: the single-node policy comparison on the built-in synthetic
workload of config.yaml.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


# ---------------------------------------------------------------- helpers

def _split_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _parse_size(text: str) -> int:
    """'4K' -> 4096, '128k' -> 131072, '1000' -> 1000."""
    t = text.strip().upper()
    mult = 1
    if t.endswith("K"):
        mult, t = 1024, t[:-1]
    elif t.endswith("M"):
        mult, t = 1024 * 1024, t[:-1]
    try:
        v = int(float(t) * mult)
    except ValueError:
        raise ValueError(f"not a token count: {text!r}") from None
    if v <= 0:
        raise ValueError(f"must be positive: {text!r}")
    return v


def _console(quiet: bool = False):
    from rich.console import Console

    # Piped output keeps full tables instead of wrapping at 80 columns.
    return Console(quiet=quiet, width=None if sys.stdout.isatty() else 200)


def _progress_cb(enabled: bool):
    """A rich progress bar on a TTY (off with --quiet); returns (callback, context)."""
    import contextlib

    if not enabled or not sys.stderr.isatty():
        return None, contextlib.nullcontext()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    prog = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    )
    tasks: dict[str, int] = {}

    def cb(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = prog.add_task(label, total=total)
        prog.update(tasks[label], completed=done)

    return cb, prog


def _add_config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("--config", default=None, help="config YAML (default: config.yaml of the repository)")
    g.add_argument("--preset", default=None, help="named overlay from the config's presets: smoke|dev|prod-eval")
    g.add_argument("--profile", default=None, help="calibration overlay, e.g. profiles/h100_llama3_70b.yaml")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set hardware.hbm.capacity_gb=40 (repeatable)")
    g.add_argument("--seed", type=int, default=None, help="RNG seed (overrides config seed)")


def _add_trace_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("workload")
    g.add_argument("--trace", required=required, default=None, help="trace file (.jsonl/.csv/.npz, .gz ok)")
    g.add_argument("--trace-format", default=None,
                   help="auto|mooncake|azure|burstgpt|splitwise|bailian|npz (default: auto)")
    g.add_argument("--limit", type=int, default=None, help="replay only the first N requests")
    g.add_argument("--strict", action="store_true", help="any malformed trace row is an error")


def _load_cfg(args):
    from sim.config import load_config

    overrides = list(args.overrides)
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    if getattr(args, "trace", None):
        overrides.append(f"trace.path={json.dumps(args.trace)}")
    if getattr(args, "trace_format", None):
        overrides.append(f"trace.format={args.trace_format}")
    if getattr(args, "limit", None) is not None:
        overrides.append(f"trace.limit={args.limit}")
    if getattr(args, "strict", False):
        overrides.append("trace.strict=true")
    if getattr(args, "router", None) and len(_split_list(args.router)) == 1:
        overrides.append(f"cluster.router={args.router}")
    return load_config(args.config, args.preset, args.profile, overrides)


def _print_load_stats(console, ls) -> None:
    if ls is None:
        return
    if ls.rejected_total:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(ls.rejected.items()))
        console.print(f"[yellow]trace: {ls.loaded} requests loaded, {ls.rejected_total} rows rejected ({reasons})[/]")
    for note in ls.notes:
        console.print(f"[dim]trace: {note}[/]")


def _policy_table(report: dict):
    from rich.table import Table

    from sim.report import policy_rows

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    def ms(v):
        return "-" if v is None else f"{v:,.1f}"

    def gib(v):
        return "-" if v is None else f"{v / 1024**3:,.1f}"

    w = report["workload"]
    t = Table(title=f"{report['mode']} mode - {w['name']}: {w['requests']:,} requests, "
                    f"{w['block_tokens']}-token blocks (config {report['config_hash']})")
    for col, just in (("policy", "left"), ("hit rate", "right"), ("HBM", "right"), ("DRAM", "right"),
                      ("SSD", "right"), ("TTFT p50 ms", "right"), ("TTFT p99 ms", "right"),
                      ("TPOT ms", "right"), ("load ms", "right"), ("evictions", "right"),
                      ("moved GiB", "right"), ("SLO", "right"), ("req/s (wall)", "right")):
        t.add_column(col, justify=just)
    rates = {p["name"]: p["metrics"].get("requests_per_s") for p in report["policies"]}
    for r in policy_rows(report):
        rps = rates.get(r["policy"])
        t.add_row(
            r["policy"], pct(r["hit_rate"]), pct(r["hbm_hit_rate"]), pct(r["dram_hit_rate"]),
            pct(r["ssd_hit_rate"]), ms(r["ttft_p50_ms"]), ms(r["ttft_p99_ms"]), ms(r["tpot_mean_ms"]),
            ms(r["load_mean_ms"]), f"{r['evictions']:,}", gib(r["transfer_bytes"]), pct(r["slo_attainment"]),
            "-" if rps is None else f"{rps:,.0f}",
        )
    return t


# ---------------------------------------------------------------- commands

def cmd_run(args) -> int:
    from sim.report import write_csv, write_json
    from sim.runner import run_single_mode
    from trace.source import workload_from_config

    cfg = _load_cfg(args)
    console = _console(args.quiet)
    if args.mode != "single":
        print(f"error: --mode {args.mode} is not available yet (single only in this version)", file=sys.stderr)
        return EXIT_BAD_INPUT
    policies = _split_list(args.policy) or (list(cfg.policies.compare) if args.compare else [cfg.policies.eviction])
    workload, load_stats = workload_from_config(cfg)
    _print_load_stats(console, load_stats)
    if len(workload) == 0:
        print("error: the workload has no requests", file=sys.stderr)
        return EXIT_BAD_INPUT
    cb, prog = _progress_cb(not args.quiet)
    with prog:
        report = run_single_mode(cfg, workload, policies, timing=not args.hit_rate_only,
                                 load_stats=load_stats, progress=cb)
    console.print(_policy_table(report))
    out_dir = Path(cfg.experiments.out_dir)
    if args.report_json:
        write_json(report, args.report_json)
    if args.report_csv:
        write_csv(report, args.report_csv)
    if args.default_outputs:
        write_json(report, out_dir / "report.json")
        write_csv(report, out_dir / "report.csv")
        console.print(f"report: {out_dir / 'report.json'}, {out_dir / 'report.csv'}")
    if not args.no_plot:
        from sim.plots import plot_policy_comparison

        png = plot_policy_comparison(report, Path(args.plot or out_dir / "policies.png"))
        console.print(f"plot: {png}")
    return EXIT_OK


def cmd_default(args) -> int:
    """The main job: single-node policy comparison on the default workload."""
    ns = argparse.Namespace(
        mode="single", config=None, preset=None, profile=None, overrides=[], seed=None, trace=None,
        trace_format=None, limit=None, strict=False, policy=None, compare=True, hit_rate_only=False,
        report_json=None, report_csv=None, no_plot=False, plot=None, quiet=False, default_outputs=True,
        router=None,
    )
    return cmd_run(ns)


def cmd_calc(args) -> int:
    console = _console()
    if args.calc_cmd == "kv":
        from sim.kv_calc import kv_report, render_kv

        if args.list:
            from sim.hardware import GPU_PRESETS, MODEL_PRESETS

            console.print("models: " + ", ".join(sorted(MODEL_PRESETS)))
            console.print("gpus:   " + ", ".join(sorted(GPU_PRESETS)))
            return EXIT_OK
        try:
            contexts = [_parse_size(c) for c in _split_list(args.contexts)] if args.contexts else None
        except ValueError as e:
            print(f"error: --contexts: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        kw = {} if contexts is None else {"contexts": contexts}
        rep = kv_report(args.model, args.gpu, kv_dtype=args.dtype, weight_dtype=args.weight_dtype,
                        tp=args.tp, pp=args.pp, block_tokens=args.block_tokens, reserve_gb=args.reserve_gb, **kw)
        if args.json:
            print(json.dumps(rep, indent=1))
        else:
            tables = render_kv(rep)
            for t in tables if isinstance(tables, list) else [tables]:
                console.print(t)
        return EXIT_OK
    print(f"error: calc {args.calc_cmd} is not available yet", file=sys.stderr)
    return EXIT_BAD_INPUT


def cmd_trace(args) -> int:
    from trace.loaders import load_trace
    from trace.stats import render_stats, workload_stats

    console = _console()
    strict = args.strict or args.trace_cmd == "validate" and args.strict
    w, ls = load_trace(args.trace, args.trace_format or "auto", strict=strict, limit=args.limit)
    if args.trace_cmd == "convert":
        from trace.convert import write_workload

        write_workload(w, args.out, args.to)
        console.print(f"wrote {len(w):,} requests to {args.out} ({args.to})")
        _print_load_stats(console, ls)
        return EXIT_OK
    st = workload_stats(w)
    if args.json:
        print(json.dumps({"stats": st, "load": ls.to_dict()}, indent=1, default=float))
    else:
        console.print(render_stats(st, ls))
    if args.trace_cmd == "validate" and ls.rejected_total:
        return EXIT_CHECK_FAILED
    return EXIT_OK


PLANNED = {
    "sweep": ("grid of config overrides, local or on Ray", 9),
    "oracle": ("offline hit-rate bounds of a trace", 7),
    "plan": ("cards and machines needed for a target throughput", 7),
    "estimate": ("heuristic hit-rate estimate without a trace", 7),
    "calibrate": ("fit the heuristic estimator to oracle results", 7),
    "audit": ("recheck the oracle bounds with a naive implementation", 7),
    "serve": ("web UI for the calculators and results", 8),
    "plot": ("PNG plots of a sweep's results", 9),
    "learned": ("train the LightGBM eviction policy", 10),
    "experiment": ("standard studies (pd-ratio, ...)", 6),
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python main.py",
        description="kvsim: discrete-event simulator of the KV cache of LLM inference. "
                    "With no subcommand: the single-node policy comparison on the default workload.",
    )
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    p = sub.add_parser("run", help="one simulation (policy comparison with several --policy names)")
    p.add_argument("--mode", choices=["single", "cluster", "pd"], default="single", help="what to simulate")
    _add_config_args(p)
    _add_trace_args(p)
    p.add_argument("--policy", default=None,
                   help="eviction policy, or several comma-separated to compare (default: policies.eviction)")
    p.add_argument("--compare", action="store_true", help="compare every policy in policies.compare")
    p.add_argument("--router", default=None, help="worker/GPU router (default: cluster.router)")
    p.add_argument("--hit-rate-only", action="store_true", help="skip timing (fast replay: hit rates only)")
    p.add_argument("--report-json", default=None, help="write the report as JSON here")
    p.add_argument("--report-csv", default=None, help="write one CSV row per policy here")
    p.add_argument("--plot", default=None, help="PNG path (default: <experiments.out_dir>/policies.png)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    p.set_defaults(func=cmd_run, default_outputs=False)

    p = sub.add_parser("calc", help="closed-form calculators (kv memory, hit rate, reuse break-even)")
    csub = p.add_subparsers(dest="calc_cmd", metavar="CALC", required=True)
    k = csub.add_parser("kv", help="KV bytes per token/block/request, memory budget, max concurrency")
    k.add_argument("--model", default="llama-3-70b", help="model preset or path to a HuggingFace config.json")
    k.add_argument("--gpu", default="h100-sxm", help="GPU preset")
    k.add_argument("--dtype", default="fp16", choices=["fp32", "fp16", "bf16", "fp8", "int4"], help="KV dtype")
    k.add_argument("--weight-dtype", default="fp16", choices=["fp32", "fp16", "bf16", "fp8", "int4"])
    k.add_argument("--tp", type=int, default=1, help="tensor-parallel degree")
    k.add_argument("--pp", type=int, default=1, help="pipeline-parallel degree")
    k.add_argument("--contexts", default=None, help="context lengths, e.g. 1K,8K,32K,128K (default 1K..128K)")
    k.add_argument("--block-tokens", type=int, default=16, help="tokens per KV block (paged allocation)")
    k.add_argument("--reserve-gb", type=float, default=4.0, help="GiB per GPU kept for activations")
    k.add_argument("--json", action="store_true", help="JSON instead of tables")
    k.add_argument("--list", action="store_true", help="list model and GPU presets")
    p.set_defaults(func=cmd_calc)

    p = sub.add_parser("trace", help="look at a trace before simulating it: stats | validate | convert")
    tsub = p.add_subparsers(dest="trace_cmd", metavar="ACTION", required=True)
    for name, hlp in (("stats", "request count, token distributions, arrival rate, prefix reuse"),
                      ("validate", "like stats; exit code 1 if any row was rejected"),
                      ("convert", "write the loaded trace as mooncake JSONL or npz")):
        t = tsub.add_parser(name, help=hlp)
        _add_trace_args(t, required=True)
        if name == "convert":
            t.add_argument("--out", required=True, help="output file")
            t.add_argument("--to", default="mooncake", choices=["mooncake", "npz"], help="output format")
        else:
            t.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_trace)

    for name, (hlp, issue) in PLANNED.items():
        sp = sub.add_parser(name, help=f"{hlp} [not available yet]", add_help=True)
        sp.add_argument("rest", nargs=argparse.REMAINDER)
        sp.set_defaults(func=lambda a, _n=name, _i=issue: _planned(_n, _i))
    return ap


def _planned(name: str, issue: int) -> int:
    print(f"error: `{name}` is not available in this version yet (tracked as issue {issue})", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    from sim.errors import InputError

    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        if args.cmd is None:
            return cmd_default(args)
        return args.func(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
