"""What `python main.py sweep` shows: the progress bar and the summary table."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

from experiments.engine import SweepOutcome, SweepProgress
from experiments.metrics import METRICS
from experiments.spec import Sweep
from sim.eta import eta_text


def _fmt(name: str, v: Any) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return v
    m = METRICS.get(name)
    if m and m.unit == "%":
        return f"{100 * float(v):.1f}%"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _point_text(sweep: Sweep, row: dict) -> str:
    shown = ", ".join(f"{a.name}={row.get(a.name)}" for a in sweep.axes)
    if len(sweep.seeds) > 1:
        shown += f", seed={row.get('seed')}"
    return shown or "(single point)"


def sweep_progress(sweep: Sweep, quiet: bool) -> tuple[Callable[[SweepProgress], None] | None, Any]:
    """(callback, context manager): a rich bar with done/ETA/failures on a TTY, one line per point otherwise."""
    if quiet:
        return None, contextlib.nullcontext()
    if not sys.stderr.isatty():
        def line(st: SweepProgress) -> None:
            if st.last is None:
                if st.reused:
                    print(f"sweep {sweep.name}: {st.reused} of {st.total} points reused from the previous run",
                          file=sys.stderr)
                return
            r = st.last
            metric = sweep.spec.metrics[0]
            tail = r.get("error") if r["status"] != "ok" else f"{metric}={_fmt(metric, r.get(metric))}"
            eta = eta_text(st.eta_s())
            pace = f" ({st.requests_done:,} requests simulated" + (f", {eta})" if eta else ")")
            print(f"[{st.done}/{st.total}] {r['status']} {r['point_id']} {_point_text(sweep, r)}: {tail}{pace}",
                  file=sys.stderr)

        return line, contextlib.nullcontext()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    prog = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"), TextColumn("elapsed"), TimeElapsedColumn(),
        TextColumn("{task.fields[eta]}"), console=Console(stderr=True), transient=False,
    )
    task: dict[str, TaskID] = {}

    def bar(st: SweepProgress) -> None:
        if "id" not in task:
            # reused points count as done but must not skew the ETA: the bar starts at them
            task["id"] = prog.add_task(f"sweep {sweep.name}", total=st.total, completed=st.done, failed=0, eta="")
        prog.update(task["id"], completed=st.done, failed=st.failed, eta=eta_text(st.eta_s()))

    return bar, prog


def sweep_summary(sweep: Sweep, out: SweepOutcome, wide: bool = False) -> list:
    """The rich renderables printed after a sweep: the point table and a one-line tally."""
    from rich.table import Table

    metrics = list(dict.fromkeys(sweep.spec.metrics))
    t = Table(title=f"sweep {sweep.name}" + (f" (preset {sweep.preset})" if sweep.preset else "")
                    + f": {out.total} points, mode {', '.join(sweep.modes)}")
    for a in sweep.axes:
        t.add_column(a.name)
    if len(sweep.seeds) > 1:
        t.add_column("seed", justify="right")
    t.add_column("status")
    for m in metrics:
        met = METRICS[m]
        t.add_column(f"{m}\n({met.unit})" if met.unit != "%" else m, justify="right")
    if wide:  # the config hash is in points.csv; the terminal table keeps its width for the metrics
        t.add_column("config")
    for r in out.rows:
        cells = [str(r.get(a.name)) for a in sweep.axes]
        if len(sweep.seeds) > 1:
            cells.append(str(r.get("seed")))
        if r.get("status") == "ok":
            cells.append("ok")
            cells += [_fmt(m, r.get(m)) for m in metrics]
        else:
            err = str(r.get("error") or "")
            cells.append("[red]failed[/]")
            cells += [("[red]" + (err[:80] + ("..." if len(err) > 80 else "")) + "[/]") if i == 0 else ""
                      for i in range(len(metrics))]
        if wide:
            cells.append(str(r.get("config_hash")))
        t.add_row(*cells)
    rerun = f" (damaged: {out.damaged} re-run)" if out.damaged else ""
    tally = (f"{out.total} points: {out.reused} reused, {out.ran} run{rerun}, {out.failed} failed "
             f"({out.wall_s:.1f} s); results in {out.out_dir}/ (points.csv"
             + (", points.parquet" if "parquet" in out.paths else "") + ", points/<point_id>.json)")
    return [t, *[f"[yellow]{n}[/]" for n in out.notes], tally]
