"""What every command shares: exit codes, the config and workload flags, config loading, console output."""
from __future__ import annotations

import argparse
import json
import sys

from sim.eta import Eta, eta_text, secs_text

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def split_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def warn(message: str) -> None:
    """One ``warning: ...`` line on stderr (results the user should not take at face value)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def console_width(wide: bool = False) -> int | None:
    """The width tables are laid out for: $COLUMNS, else the terminal's, else 100 off a terminal (200 with
    --wide, so piped output keeps every column unfolded). None lets rich ask the terminal."""
    import os

    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    if sys.stdout.isatty():
        return None
    return 200 if wide else 100


def fold_table(table) -> None:
    """Fold cells that do not fit instead of cutting them with an ellipsis."""
    for col in table.columns:
        col.overflow = "fold"


def make_console(quiet: bool = False, wide: bool = False):
    """The stdout console of a command; every table it prints folds instead of cutting (fold_table)."""
    from rich.console import Console
    from rich.table import Table

    class FoldingConsole(Console):
        def print(self, *objects, **kwargs) -> None:  # type: ignore[override]
            for o in objects:
                if isinstance(o, Table):
                    fold_table(o)
            super().print(*objects, **kwargs)

    return FoldingConsole(quiet=quiet, width=console_width(wide))


PROGRESS_INTERVAL_S = 5.0  # seconds between plain progress lines off a terminal


class LineProgress:
    """Plain progress lines on a stream (stderr off a terminal, where a bar would be escape codes): a line
    when a task starts, then at most one per `interval_s` with done/total, elapsed and ETA (``sim.eta``:
    the recent rate, none while unknown)."""

    def __init__(self, stream=None, interval_s: float = PROGRESS_INTERVAL_S, clock=None) -> None:
        import time

        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self.clock = clock or time.monotonic
        self._start: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._eta: dict[str, Eta] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        now = self.clock()
        if label not in self._start:
            self._start[label] = self._last[label] = now
            self._eta[label] = Eta()
            self._eta[label].tick(now, done)
            self._line(f"{label}: started" + (f", {total:,} requests" if total > 1 else ""))
            return
        self._eta[label].tick(now, done)
        elapsed = now - self._start[label]
        if done >= total:
            if total == 1 or elapsed >= self.interval_s:  # quick tasks end without a line of their own
                self._line(f"{label}: done in {secs_text(elapsed)}")
            self._last[label] = now
            return
        if now - self._last[label] < self.interval_s:
            return
        self._last[label] = now
        eta = eta_text(self._eta[label].eta_s(total))
        self._line(f"{label}: {done:,}/{total:,} requests ({100 * done / max(total, 1):.0f}%), "
                   f"{secs_text(elapsed)} elapsed" + (f", {eta}" if eta else ""))

    def _line(self, text: str) -> None:
        print(f"progress: {text}", file=self.stream, flush=True)


def progress_cb(enabled: bool):
    """A rich progress bar on a terminal, plain lines on stderr otherwise (LineProgress); nothing with
    --quiet. Returns (callback, context)."""
    import contextlib

    if not enabled:
        return None, contextlib.nullcontext()
    if not sys.stderr.isatty():
        return LineProgress(), contextlib.nullcontext()
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    prog = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[eta]}"),
        console=Console(stderr=True), transient=True,
    )
    tasks: dict[str, tuple[TaskID, Eta]] = {}

    def cb(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = (prog.add_task(label, total=total, eta=""), Eta())
        task, eta = tasks[label]
        eta.tick(time.monotonic(), done)
        prog.update(task, completed=done, eta=eta_text(eta.eta_s(total)))

    return cb, prog


def compile_notice(enabled: bool, mode: str = "") -> None:
    """One stderr line before a run that will compile the cache engine first (a cold cache, once)."""
    if not enabled:
        return
    from sim.engine import is_compiled

    cluster = mode == "cluster"
    if not is_compiled("cluster_kernels" if cluster else "node_ops"):
        print("note: compiling the cache engine (first run on this machine or after an edit, "
              "~20-60 s, once)", file=sys.stderr, flush=True)


def add_wide_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wide", action="store_true", help="every table column (default: the headline columns, which "
                                                        "fit in 100 terminal columns)")


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
