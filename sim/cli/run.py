"""`run` (one simulation in single, cluster or PD mode) and the main job (`python main.py` with no command)."""
from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path
from typing import Any

from sim.cli.common import (
    EXIT_OK,
    add_config_args,
    add_trace_args,
    add_wide_arg,
    compile_notice,
    load_cfg,
    make_console,
    print_load_stats,
    progress_cb,
    split_list,
    warn,
)
from sim.cli.tables import ms, pd_table, policy_table, router_table, run_notes


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="one simulation (policy comparison with several --policy names)")
    p.add_argument("--mode", choices=["single", "cluster", "pd"], default="single", help="what to simulate")
    add_config_args(p)
    add_trace_args(p)
    p.add_argument("--policy", default=None,
                   help="eviction policy, or several comma-separated to compare (default: policies.eviction)")
    p.add_argument("--compare", action="store_true", help="compare every policy in policies.compare")
    p.add_argument("--router", default=None,
                   help="worker/GPU router, or several comma-separated to compare in cluster mode "
                        "(default: cluster.router)")
    p.add_argument("--hit-rate-only", action="store_true", help="skip timing (fast replay: hit rates only)")
    p.add_argument("--pods", type=int, default=None, metavar="K",
                   help="cluster: the racks form K pods, each session (--partition-by) pinned to pod "
                        "hash %% K, each pod simulated on its own and the reports merged exactly "
                        "(sets cluster.pods; 0 = one cluster)")
    p.add_argument("--partition-by", choices=["session", "prefix_root"], default=None,
                   help="with --pods: what pins a request to its pod (sets cluster.partition_by; default session)")
    p.add_argument("--workers", type=int, default=None,
                   help="with --pods: pods run at once (local processes, or the CPUs of a local Ray); default 1")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="with --pods: where pods run (ray: a local Ray, or --address HOST:PORT)")
    p.add_argument("--address", default=None, help="with --pods --backend ray: Ray cluster to join")
    p.add_argument("--out", default=None,
                   help="folder for report.json, report.csv and the plot (default: a new "
                        "<experiments.out_dir>/<mode>-<UTC time>/, with <experiments.out_dir>/latest pointing at it)")
    p.add_argument("--report-json", default=None, help="write the report as JSON here (then only the files named)")
    p.add_argument("--report-csv", default=None, help="write one CSV row per policy here (then only the files named)")
    p.add_argument("--plot", default=None, help="write the plot here (then only the files named)")
    p.add_argument("--requests-out", default=None, metavar="FILE",
                   help="also write one row per request (and run) here: .csv or .parquet")
    p.add_argument("--compare-measured", action="store_true",
                   help="set the simulated TTFT/TPOT against the latencies the trace measured (a trace from "
                        "`trace convert --from vllm-bench`): a `measured` report block and a table")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    add_wide_arg(p)
    p.add_argument("--model", default=None,
                   help="model file for the learned policy (sets policies.learned_model; default: retrain online)")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from trace.source import workload_from_config

    cfg = _with_pod_flags(load_cfg(args), args)
    _check_output_flags(args)
    console = make_console(args.quiet, args.wide)
    policies = _policies(args, cfg)
    if getattr(args, "model", None) and "learned" not in policies:
        from sim.errors import InputError

        raise InputError("the model file is used only by the `learned` policy; add --policy learned", where="--model")
    compare_measured = getattr(args, "compare_measured", False)
    if compare_measured and args.hit_rate_only:
        from sim.errors import InputError

        raise InputError("needs the timed simulation (TTFT/TPOT); drop --hit-rate-only", where="--compare-measured")
    workload, load_stats = workload_from_config(cfg)
    if compare_measured:
        from sim.report.measured import check_measured

        check_measured(workload)
    print_load_stats(console, load_stats)
    # one RequestTable per run, filled by the runners for --requests-out and --compare-measured; a run
    # above report.exact_quantiles_max_requests streams them to the file instead (sim.report.request_stream)
    tables: Any = [] if getattr(args, "requests_out", None) or compare_measured else None
    if tables is not None and not compare_measured and len(workload) > cfg.report.exact_quantiles_max_requests:
        from sim.report.request_stream import RequestStream

        with RequestStream(args.requests_out) as stream:  # removed if anything below fails
            return _run_and_write(args, cfg, console, workload, load_stats, policies, stream)
    return _run_and_write(args, cfg, console, workload, load_stats, policies, tables)


def _run_and_write(args: argparse.Namespace, cfg, console, workload, load_stats, policies: list[str],
                   tables: Any) -> int:
    """Simulate, print the tables and write the files; `tables` collects (a list) or streams (RequestStream)
    the per-request rows, or is None."""
    from sim.modes.runner import run_mode

    compare_measured = getattr(args, "compare_measured", False)
    cb, prog = progress_cb(not args.quiet)
    if args.mode != "single":  # single mode compiles up front under its own progress label (modes.runner)
        compile_notice(not args.quiet, args.mode)
    with prog:
        report = run_mode(cfg, args.mode, workload=workload, load_stats=load_stats, policies=policies,
                          routers=split_list(getattr(args, "router", None)) or None,
                          timing=not args.hit_rate_only, progress=cb, requests=tables, **_partition(args, cfg))
    if compare_measured and tables is not None:
        from sim.report.measured import add_measured_columns, measured_block

        report["measured"] = measured_block(tables, workload)
        add_measured_columns(tables, workload)
    if not getattr(args, "requests_out", None):
        tables = None  # collected only for the comparison
    if report["mode"] == "pd":
        return _pd_outputs(args, cfg, console, report, tables)
    if report.get("routers"):
        console.print(router_table(report, args.wide))
    if not report.get("routers") or len(report.get("policies", [])) > 1:
        console.print(policy_table(report, args.wide))
    for line in run_notes(report):
        console.print(line, highlight=False)
    _measured_outputs(args, console, report)
    _run_warnings(report)
    from sim.report import plots

    figs = [(plots.plot_router_comparison, "routers.png", "")] if report.get("routers") else \
        [(plots.plot_policy_comparison, "policies.png", "")]
    if report.get("mode") == "cluster":
        figs.append((plots.plot_cluster_skew, "skew.png", "_skew"))
    _write_outputs(args, cfg, console, report, figs, tables)
    return EXIT_OK


def cmd_default(args: argparse.Namespace) -> int:
    """The main job: single-node policy comparison on the default workload."""
    ns = argparse.Namespace(
        mode="single", config=None, preset=None, profile=None, overrides=[], seed=None, trace=None,
        trace_format=None, limit=None, strict=False, policy=None, compare=True, hit_rate_only=False,
        report_json=None, report_csv=None, requests_out=None, no_plot=False, plot=None, quiet=False, out=None,
        router=None, wide=False, compare_measured=False, pods=None,
    )
    return cmd_run(ns)


def _with_pod_flags(cfg, args: argparse.Namespace):
    """`cfg` with --pods / --partition-by written into cluster.pods / cluster.partition_by (so the config
    hash and the report record the partitioned deployment)."""
    from sim.config import config_with
    from sim.errors import InputError

    over = {}
    pods = getattr(args, "pods", None)
    if pods is not None:
        if pods < 1:
            raise InputError(f"must be >= 1, got {pods}", where="--pods")
        over["cluster.pods"] = pods
    if getattr(args, "partition_by", None) is not None:
        over["cluster.partition_by"] = args.partition_by
    return config_with(cfg, over) if over else cfg


def _partition(args: argparse.Namespace, cfg) -> dict:
    """run_mode's partition arguments from cluster.pods/partition_by and --workers/--backend/--address; with
    --out DIR finished pods are kept in DIR/pods (a rerun reuses them)."""
    from sim.errors import InputError

    if not cfg.cluster.pods:
        for flag, default in (("workers", None), ("backend", "local"), ("address", None)):
            if getattr(args, flag, default) != default:
                raise InputError("runs the pods of a partitioned cluster: add --pods K (or set cluster.pods)",
                                 where=f"--{flag}")
        if getattr(args, "partition_by", None) is not None:
            raise InputError("pins requests to pods: add --pods K (or set cluster.pods)", where="--partition-by")
        return {}
    from experiments.pods import pod_runner
    from sim.modes.partition import Partition
    from sim.modes.partition_run import PodStore

    runner = pod_runner(args.backend, args.workers, args.address)
    store = PodStore(Path(args.out) / "pods") if getattr(args, "out", None) else None
    at_once = args.workers or ((os.cpu_count() or 1) if args.backend == "ray" else 1)
    return {"partition": Partition.of(cfg, at_once), "pod_runner": runner, "pod_store": store}


def _pd_outputs(args: argparse.Namespace, cfg, console, report: dict, tables: Any) -> int:
    """`run --mode pd`: the table, the TTFT breakdown, warnings, report files and the plot."""
    console.print(pd_table(report, args.wide))
    lay = report["pd_layout"]
    for p in report["policies"]:
        sh = p["metrics"]["ttft_breakdown_ms"]["mean_share"]
        parts = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sh.items())
        console.print(f"{p['name']}: mean TTFT {ms(p['metrics']['ttft_ms']['mean'])} ms = {parts}")
    for line in run_notes(report):
        console.print(line, highlight=False)
    _measured_outputs(args, console, report)
    kt = report["metrics"].get("kv_transfer") or {}
    if kt:
        loc = ", ".join(f"{k.replace('_', ' ')} {v['requests']:,}" for k, v in kt["by_locality"].items())
        console.print(f"KV transfer {kt['strategy']}{' (layer-wise)' if kt['layerwise'] else ''}: "
                      f"{kt['requests']:,} requests ({loc}), exposed mean {ms(kt['exposed_ms']['mean'])} ms")
    console.print(f"[dim]P:D {lay['ratio']} -> {lay['actual_ratio']} per rack; KV {lay['kv_gib_per_gpu']:.1f} GiB "
                  f"per GPU ({lay['kv_tokens_per_replica']:,} tokens per replica)[/]")
    _run_warnings(report)
    rej = report.get("rejected") or {}
    if rej.get("count"):
        console.print(f"[yellow]warning: {rej['count']:,} requests ({100 * rej['share']:.1f}%) rejected: "
                      f"{rej['reason']}; they count as SLO misses[/]")
    from sim.report.pd_plots import plot_pd_comparison

    _write_outputs(args, cfg, console, report, [(plot_pd_comparison, "pd.png", "")], tables)
    return EXIT_OK


def _measured_outputs(args: argparse.Namespace, console, report: dict) -> None:
    if report.get("measured"):
        from sim.cli.tables import measured_table

        console.print(measured_table(report, args.wide))


def _run_warnings(report: dict) -> None:
    """One stderr line each: a run that is not stable (``load``), a cluster whose router skews the traffic."""
    from sim.modes.load import warning_line

    line = warning_line(report)
    if line:
        warn(line)
    sk = (report.get("metrics") or {}).get("skew") or {}
    if sk.get("warning"):
        warn(f"cluster skew: {sk['warning']}")


def _policies(args: argparse.Namespace, cfg) -> list[str]:
    """--policy names, or policies.compare with --compare, or policies.eviction; an empty list is refused."""
    from sim.errors import InputError

    if args.policy is not None:
        names = split_list(args.policy)
        if not names:
            raise InputError(f"no policy name in {args.policy!r}", where="--policy")
        return names
    if args.compare:
        if not cfg.policies.compare:
            raise InputError("policies.compare is empty; list at least one policy", where="--compare")
        return list(cfg.policies.compare)
    return [cfg.policies.eviction]


def _plot_path(text: str) -> Path:
    """--plot as given; no suffix means PNG (as matplotlib did); an image type it cannot write is refused."""
    from sim.errors import InputError

    p = Path(text)
    if not p.suffix:
        return p.with_suffix(".png")
    if p.suffix.lower().lstrip(".") not in PLOT_TYPES:
        raise InputError(f"unsupported image type {p.suffix!r} (use .png, .svg or .pdf)", where="--plot")
    return p


PLOT_TYPES = ("png", "svg", "svgz", "pdf", "jpg", "jpeg", "tif", "tiff", "webp", "eps", "ps")


def _explicit_outputs(args: argparse.Namespace) -> bool:
    return any(getattr(args, f, None) for f in ("report_json", "report_csv", "plot"))


def _check_output_flags(args: argparse.Namespace) -> None:
    """Refuse unusable output paths before the simulation runs (a directory, /proc, a device, a NUL byte)."""
    from sim.errors import InputError
    from sim.io_safe import check_output_dir, check_output_path

    for flag, value in (("--report-json", args.report_json), ("--report-csv", args.report_csv)):
        if value is not None:
            check_output_path(value, flag)
    if getattr(args, "requests_out", None) is not None:
        from sim.report.requests import check_requests_out

        check_requests_out(args.requests_out)
    if args.plot is not None and not args.no_plot:
        check_output_path(args.plot, "--plot")  # a directory is refused before ".png" would be appended
        check_output_path(_plot_path(args.plot), "--plot")
    if getattr(args, "out", None) is not None:
        if _explicit_outputs(args):
            raise InputError("--out is the folder of the default files; with --report-json/--report-csv/--plot "
                             "give each file's path instead", where="--out")
        check_output_dir(args.out, "--out")


def _run_folder(args: argparse.Namespace, cfg, report: dict) -> tuple[Path, bool]:
    """The folder of this run's default files: --out, or a new <out_dir>/<mode>-<UTC time> (True: made here)."""
    from sim.io_safe import new_run_dir

    if getattr(args, "out", None):
        return Path(args.out), False
    stamp = report["started_utc"].replace("-", "").replace(":", "")  # 20261206T123456Z
    return new_run_dir(cfg.experiments.out_dir, report["mode"], stamp, "experiments.out_dir"), True


def _write_outputs(args: argparse.Namespace, cfg, console, report: dict, figs: list,
                   tables: Any) -> None:
    """The run's files as one set (all written to temporaries and renamed only if all succeed), then one
    line per file. With --report-json/--report-csv/--plot only those; otherwise report.json, report.csv and
    the plots in the run's own folder (_run_folder), which `latest` then points at. The per-request file
    (`tables`, one per run; --requests-out) joins either set.

    figs: (plot function, default file name, suffix added to the stem of --plot) per figure; the first
    figure is --plot itself, the others sit next to it (--plot out.png -> out_skew.png)."""
    from sim.io_safe import OutputSet, point_latest
    from sim.report.rows import write_csv
    from sim.report.schema import write_json

    files: list[tuple[Path, str, object]] = []
    folder, made = None, False
    if _explicit_outputs(args):
        if args.report_json:
            files.append((Path(args.report_json), "--report-json", lambda t: write_json(report, t)))
        if args.report_csv:
            files.append((Path(args.report_csv), "--report-csv", lambda t: write_csv(report, t)))
        if args.plot and not args.no_plot:
            given = _plot_path(args.plot)
            for plot_fn, _, stem_suffix in figs:
                files.append((given.with_name(given.stem + stem_suffix + given.suffix), "--plot",
                              functools.partial(plot_fn, report)))
    else:
        folder, made = _run_folder(args, cfg, report)
        where = "--out" if getattr(args, "out", None) else "experiments.out_dir"
        files += [(folder / "report.json", where, lambda t: write_json(report, t)),
                  (folder / "report.csv", where, lambda t: write_csv(report, t))]
        if not args.no_plot:
            files += [(folder / plot_name, where, functools.partial(plot_fn, report)) for plot_fn, plot_name, _ in figs]
    if tables is not None:
        from sim.report.request_stream import RequestStream, request_rows
        from sim.report.requests import write_requests

        write_rows = tables.finish if isinstance(tables, RequestStream) else (lambda t: write_requests(tables, t))
        files.append((Path(args.requests_out), "--requests-out", write_rows))
    try:
        with OutputSet() as outs:
            for path, where, writer in files:
                outs.write(path, where, writer)  # type: ignore[arg-type]
            outs.commit()
    except BaseException:
        if made and folder is not None:
            import contextlib

            with contextlib.suppress(OSError):
                folder.rmdir()  # the reserved folder is still empty: the set wrote nothing
        raise
    if made and folder is not None:
        point_latest(folder)
    for path, _, _ in files:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    if tables is not None:
        console.print(f"requests: {request_rows(tables):,} rows in {args.requests_out}", highlight=False,
                      soft_wrap=True)
