"""What every command shares: exit codes, the config and workload flags, config loading, console output."""
from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def split_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def warn(message: str) -> None:
    """One ``warning: ...`` line on stderr (results the user should not take at face value)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def make_console(quiet: bool = False):
    from rich.console import Console

    # Piped output keeps full tables instead of wrapping at 80 columns.
    return Console(quiet=quiet, width=None if sys.stdout.isatty() else 200)


def progress_cb(enabled: bool):
    """A rich progress bar on a TTY (off with --quiet); returns (callback, context)."""
    import contextlib

    if not enabled or not sys.stderr.isatty():
        return None, contextlib.nullcontext()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    prog = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def cb(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = prog.add_task(label, total=total)
        prog.update(tasks[label], completed=done)

    return cb, prog


def add_config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("--config", default=None, help="config YAML (default: config.yaml of the repository)")
    g.add_argument("--preset", default=None, help="named overlay from the config's presets: smoke|dev|prod-eval")
    g.add_argument("--profile", default=None, help="calibration overlay, e.g. profiles/h100_llama3_70b.yaml")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set hardware.hbm.capacity_gib=40 (repeatable)")
    g.add_argument("--seed", type=int, default=None, help="RNG seed (overrides config seed)")


def add_trace_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    from trace.formats import choices

    g = p.add_argument_group("workload")
    g.add_argument("--trace", required=required, default=None, help="trace file (.jsonl/.csv/.npz, .gz ok)")
    g.add_argument("--trace-format", default=None,
                   help=f"{'|'.join(choices())} (default: auto)")
    g.add_argument("--limit", type=int, default=None, help="replay only the first N requests")
    g.add_argument("--strict", action="store_true", help="any malformed trace row is an error")


def load_cfg(args: argparse.Namespace):
    """The config of a command: file, preset, profile, then --set and the flags that are config keys."""
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
    if getattr(args, "router", None) and len(split_list(args.router)) == 1:
        key = "pd.router" if getattr(args, "mode", None) == "pd" else "cluster.router"  # pd: the prefill router
        overrides.append(f"{key}={args.router}")
    return load_config(args.config, args.preset, args.profile, overrides)


def print_load_stats(console, ls) -> None:
    if ls is None:
        return
    if ls.rejected_total:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(ls.rejected.items()))
        console.print(f"[yellow]trace: {ls.loaded} requests loaded, {ls.rejected_total} rows rejected ({reasons})[/]")
    for note in ls.notes:
        console.print(f"[dim]trace: {note}[/]")


def load_stats_obj(d: dict | None):
    """A report's load_stats dict back as the LoadStats that print_load_stats takes."""
    if not d:
        return None
    from trace.workload import LoadStats

    return LoadStats(source=d["source"], rows_read=d["rows_read"], loaded=d["loaded"], rejected=d["rejected"],
                     notes=d["notes"])
