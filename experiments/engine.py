"""Sweep engine: spec -> points -> reports, on a local process pool (or Ray), resumable.

* Points are the product (or zip) of the axes, times the seeds. A point's id
  is a hash of what defines it (axis values, seed, mode, workload, timing,
  mode options), so the same spec always yields the same ids and a resumed
  or extended sweep recognises the points it already has.
* Each point runs in a worker process (``concurrent.futures`` pool of
  ``--workers`` processes, default: the config's ``experiments.workers``, 0 =
  cores). Workers cache workloads (``experiments.worker``).
* Every finished point is written at once: ``points/<id>.json`` (full report,
  or the error and traceback, written atomically), its checksum in
  ``checksums.json``, and the whole ``points.csv``. ``resume=True`` reuses the
  points whose file passes ``experiments.resume`` (checksum, parse, status ok,
  same config hash) and rebuilds points.csv from them; the rest run again.
* A failing point is recorded with its error and the sweep goes on; a worker
  process that dies is replaced and its points retried once.
* Before anything is written, every point to run is checked against the
  memory bound and the points run at once are fitted to it
  (``experiments.memory_fit``): a point that cannot fit refuses the sweep.
  On a Ray cluster (``--address``) each point's estimate is its task's Ray
  ``memory`` resource instead, and a point no node can hold refuses the
  sweep before any point is submitted (``experiments.ray_backend``).

Workers start from a fork server and die with the sweep (see ``experiments.pool``), so a script that
calls ``run_sweep`` needs the usual ``if __name__ == "__main__":`` guard.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments import results as R
from experiments.axes import DERIVED
from experiments.spec import Sweep, apply_overrides
from experiments.worker import CACHE_B
from sim.config import Config
from sim.errors import InputError
from sim.eta import Eta
from sim.io_safe import check_output_dir, write_bytes_atomic

BACKENDS = ("local", "ray")
# what makes a point smaller, for the refusal of a point no Ray node can hold
POINT_CHANGE = "lower its workload (synthetic.requests, a shorter trace) or its cache sizes"


@dataclass
class Point:
    index: int
    point_id: str
    axes: dict[str, Any]  # axis name -> value as shown in points.csv
    seed: int
    mode: str
    workload: str
    config: Config
    config_hash: str

    def task(self, sweep: Sweep, cwd: str) -> dict:
        """What a worker needs (plain data: it crosses process and machine boundaries)."""
        return {"point_id": self.point_id, "config": self.config.model_dump(mode="json"), "mode": self.mode,
                "timing": sweep.spec.timing, "options": sweep.options[self.mode].model_dump(), "cwd": cwd}

    def describe(self) -> dict:
        return {"point_id": self.point_id, "index": self.index, "axes": self.axes, "seed": self.seed,
                "mode": self.mode, "workload": self.workload, "config_hash": self.config_hash}


def point_id(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:12]


def expand(sweep: Sweep) -> list[Point]:
    """All points of the sweep, in spec order (first axis outermost, seeds innermost)."""
    axes = sweep.axes
    if not axes:
        combos: list[tuple[int, ...]] = [()]
    elif sweep.spec.combine == "zip":
        combos = [tuple([i] * len(axes)) for i in range(len(axes[0].values))]
    else:
        combos = list(itertools.product(*[range(len(a.values)) for a in axes]))
    default_workload = next(iter(sweep.workloads))
    axes_where = sweep.where("axes")
    points: list[Point] = []
    for combo in combos:
        shown = {a.name: a.values[i] for a, i in zip(axes, combo, strict=True)}
        assign: dict[str, Any] = {}
        for a, i in zip(axes, combo, strict=True):
            assign.update(a.assigns[i])
        mode = str(assign.pop("mode", sweep.spec.mode))
        workload = str(assign.pop("workload", default_workload))
        profile = assign.pop("profile", None)
        derived = {k: assign.pop(k) for k in list(assign) if k in DERIVED}
        where = f"{axes_where} (point {json.dumps(shown, default=str)})"
        base = sweep.base_config(None if profile is None else str(profile))
        overrides = {**sweep.workloads[workload].overrides(), **assign}
        for k, v in derived.items():  # derived keys read the rest of the point's config
            cfg = apply_overrides(base, overrides, where)
            try:
                overrides.update(DERIVED[k].apply(cfg, v))
            except InputError as e:
                raise InputError(str(e), where=where) from None
        for seed in sweep.seeds:
            c = apply_overrides(base, {**overrides, "seed": seed}, where)
            ident = {"axes": shown, "seed": seed, "mode": mode, "workload": workload, "timing": sweep.spec.timing,
                     "options": sweep.options[mode].model_dump()}
            points.append(Point(len(points), point_id(ident), shown, seed, mode, workload, c, c.hash()))
    return points


def default_out_dir(sweep: Sweep) -> Path:
    root = Path(sweep.base_config().experiments.out_dir)
    return root / (f"{sweep.name}-{sweep.preset}" if sweep.preset else sweep.name)


def _out_dir(sweep: Sweep, out_dir: str | Path | None) -> Path:
    """The sweep folder: --out as given, else results/<name>[-<preset>], which must stay inside results/."""
    where = "--out" if out_dir else sweep.where("name")
    out = check_output_dir(out_dir if out_dir else default_out_dir(sweep), where)
    if not out_dir:  # the spec's name and preset are checked plain names; this is the backstop
        root = Path(sweep.base_config().experiments.out_dir).resolve()
        if root not in out.resolve().parents:
            raise InputError(f"the sweep folder {out} is outside {root}", where=where)
    return out


def axis_columns(sweep: Sweep) -> list[str]:
    cols: list[str] = []
    for a in sweep.axes:
        cols.append(a.name)
        cols.extend(k for k in a.keys if k not in ("mode", "workload") and k != a.name)
    return list(dict.fromkeys(cols))


def make_row(sweep: Sweep, p: Point, res: dict) -> dict:
    row: dict[str, Any] = {"point_id": p.point_id, "index": p.index, "status": res["status"],
                           "error": res.get("error", "")}
    row.update(p.axes)
    for a in sweep.axes:  # composite axes: also the keys they set
        for k in a.keys:
            if k not in row and k not in ("mode", "workload"):
                i = a.values.index(p.axes[a.name])
                row[k] = a.assigns[i][k]
    row.update(seed=p.seed, mode=p.mode, workload=p.workload, config_hash=p.config_hash)
    rep = res.get("report")
    if rep:
        row.update(R.flatten_metrics(rep.get("metrics", {})))
    row["wall_s"] = res.get("wall_s")
    return row


@dataclass
class SweepProgress:
    total: int
    done: int = 0  # finished points, including reused ones
    reused: int = 0  # taken over from a previous run (--resume)
    failed: int = 0
    last: dict | None = None  # the row just written
    requests_done: int = 0  # requests simulated by the points run in this session
    started: float = field(default_factory=time.monotonic)
    eta: Eta = field(default_factory=Eta, repr=False)

    def __post_init__(self) -> None:
        self.eta.tick(self.started, self.done)  # the start: reused points are not a pace

    def tick(self, now: float | None = None) -> None:
        """Note the points done so far (call after each finished point)."""
        self.eta.tick(time.monotonic() if now is None else now, self.done)

    def eta_s(self) -> float | None:
        """Seconds left at the recent pace of the points finished in this session (``sim.eta``; None while
        unknown: the first point's time, which holds the workers' start and first compile, is not a pace)."""
        return self.eta.eta_s(self.total)


@dataclass
class SweepOutcome:
    out_dir: Path
    total: int
    ran: int
    reused: int
    failed: int
    wall_s: float
    rows: list[dict]
    paths: dict[str, str]
    workload_loads: dict[int, int] = field(default_factory=dict)  # worker pid -> workloads it built
    notes: list[str] = field(default_factory=list)
    damaged: int = 0  # point files --resume found damaged and ran again


OnResult = Callable[[dict], None]


def run_local(tasks: list, workers: int, on_result: OnResult, fn: Callable[[Any], dict] | None = None,
              id_key: str = "point_id", what: str = "point") -> None:
    """Run tasks on a process pool, calling on_result(result) in this thread as each finishes.

    `fn` (default: a sweep point, ``experiments.worker.run_point``) returns a dict holding the task's id
    under `id_key` and a status. A worker that dies breaks the pool: a new pool retries the unfinished
    tasks, and a task caught in two such crashes is recorded as failed, named by its id.
    """
    from experiments.pool import Pool, task_id
    from experiments.worker import run_point

    run = fn or run_point
    remaining = {task_id(t, id_key): t for t in tasks}
    crashes: dict[str, int] = {}
    while remaining:
        ex = Pool(max_workers=max(1, min(workers, len(remaining))))
        try:
            futs = {ex.submit(run, t): pid for pid, t in remaining.items()}
            pending = set(futs)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    pid = futs[f]
                    try:
                        res = f.result()
                    except BrokenProcessPool:
                        crashes[pid] = crashes.get(pid, 0) + 1
                        if crashes[pid] < 2:
                            continue
                        res = {id_key: pid, "status": "failed", "error": f"worker process died twice (killed, out "
                               f"of memory or crashed) while {what} {pid} was queued or running"}
                    except Exception as e:  # noqa: BLE001 - e.g. a result that cannot be pickled
                        res = {id_key: pid, "status": "failed", "error": f"{type(e).__name__}: {e}"}
                    remaining.pop(pid, None)
                    on_result(res)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM, a progress callback): stop now rather than wait for
            # the tasks in flight, which can take minutes; they run again on --resume.
            procs = list((getattr(ex, "_processes", None) or {}).values())
            ex.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
            raise
        ex.shutdown(wait=True)


def _sigterm_as_interrupt() -> Callable[[], None]:
    """SIGTERM ends a sweep like Ctrl-C (workers stopped, points.csv complete); returns the undo."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        signal.signal(signal.SIGTERM, old)

    return restore


def _clear(out: Path) -> None:
    for name in (R.POINTS_CSV, R.POINTS_PARQUET, R.SWEEP_JSON, R.CHECKSUMS_JSON):
        (out / name).unlink(missing_ok=True)
    for d in (R.POINTS_DIR, "plots"):
        if (out / d).is_dir():
            shutil.rmtree(out / d)


def run_sweep(
    sweep: Sweep,
    *,
    out_dir: str | Path | None = None,
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable[[SweepProgress], None] | None = None,
    ship_traces: bool = False,
) -> SweepOutcome:
    """Run every point of `sweep` not already done; return what happened and where it is."""
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})", where="--backend")
    if workers is not None and workers < 1:
        raise InputError(f"must be >= 1, got {workers}", where="--workers")
    if address and backend != "ray":
        raise InputError("--address goes with --backend ray", where="--address")
    if ship_traces and backend != "ray":
        raise InputError("Ray's object store is there with --backend ray only (the local pool reads the files)",
                         where="--ship-traces")
    if backend == "ray" and address:
        from experiments.ray_backend import session

        with session(workers, address):  # joined first: the nodes' memory is read before anything is written
            return _run_sweep(sweep, out_dir, workers, backend, address, resume, overwrite, progress, ship_traces)
    return _run_sweep(sweep, out_dir, workers, backend, address, resume, overwrite, progress, ship_traces)


def _run_sweep(sweep: Sweep, out_dir: str | Path | None, workers: int | None, backend: str, address: str | None,
               resume: bool, overwrite: bool, progress: Callable[[SweepProgress], None] | None,
               ship_traces: bool) -> SweepOutcome:
    t0 = time.perf_counter()
    points = expand(sweep)
    by_id = {p.point_id: p for p in points}
    out = _out_dir(sweep, out_dir)
    csv_path = out / R.POINTS_CSV
    notes: list[str] = []
    if csv_path.exists() and not resume and not overwrite:
        raise InputError(f"{out} already holds a sweep: pass --resume to continue it or --overwrite to start over",
                         where="--out")

    rows: dict[str, dict] = {}
    checksums: dict[str, str] = {}
    damaged = 0
    if resume:
        from experiments.resume import find_reusable, remove_stale_temporaries

        notes += remove_stale_temporaries(out)
        reuse = find_reusable(points, out, lambda p, res: make_row(sweep, p, res))
        for pid, r in reuse.rows.items():
            r["index"] = by_id[pid].index  # the spec may have grown: keep the current order
        rows, checksums, damaged = reuse.rows, reuse.checksums, len(reuse.damaged)
        notes += reuse.notes
    reused = len(rows)
    todo = [p for p in points if p.point_id not in rows]
    n_workers = workers or sweep.base_config().experiments.workers or os.cpu_count() or 1
    at_once = n_workers
    peaks: dict[str, float] | None = None
    cache_b = CACHE_B  # what a worker may keep of other points' workloads (experiments.worker)
    if backend == "local" or not address:  # this machine runs the points: fit them to its memory
        from experiments.memory_fit import fit_sweep

        # refuses before any write
        at_once, cache_b = fit_sweep(todo, sweep.spec.timing, n_workers, sweep.where("axes"))
    elif todo:  # a cluster's nodes run them: each point asks Ray for its estimate (experiments.ray_backend)
        from experiments.memory_fit import point_name, point_peaks
        from experiments.ray_backend import largest_node_b, refuse_unplaceable, session

        peaks = point_peaks(todo, sweep.spec.timing, sweep.where("axes"), lim=math.inf).peaks
        with session(workers, address) as ray:  # the sweep's own (run_sweep): a point no node holds refuses here
            refuse_unplaceable(peaks, largest_node_b(ray), "point", POINT_CHANGE,
                               name=lambda pid: point_name(by_id[pid]))  # its axis values, as the local refusal
    if csv_path.exists() and not resume:
        _clear(out)
    try:
        (out / R.POINTS_DIR).mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot create the sweep folder {out}: {getattr(e, 'strerror', None) or e}",
                         where="--out") from None
    cols = axis_columns(sweep)
    meta = {**sweep.to_dict(), "backend": backend, "points": [p.describe() for p in points],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    R.write_json(out / R.SWEEP_JSON, meta)
    R.write_json(out / R.CHECKSUMS_JSON, {"points": checksums})
    R.write_points_csv(csv_path, list(rows.values()), cols)

    state = SweepProgress(total=len(points), done=reused, reused=reused)
    loads: dict[int, int] = {}
    if progress:
        progress(state)

    def on_result(res: dict) -> None:
        p = by_id[res["point_id"]]
        row = make_row(sweep, p, res)
        rows[p.point_id] = row
        if "pid" in res:  # a process's count only grows; results finishing together arrive in any order
            loads[res["pid"]] = max(loads.get(res["pid"], 0), res.get("workload_loads", 0))
        doc = res.get("report") or {"status": res["status"], "error": res.get("error"),
                                    "traceback": res.get("traceback"), "config": p.config.model_dump(mode="json"),
                                    "config_hash": p.config_hash}
        doc["sweep"] = {"name": sweep.name, **p.describe(), "status": res["status"], "wall_s": res.get("wall_s")}
        data = R.json_bytes(doc)
        write_bytes_atomic(out / R.POINTS_DIR / f"{p.point_id}.json", data)
        checksums[p.point_id] = R.sha256(data)  # recorded after the file: a kill in between re-runs the point
        R.write_json(out / R.CHECKSUMS_JSON, {"points": checksums})
        R.write_points_csv(csv_path, list(rows.values()), cols)
        state.done += 1
        state.failed += res["status"] != "ok"
        state.requests_done += int(((res.get("report") or {}).get("workload") or {}).get("requests") or 0)
        state.last = row
        state.tick()
        if progress:
            progress(state)

    tasks = [{**p.task(sweep, os.getcwd()), "cache_b": cache_b} for p in todo]
    restore = _sigterm_as_interrupt()
    try:
        if tasks and backend == "local":
            run_local(tasks, at_once, on_result)
        elif tasks:
            from experiments.ray_backend import run_ray

            run_ray(tasks, workers=workers if at_once == n_workers else at_once, address=address,
                    on_result=on_result, ship_traces=ship_traces, memory=peaks, change=POINT_CHANGE)
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    except BaseException:
        meta["interrupted"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        raise
    finally:
        restore()
        all_rows = sorted(rows.values(), key=lambda r: int(r["index"]))
        paths = {"csv": str(csv_path), "json_dir": str(out / R.POINTS_DIR), "sweep": str(out / R.SWEEP_JSON)}
        if all_rows:
            pq = R.write_parquet(out / R.POINTS_PARQUET, R.read_points_csv(csv_path))
            if pq:
                paths["parquet"] = str(pq)
        meta["done"] = len(all_rows)
        meta["resume"] = {"reused": reused, "damaged": damaged}
        R.write_json(out / R.SWEEP_JSON, meta)
    return SweepOutcome(out_dir=out, total=len(points), ran=len(todo), reused=reused, failed=state.failed,
                        wall_s=time.perf_counter() - t0, rows=all_rows, paths=paths, workload_loads=loads,
                        notes=notes, damaged=damaged)
