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
    if getattr(args, "model", None):
        overrides.append(f"policies.learned_model={json.dumps(args.model)}")
    if getattr(args, "router", None) and len(_split_list(args.router)) == 1:
        key = "pd.router" if getattr(args, "mode", None) == "pd" else "cluster.router"  # pd: the prefill router
        overrides.append(f"{key}={args.router}")
    return load_config(args.config, args.preset, args.profile, overrides)


def _print_load_stats(console, ls) -> None:
    if ls is None:
        return
    if ls.rejected_total:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(ls.rejected.items()))
        console.print(f"[yellow]trace: {ls.loaded} requests loaded, {ls.rejected_total} rows rejected ({reasons})[/]")
    for note in ls.notes:
        console.print(f"[dim]trace: {note}[/]")


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _ms(v) -> str:
    return "-" if v is None else f"{v:,.1f}"


def _gib(v) -> str:
    return "-" if v is None else f"{v / 1024**3:,.1f}"


def _x(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _policy_table(report: dict):
    from rich.table import Table

    from sim.report.rows import policy_rows

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
            r["policy"], _pct(r["hit_rate"]), _pct(r["hbm_hit_rate"]), _pct(r["dram_hit_rate"]),
            _pct(r["ssd_hit_rate"]), _ms(r["ttft_p50_ms"]), _ms(r["ttft_p99_ms"]), _ms(r["tpot_mean_ms"]),
            _ms(r["load_mean_ms"]), f"{r['evictions']:,}", _gib(r["transfer_bytes"]), _pct(r["slo_attainment"]),
            "-" if rps is None else f"{rps:,.0f}",
        )
    return t


def _router_table(report: dict):
    """Cluster mode: one row per router (hit rate by location, TTFT, skew, speed)."""
    from rich.table import Table

    from sim.report.rows import router_rows

    w, topo = report["workload"], report.get("topology", {})
    t = Table(title=f"cluster mode - {w['name']}: {w['requests']:,} requests on {topo.get('gpus', 0):,} GPUs "
                    f"({topo.get('racks')} racks), {w['block_tokens']}-token blocks (config {report['config_hash']})")
    cols = ("router", "hit rate", "HBM", "peer HBM", "DRAM", "EIC", "remote EIC", "SSD", "TTFT p50 ms",
            "TTFT p99 ms", "net % TTFT", "GPU skew req/load", "rack skew req/load", "req/s (wall)")
    for col in cols:
        t.add_column(col, justify="left" if col == "router" else "right")
    for r in router_rows(report):
        t.add_row(
            r["router"], _pct(r["hit_rate"]), _pct(r["hbm_hit_rate"]), _pct(r["peer_hbm_hit_rate"]),
            _pct(r["dram_hit_rate"]), _pct(r["local_eic_hit_rate"]), _pct(r["remote_eic_hit_rate"]),
            _pct(r["ssd_hit_rate"]), _ms(r["ttft_p50_ms"]), _ms(r["ttft_p99_ms"]), _pct(r["net_share"]),
            f"{_x(r['worker_req_skew'])} / {_x(r['worker_load_skew'])}",
            f"{_x(r['rack_req_skew'])} / {_x(r['rack_load_skew'])}",
            "-" if r["requests_per_s"] is None else f"{r['requests_per_s']:,.0f}",
        )
    return t


# ---------------------------------------------------------------- commands

def cmd_run(args) -> int:
    from sim.report.rows import write_csv
    from sim.report.schema import write_json
    from sim.modes.runner import run_mode
    from trace.source import workload_from_config

    cfg = _load_cfg(args)
    console = _console(args.quiet)
    policies = _split_list(args.policy) or (list(cfg.policies.compare) if args.compare else [cfg.policies.eviction])
    if getattr(args, "model", None) and "learned" not in policies:
        from sim.errors import InputError

        raise InputError("the model file is used only by the `learned` policy; add --policy learned", where="--model")
    workload, load_stats = workload_from_config(cfg)
    _print_load_stats(console, load_stats)
    cb, prog = _progress_cb(not args.quiet)
    with prog:
        report = run_mode(cfg, args.mode, workload=workload, load_stats=load_stats, policies=policies,
                          routers=_split_list(getattr(args, "router", None)) or None,
                          timing=not args.hit_rate_only, progress=cb)
    if report["mode"] == "pd":
        return _pd_outputs(args, cfg, console, report)
    if report.get("routers"):
        console.print(_router_table(report))
    if not report.get("routers") or len(report.get("policies", [])) > 1:
        console.print(_policy_table(report))
    for p in report.get("policies", []):
        u = p["metrics"].get("prefill_utilization")
        if u is not None and u > 0.9:
            console.print(f"[yellow]warning: {p['name']}: prefill keeps the workers {100 * u:.0f}% busy - the node "
                          f"is (nearly) overloaded and TTFT is mostly queueing; add workers or lower the rate[/]")
            break
    out_dir = Path(cfg.experiments.out_dir)
    if args.report_json:
        write_json(report, args.report_json)
    if args.report_csv:
        write_csv(report, args.report_csv)
    if args.default_outputs:
        write_json(report, out_dir / "report.json")
        write_csv(report, out_dir / "report.csv")
        console.print(f"report: {out_dir / 'report.json'}, {out_dir / 'report.csv'}")
    if not args.no_plot and report.get("routers"):
        from sim.report.plots import plot_router_comparison

        png = plot_router_comparison(report, Path(args.plot or out_dir / "routers.png"))
        console.print(f"plot: {png}")
    elif not args.no_plot:
        from sim.report.plots import plot_policy_comparison

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
        from sim.analytic.kv_memory import kv_report, render_kv

        if args.list:
            from sim.config.hardware import GPU_PRESETS, MODEL_PRESETS

            console.print("models: " + ", ".join(sorted(MODEL_PRESETS)))
            console.print("gpus:   " + ", ".join(sorted(GPU_PRESETS)))
            return EXIT_OK
        from sim.analytic.kv_memory import parse_contexts

        contexts = list(parse_contexts(args.contexts)) if args.contexts else None
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


def _tp_arg(text: str) -> int | str:
    """--tp: a positive integer or "auto"."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer or 'auto': {text!r}") from None


def _analytic_inputs(args) -> dict:
    """The calc hit-rate flags the user gave (the rest default in sim.analytic.inputs)."""
    from sim.analytic.inputs import HitRateInputs

    vals = {k: getattr(args, k) for k in HitRateInputs.model_fields if getattr(args, k, None) is not None}
    if args.tp == "auto":
        vals.pop("tp")
    return vals


def _reraise_with_flag(e):
    """An InputError naming an input field, re-raised naming the flag the user typed."""
    from sim.analytic.inputs import cli_flag
    from sim.errors import InputError

    if e.where and e.where.isidentifier():
        msg = str(e).removeprefix(f"{e.where}: ")
        return InputError(msg, where=cli_flag(e.where))
    return e


def cmd_calc_hit_rate(args) -> int:
    from sim.analytic import calc_hit_rate
    from sim.analytic.render import plot_sensitivity, render_hit_rate
    from sim.errors import InputError

    try:
        values = [float(v) for v in _split_list(args.values)] if args.values else None
    except ValueError:
        print(f"error: --values: not a comma-separated list of numbers: {args.values!r}", file=sys.stderr)
        return EXIT_BAD_INPUT
    vary = args.vary or ("kv_budget_gb" if args.plot else None)
    try:
        rep = calc_hit_rate(_analytic_inputs(args), target_hit_rate=args.target_hit_rate, vary=vary,
                            values=values, points=args.points)
    except InputError as e:
        raise _reraise_with_flag(e) from None
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        console = _console()
        for t in render_hit_rate(rep):
            console.print(t)
    if args.plot:
        png = plot_sensitivity(rep, args.plot)
        print(f"plot: {png}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def cmd_calc_reuse(args) -> int:
    from sim.analytic import reuse_breakeven
    from sim.analytic.render import render_reuse
    from sim.errors import InputError

    try:
        rep = reuse_breakeven(args.model, args.gpu, gpus=args.gpus, prefix_tokens=args.prefix_tokens, tp=args.tp,
                              mfu=args.mfu, kv_dtype=args.dtype, link_gb_s=args.link_gb_s)
    except InputError as e:
        raise _reraise_with_flag(e) from None
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        _console().print(render_reuse(rep))
    return EXIT_OK


def cmd_serve(args) -> int:
    from web.app import serve

    return serve(args.host, args.port, args.results_dir)


def cmd_learned(args) -> int:
    """`learned train`: label a trace's accesses, train the LightGBM reuse model, save it."""
    from learned.train import TrainParams, train_from_config
    from sim.errors import InputError

    for flag, v in (("--rounds", args.rounds), ("--horizon", args.horizon), ("--max-rows", args.max_rows)):
        if v is not None and v < 1:
            raise InputError(f"must be >= 1, got {v}", where=flag)
    cfg = _load_cfg(args)
    params = TrainParams(seed=cfg.seed, horizon=args.horizon)
    if args.rounds is not None:
        params.rounds = args.rounds
    if args.max_rows is not None:
        params.max_rows = args.max_rows
    summary = train_from_config(cfg, args.out, params)
    if args.json:
        print(json.dumps(summary, indent=1, default=float))
        return EXIT_OK
    console = _console()
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


def _oracle_table(report: dict):
    from rich.table import Table

    from sim.oracle.outputs import hit_rows

    w = report["workload"]
    t = Table(title=f"oracle - {w['name']}: {w['requests']:,} requests, {w['block_tokens']}-token blocks, "
                    f"token-weighted hit rates at the HBM capacity")
    for col in ("bucket", "requests", "GiB", "blocks", "content", "relaxed", "strict-prefix opt", "LRU",
                "bottleneck", "proven"):
        t.add_column(col, justify="left" if col in ("bucket", "bottleneck") else "right")
    for r in hit_rows(report):
        if "capacity_blocks" not in r:
            t.add_row(r["bucket"], "0", *["-"] * 8)
            continue
        t.add_row(r["bucket"], f"{r['requests']:,}", f"{r['capacity_gb']:,.1f}", f"{r['capacity_blocks']:,}",
                  *[f"{100 * r[c]:.2f}%" for c in ("content_hit_rate", "relaxed_hit_rate",
                                                    "strict-prefix_opt_hit_rate", "LRU_hit_rate")],
                  r["bottleneck"], "yes" if r["strict-prefix_proven_optimal"] else "no")
    return t


def cmd_oracle(args) -> int:
    from sim.oracle.commands import oracle_command

    cfg = _load_cfg(args)
    console = _console(args.quiet)
    cb, prog = _progress_cb(not args.quiet)
    with prog:
        res = oracle_command(cfg, args, progress=cb)
    _print_load_stats(console, _load_stats_obj(res["report"].get("load_stats")))
    console.print(_oracle_table(res["report"]))
    console.print(f"wrote {', '.join(Path(p).name for p in res['paths'].values())} to {args.output_dir}")
    return EXIT_OK


def _load_stats_obj(d):
    if not d:
        return None
    from trace.workload import LoadStats

    return LoadStats(source=d["source"], rows_read=d["rows_read"], loaded=d["loaded"], rejected=d["rejected"],
                     notes=d["notes"])


def _plan_table(title: str, rows: list[dict]):
    from rich.table import Table

    t = Table(title=title)
    for col in ("bucket", "bound", "cards", "machines", "KV GiB", "hit rate", "per-card TPS", "total TPS",
                "cards w/o cache"):
        t.add_column(col, justify="left" if col in ("bucket", "bound") else "right")
    for r in rows:
        t.add_row(r["bucket"], r["bound"], f"{r['cards']:,}", f"{r['machines']:,}", f"{r['capacity_gb']:,.1f}",
                  f"{100 * r['hit_rate']:.2f}%", f"{r['effective_per_card_tps']:,.1f}", f"{r['total_tps']:,.0f}",
                  f"{r['cards_without_cache']:,}")
    return t


def cmd_plan(args) -> int:
    from sim.oracle.commands import plan_command

    cfg = _load_cfg(args)
    console = _console(args.quiet)
    cb, prog = _progress_cb(not args.quiet)
    with prog:
        res = plan_command(cfg, args, progress=cb)
    console.print(_plan_table(f"cards for {args.target_tps:,.0f} TPS (alpha {args.alpha}, baseline "
                              f"{args.baseline_per_card_tps:,.0f} TPS/card)",
                              res["rows"]["strict_prefix"] + res["rows"]["lru"]))
    console.print(f"wrote {', '.join(res['paths'].values())}")
    return EXIT_OK


def cmd_estimate(args) -> int:
    from sim.oracle.commands import estimate_command

    cfg = _load_cfg(args)
    res = estimate_command(cfg, args)
    if args.json:
        print(json.dumps(res, indent=1))
        return EXIT_OK
    from rich.table import Table

    console = _console()
    d = res["derived"]
    console.print(f"workload: mean input {d['input_tokens_mean']:,.0f} tokens, content hit rate "
                  f"{100 * d['content_hit_rate']:.1f}%, working set {d['working_set_tokens']:,.0f} tokens "
                  f"(curve {res['params']['curve']})")
    t = Table(title="estimated token hit rate per tier")
    for col in ("tier", "capacity GiB", "capacity tokens", "optimum", "policy"):
        t.add_column(col, justify="left" if col == "tier" else "right")
    for r in res["tiers"]:
        t.add_row(r["tier"], f"{r['capacity_gb']:,.1f}", f"{r['capacity_tokens']:,}",
                  f"{100 * r['hit_rate_optimum']:.2f}%", f"{100 * r['hit_rate_policy']:.2f}%")
    console.print(t)
    if res["planning"]:
        console.print(_plan_table("planning (estimated)", res["planning"]))
    return EXIT_OK


def cmd_calibrate(args) -> int:
    from sim.oracle.commands import calibrate_command

    cfg = _load_cfg(args)
    console = _console(args.quiet)
    cb, prog = _progress_cb(not args.quiet)
    with prog:
        res = calibrate_command(cfg, args, progress=cb)
    from rich.table import Table

    t = Table(title="calibration residuals (hit-rate points)")
    for col in ("bucket", "curve", "sessions", "efficiency", "opt RMSE", "opt max", "LRU RMSE", "LRU max"):
        t.add_column(col, justify="left" if col in ("bucket", "curve") else "right")
    for r in res["residual_rows"]:
        t.add_row(r["bucket"], r["curve"], f"{r['concurrent_sessions']:,.0f}", f"{r['policy_efficiency']:.3f}",
                  *[f"{100 * r[k]:.2f}" for k in ("optimum_rmse", "optimum_max_abs", "lru_rmse", "lru_max_abs")])
    console.print(t)
    console.print(f"wrote {', '.join(res['paths'].values())}")
    return EXIT_OK


def cmd_audit(args) -> int:
    from sim.oracle.commands import audit_command

    cfg = _load_cfg(args)
    console = _console(args.quiet)
    cb, prog = _progress_cb(not args.quiet)
    with prog:
        rep = audit_command(cfg, args, progress=cb)
    console.print(f"audit: {rep['checks']} checks, {rep['failed_checks']} failed "
                  f"({rep['wall_s']:.1f} s); report {rep['paths']['markdown']}")
    for d in rep["disagreements"][:20]:
        print(f"disagreement: {d}", file=sys.stderr)
    return EXIT_OK if rep["ok"] else EXIT_CHECK_FAILED


def cmd_sweep(args) -> int:
    """`sweep SPEC.yaml`: run every point of a spec (local pool or Ray), then plot it."""
    from experiments.console import sweep_progress, sweep_summary
    from experiments.engine import run_sweep
    from experiments.spec import load_spec

    sweep = load_spec(args.spec, args.preset)
    cb, prog = sweep_progress(sweep, args.quiet)
    with prog:
        out = run_sweep(sweep, out_dir=args.out, workers=args.workers, backend=args.backend, address=args.address,
                        resume=args.resume, overwrite=args.overwrite, progress=cb)
    console = _console(args.quiet)
    for item in sweep_summary(sweep, out):
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


def cmd_plot(args) -> int:
    """`plot DIR`: PNGs of a sweep directory (points.csv + sweep.json)."""
    from experiments.plots import plot_sweep

    paths, notes = plot_sweep(args.dir)
    for n in notes:
        print(f"plot skipped: {n}", file=sys.stderr)
    for p in paths:
        print(p)
    return EXIT_OK


def _pd_table(report: dict):
    """PD mode: one row per deployment (PD, colocated) on the same GPUs and trace."""
    from rich.table import Table

    w, lay = report["workload"], report["pd_layout"]
    t = Table(title=f"pd mode - {w['name']}: {w['requests']:,} requests; {lay['gpus']} x {lay['gpu']} "
                    f"({lay['racks']} racks), {lay['model']} tp {lay['tp']}; SLO TTFT "
                    f"{report['config']['slo']['ttft_ms']:g} ms, TPOT {report['config']['slo']['tpot_ms']:g} ms")
    cols = ("deployment", "replicas", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "TTFT SLO", "TPOT SLO",
            "both SLOs", "goodput req/s", "hit rate", "GPU busy", "preempt", "KV moved GiB", "hidden")
    for c in cols:
        t.add_column(c, justify="left" if c == "deployment" else "right")
    for p in report["policies"]:
        m = p["metrics"]
        kt = m.get("kv_transfer") or {}
        pools = m["pools"]
        reps = " + ".join(f"{v['replicas']}{k[0].upper()}" for k, v in pools.items()) if p["name"] == "pd" \
            else str(sum(v["replicas"] for v in pools.values()))
        busy = " / ".join(_pct(v) for v in m["gpu_utilization"].values())
        t.add_row(p["name"], reps, _ms(m["ttft_ms"]["p50"]), _ms(m["ttft_ms"]["p99"]), _ms(m["tpot_ms"]["p50"]),
                  _ms(m["tpot_ms"]["p99"]), _pct(m["slo"]["ttft_attainment"]), _pct(m["slo"]["tpot_attainment"]),
                  _pct(m["slo_attainment"]), f"{m['goodput_req_s']:.3f}", _pct(m["hit_rate"]), busy,
                  f"{m['preemptions']['count']:,}", f"{(kt.get('bytes') or 0) / 1024**3:,.1f}",
                  _pct(kt.get("hidden_share")))
    return t


def _pd_outputs(args, cfg, console, report: dict) -> int:
    """`run --mode pd`: the table, the TTFT breakdown, warnings, report files and the plot."""
    from sim.report.rows import write_csv
    from sim.report.schema import write_json

    console.print(_pd_table(report))
    lay = report["pd_layout"]
    for p in report["policies"]:
        sh = p["metrics"]["ttft_breakdown_ms"]["mean_share"]
        parts = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sh.items())
        console.print(f"{p['name']}: mean TTFT {_ms(p['metrics']['ttft_ms']['mean'])} ms = {parts}")
    kt = report["metrics"].get("kv_transfer") or {}
    if kt:
        loc = ", ".join(f"{k.replace('_', ' ')} {v['requests']:,}" for k, v in kt["by_locality"].items())
        console.print(f"KV transfer {kt['strategy']}{' (layer-wise)' if kt['layerwise'] else ''}: "
                      f"{kt['requests']:,} requests ({loc}), exposed mean {_ms(kt['exposed_ms']['mean'])} ms")
    console.print(f"[dim]P:D {lay['ratio']} -> {lay['actual_ratio']} per rack; KV {lay['kv_gb_per_gpu']:.1f} GiB "
                  f"per GPU ({lay['kv_tokens_per_replica']:,} tokens per replica)[/]")
    rej = report.get("rejected") or {}
    if rej.get("count"):
        console.print(f"[yellow]warning: {rej['count']:,} requests ({100 * rej['share']:.1f}%) rejected: "
                      f"{rej['reason']}; they count as SLO misses[/]")
    out_dir = Path(cfg.experiments.out_dir)
    if args.report_json:
        write_json(report, args.report_json)
    if args.report_csv:
        write_csv(report, args.report_csv)
    if not args.no_plot:
        from sim.report.pd_plots import plot_pd_comparison

        console.print(f"plot: {plot_pd_comparison(report, Path(args.plot or out_dir / 'pd.png'))}")
    return EXIT_OK


def _pd_ratio_table(res: dict):
    from rich.table import Table

    w = res["workload"]
    t = Table(title=f"experiment pd-ratio - {w['name']}: {w['requests']:,} requests, {res['gpus']} GPUs; "
                    f"SLO TTFT {res['slo']['ttft_ms']:g} ms, TPOT {res['slo']['tpot_ms']:g} ms")
    for c in ("P:D", "replicas", "goodput req/s", "both SLOs", "TTFT SLO", "TPOT SLO", "TTFT p50", "TTFT p99",
              "TPOT p50", "TPOT p99", "prefill busy", "decode busy", "preempt"):
        t.add_column(c, justify="left" if c == "P:D" else "right")
    for r in res["rows"] + ([res["colocated"]] if res.get("colocated") else []):
        reps = f"{r['prefill_replicas']}P+{r['decode_replicas']}D" if r["ratio"] != "colocated" \
            else f"{r['prefill_replicas']}"
        t.add_row(r["ratio"] + (" *" if r["ratio"] == res.get("best_ratio") else ""), reps,
                  f"{r['goodput_req_s']:.3f}", _pct(r["slo_attainment"]), _pct(r["ttft_attainment"]),
                  _pct(r["tpot_attainment"]), _ms(r["ttft_p50_ms"]), _ms(r["ttft_p99_ms"]), _ms(r["tpot_p50_ms"]),
                  _ms(r["tpot_p99_ms"]), _pct(r["prefill_utilization"]), _pct(r["decode_utilization"]),
                  f"{r['preemptions']:,}")
    return t


def cmd_experiment(args) -> int:
    """`experiment pd-ratio`: PD at P:D 1:1..1:7 (or --ratios) + colocated on the same GPUs."""
    from experiments.pd_ratio import parse_ratios, run_pd_ratio, write_pd_ratio
    from trace.source import workload_from_config

    cfg = _load_cfg(args)
    console = _console(args.quiet or args.json)
    ratios = parse_ratios(args.ratios)
    if args.workers is not None and args.workers < 1:
        from sim.errors import InputError

        raise InputError(f"must be >= 1, got {args.workers}", where="--workers")
    workload, load_stats = workload_from_config(cfg)
    _print_load_stats(console, load_stats)
    cb, prog = _progress_cb(not (args.quiet or args.json))
    with prog:
        res = run_pd_ratio(cfg, workload, ratios=ratios, policy=args.policy, baseline=not args.no_baseline,
                           workers=args.workers or 0, progress=cb)
    paths = write_pd_ratio(res, Path(args.out or Path(cfg.experiments.out_dir) / "pd_ratio"), plot=not args.no_plot)
    if args.json:
        print(json.dumps(res, indent=1, default=float))
        return EXIT_OK
    console.print(_pd_ratio_table(res))
    rej = res.get("rejected") or {}
    if rej.get("count"):
        console.print(f"[yellow]warning: {rej['count']:,} requests rejected ({rej['reason']}); "
                      f"counted as SLO misses[/]")
    console.print(f"best goodput: P:D {res['best_ratio']} (marked *); wrote {', '.join(str(p) for p in paths.values())}")
    return EXIT_OK


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
    p.add_argument("--router", default=None,
                   help="worker/GPU router, or several comma-separated to compare in cluster mode "
                        "(default: cluster.router)")
    p.add_argument("--hit-rate-only", action="store_true", help="skip timing (fast replay: hit rates only)")
    p.add_argument("--report-json", default=None, help="write the report as JSON here")
    p.add_argument("--report-csv", default=None, help="write one CSV row per policy here")
    p.add_argument("--plot", default=None, help="PNG path (default: <experiments.out_dir>/policies.png)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    p.add_argument("--model", default=None,
                   help="model file for the learned policy (sets policies.learned_model; default: retrain online)")
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

    # calc hit-rate / calc reuse (issue 8); defaults live in sim.analytic.inputs, so None = not given.
    h = csub.add_parser("hit-rate", help="Little's-law hit-rate estimate of a multi-turn chat workload")
    h.add_argument("--model", default=None, help="model preset or path to a HuggingFace config.json (llama-3-70b)")
    h.add_argument("--gpu", default=None, help="GPU preset (h100-sxm)")
    h.add_argument("--gpus", type=int, default=None, help="GPUs serving the workload (8)")
    h.add_argument("--tp", default=None, type=_tp_arg,
                   help="tensor-parallel degree or auto (default auto: smallest power of two leaving half the "
                        "memory to KV)")
    h.add_argument("--pp", type=int, default=None, help="pipeline-parallel degree (1)")
    h.add_argument("--dtype", dest="kv_dtype", default=None, choices=["fp32", "fp16", "bf16", "fp8", "int4"],
                   help="KV dtype (fp16)")
    h.add_argument("--weight-dtype", default=None, choices=["fp32", "fp16", "bf16", "fp8", "int4"])
    h.add_argument("--arrival-rate", type=float, default=None, help="new conversations per second (2)")
    h.add_argument("--turns", type=float, default=None, help="turns per conversation (5)")
    h.add_argument("--turns-dist", default=None, choices=["fixed", "geometric"],
                   help="conversation lengths: all = --turns (fixed), or geometric with that mean")
    h.add_argument("--interval-s", type=float, default=None, help="seconds between turns (60)")
    h.add_argument("--prompt-tokens", type=int, default=None, help="new user tokens per turn (400)")
    h.add_argument("--response-tokens", type=int, default=None, help="generated tokens per turn (200)")
    h.add_argument("--system-prompt-tokens", type=int, default=None, help="shared system prompt tokens (0)")
    h.add_argument("--system-prompts", type=int, default=None, help="distinct system prompts (1)")
    h.add_argument("--weight-overhead", type=float, default=None, help="memory per weight byte (1.2)")
    h.add_argument("--memory-gb", type=float, default=None, help="GPU memory per GPU, GiB (default: the preset)")
    h.add_argument("--kv-budget-gb", type=float, default=None,
                   help="KV-cache memory per GPU, GiB (default: memory - weights x overhead)")
    h.add_argument("--cache-outputs", action="store_const", const=True, default=None,
                   help="generated tokens are cached too (default: prompt blocks only, like the simulator)")
    h.add_argument("--target-hit-rate", type=float, default=None,
                   help="0-1: memory needed and the smallest change (GPUs, memory, fp8 KV) that reaches it")
    h.add_argument("--vary", default=None, help="sensitivity: input to vary (arrival_rate, turns, interval_s, "
                                                 "prompt_tokens, response_tokens, system_prompt_tokens, gpus, "
                                                 "kv_budget_gb, memory_gb)")
    h.add_argument("--values", default=None, help="sensitivity values, comma-separated (default: a range)")
    h.add_argument("--points", type=int, default=13, help="points of the default sensitivity range")
    h.add_argument("--plot", default=None, help="PNG of the sensitivity curve (default --vary kv_budget_gb)")
    h.add_argument("--json", action="store_true", help="JSON instead of tables")
    h.set_defaults(func=cmd_calc_hit_rate)
    r = csub.add_parser("reuse", help="KV load bandwidth at which reusing a cached prefix beats recomputing it")
    r.add_argument("--model", default="llama-3-70b", help="model preset or path to a HuggingFace config.json")
    r.add_argument("--gpu", default="h100-sxm", help="GPU preset")
    r.add_argument("--gpus", type=int, default=8, help="GPUs of the tensor-parallel group serving a request")
    r.add_argument("--tp", type=int, default=None, help="tensor-parallel degree (default: --gpus)")
    r.add_argument("--prefix-tokens", type=int, default=8192, help="cached prefix length, tokens")
    r.add_argument("--mfu", type=float, default=0.5, help="prefill MFU (0-1]")
    r.add_argument("--dtype", default="fp16", choices=["fp32", "fp16", "bf16", "fp8", "int4"], help="KV dtype")
    r.add_argument("--link-gb-s", type=float, default=None, help="your load bandwidth per GPU, GB/s: compare")
    r.add_argument("--json", action="store_true", help="JSON instead of a table")
    r.set_defaults(func=cmd_calc_reuse)

    p = sub.add_parser("serve", help="web UI: calculators and the reports under results/")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--results-dir", default="results", help="directory of JSON reports and sweeps to show")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("learned", help="the LightGBM eviction policy: train a model file")
    lsub = p.add_subparsers(dest="learned_cmd", metavar="ACTION", required=True)
    t = lsub.add_parser("train", help="train the reuse model on a trace (or the synthetic workload) and save it")
    _add_config_args(t)
    _add_trace_args(t)
    t.add_argument("--out", required=True, help="model file to write (LightGBM text format)")
    t.add_argument("--rounds", type=int, default=None, help="boosting rounds (default 30)")
    t.add_argument("--horizon", type=int, default=None,
                   help="label horizon in block accesses (default: 1.5 x the 90th percentile reuse distance)")
    t.add_argument("--max-rows", type=int, default=300_000,
                   help="train on at most this many of the latest labelled accesses (default 300000)")
    t.add_argument("--json", action="store_true", help="print the training summary as JSON")
    t.set_defaults(func=cmd_learned)

    def _deployment_args(sp, budget=True):
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
        g.add_argument("--tiers", default="1T,10T", help="extra per-machine tiers added to HBM, e.g. 1T,10T ('' = none)")

    def _oracle_common(sp, budget=True):
        _add_config_args(sp)
        _add_trace_args(sp)
        _deployment_args(sp, budget)
        sp.add_argument("--buckets", default=None,
                        help="prompt-length bucket edges, e.g. 32K,64K,128K (default) or 'none'")
        sp.add_argument("--scope", choices=["global", "session"], default="global",
                        help="prefix namespace: global (shared) or session (reuse within a session only)")
        sp.add_argument("--method", choices=["exact", "belady"], default="exact",
                        help="exact: min-cost-flow optimum with certificate; belady: fast block-optimal bound")
        sp.add_argument("--block-tokens", type=int, default=None, help="re-block the trace to this page size")
        sp.add_argument("--output-dir", default="results/oracle", help="where the files go")
        sp.add_argument("--quiet", action="store_true", help="no progress bar, no table")

    p = sub.add_parser("oracle", help="offline hit-rate bounds of a trace (content, relaxed, strict-prefix, LRU)")
    _oracle_common(p)
    p.add_argument("--tolerance", type=float, default=0.005,
                   help="hit-rate gap under which two bounds meet (bottleneck 'none')")
    p.set_defaults(func=cmd_oracle)

    p = sub.add_parser("plan", help="cards and machines needed for a target throughput")
    _oracle_common(p, budget=False)
    p.add_argument("--target-tps", type=float, required=True, help="target total tokens/s")
    p.add_argument("--baseline-per-card-tps", type=float, required=True, help="tokens/s per card without cache hits")
    p.add_argument("--alpha", type=float, default=0.8, help="prefill_savings_alpha: share of cost saved per hit token")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("estimate", help="heuristic hit-rate estimate without a trace")
    _add_config_args(p)
    _deployment_args(p)
    p.add_argument("--from-json", default=None, help="recommended_heuristic_config.json from calibrate")
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
    p.add_argument("--block-tokens", type=int, default=16, help="tokens per KV block")
    p.add_argument("--target-tps", type=float, default=None, help="target total tokens/s (adds planning)")
    p.add_argument("--baseline-per-card-tps", type=float, default=None, help="tokens/s per card without hits")
    p.add_argument("--alpha", type=float, default=0.8, help="prefill_savings_alpha")
    p.add_argument("--output-dir", default=None, help="also write estimate.json (+ planning CSV) here")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("calibrate", help="fit the heuristic estimator to the oracle on a trace")
    _oracle_common(p)
    p.add_argument("--points", type=int, default=6, help="capacities per pool on the oracle curve")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("audit", help="recheck every oracle bound with naive reference implementations")
    _add_config_args(p)
    _add_trace_args(p)
    p.add_argument("--buckets", default=None, help="bucket edges as for oracle")
    p.add_argument("--scope", choices=["global", "session"], default="global", help="prefix namespace")
    p.add_argument("--sample", type=int, default=120, help="requests sampled per pool")
    p.add_argument("--small", type=int, default=10, help="small exhaustive instances per pool")
    p.add_argument("--capacities", default=None, help="capacities in blocks (default: 3 from the sample)")
    p.add_argument("--block-tokens", type=int, default=None, help="re-block the trace to this page size")
    p.add_argument("--output-dir", default="results/audit", help="where audit_report.json/.md go")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_audit)

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
    p.add_argument("--out", default=None, help="sweep directory (default: results/<name>[-<preset>])")
    p.add_argument("--resume", action="store_true", help="continue a sweep: skip the points already done")
    p.add_argument("--overwrite", action="store_true", help="start over in a directory that holds a sweep")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNGs at the end")
    p.add_argument("--quiet", action="store_true", help="no progress, no table")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("plot", help="PNG plots of a sweep directory (results/<sweep>)")
    p.add_argument("dir", help="sweep directory holding points.csv and sweep.json")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("experiment", help="standard studies: pd-ratio (P:D 1:1..1:7 vs colocated)")
    esub = p.add_subparsers(dest="experiment", metavar="STUDY", required=True)
    e = esub.add_parser("pd-ratio", help="goodput and SLO attainment of PD per P:D ratio, colocated as baseline")
    _add_config_args(e)
    _add_trace_args(e)
    e.add_argument("--ratios", default=None, help="P:D ratios per rack, e.g. 1:1,1:3,2:5 (default 1:1..1:7)")
    e.add_argument("--policy", default=None, help="eviction order of the radix trees (default: policies.eviction)")
    e.add_argument("--workers", type=int, default=None,
                   help="processes running the ratios (default: experiments.workers, 0 there = every core)")
    e.add_argument("--no-baseline", action="store_true", help="skip the colocated run")
    e.add_argument("--out", default=None, help="output directory (default: <experiments.out_dir>/pd_ratio)")
    e.add_argument("--no-plot", action="store_true", help="do not write pd_ratio.png")
    e.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    e.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    e.set_defaults(func=cmd_experiment)

    return ap


def main(argv: list[str] | None = None) -> int:
    from sim.errors import InputError

    ap = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        # `python main.py --quiet` etc.: the main job with run's options
        args = ap.parse_args(["run", "--compare", *argv])
        args.default_outputs = True
    else:
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
