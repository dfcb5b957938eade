"""`--backend ray`: the same point tasks as the local pool, as Ray tasks.

``ray`` is an optional extra (``pip install 'ray>=2.9'``). With no address a
local Ray instance is started (and shut down afterwards) with ``--workers``
CPUs (default: all); ``--address auto`` or ``HOST:PORT`` joins a running
cluster, shipping this repository as the job's working directory. The tasks
run ``experiments.worker.run_point``, the very function of the local
backend, and Ray reuses its worker processes, so the per-process workload
cache works the same way and the results are identical for the same seeds.

Trace files are read by the workers: on a multi-node cluster they must be
at the same path on every node (a shared file system, or under the
repository, which is shipped), or, with ``ship_traces`` (``sweep
--ship-traces``), the driver puts each trace file into Ray's object store
once and the workers read a local copy of it.

The same runner executes the pods of a partitioned cluster replay
(``run --pods K --backend ray``, ``sim.modes.partition_run``).

Memory on a cluster (``memory``): the driver cannot know which node runs a task, so each task asks
Ray for its estimated peak as Ray's ``memory`` resource. Ray then starts a task only on a node with
that much of the resource unclaimed, and never runs tasks together beyond a node's resource. A task
larger than every alive node's resource would wait forever (Ray calls it infeasible), so it is refused
before any task is submitted, naming it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from sim.errors import InputError
from sim.modes.memory import GiB

REPO = Path(__file__).resolve().parent.parent
# Not shipped to a remote cluster: outputs, VCS data, tests, the web UI.
EXCLUDES = ["results/", ".git/", "tests/", "web/", "benchmarks/", "**/__pycache__/", "*.png", "*.parquet"]


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("the ray backend needs the `ray` package: pip install 'ray>=2.9' "
                         "(the project's [ray] extra), or use --backend local", where="--backend") from None
    return ray


def _died(e: BaseException, what: str, tid: str) -> str:
    """One clear line for a task Ray could not finish, naming it."""
    name = type(e).__name__
    first = (str(e).strip().splitlines() or [""])[0][:200]
    if "OutOfMemory" in name:
        why = "its Ray worker ran out of memory (killed by Ray's memory monitor)"
    elif "NodeDied" in name or "node" in first.lower() and "died" in first.lower():
        why = "the Ray node running it died or left the cluster"
    elif "WorkerCrashed" in name or "ActorDied" in name or "died" in first.lower():
        why = "its Ray worker process died (killed, out of memory or crashed), twice counting Ray's retry"
    else:
        why = "Ray could not run it"
    return f"{what} {tid}: {why} ({name}: {first})"


def ship_trace_files(tasks: list[dict], ray) -> dict[str, object]:
    """Put each trace file the tasks read into Ray's object store once: path -> ObjectRef.

    For clusters whose nodes do not see the driver's files: the workers get the bytes from the
    object store and read them from a local copy (``experiments.worker.trace_copy``)."""
    refs: dict[str, object] = {}
    for t in tasks:
        p = (t["config"].get("trace") or {}).get("path")
        if p and p not in refs:
            f = Path(p) if Path(p).is_absolute() else Path(t.get("cwd") or ".") / p
            try:
                refs[p] = ray.put(f.read_bytes())
            except OSError as e:
                raise InputError(f"cannot read the trace to ship it: {e.strerror or e}", where=str(f)) from None
    return refs


@contextmanager
def session(workers: int | None, address: str | None) -> Iterator:
    """`ray`, connected for the block: to the cluster at `address` (shipping this repository as the job's
    working directory), else to a local instance of `workers` CPUs started here; shut down after the block
    when connected here (a caller's open session is reused: run_ray inside a sweep's)."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        # Joining a cluster: ship the code (the `trace` package must shadow the stdlib there too).
        ray.init(address=address, runtime_env={"working_dir": str(REPO), "excludes": EXCLUDES},
                 log_to_driver=False)
    else:
        # The local instance's processes inherit this environment: the repository
        # on PYTHONPATH is enough (a runtime_env would cost seconds of setup).
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([old] if old else []))
        try:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        finally:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old
    try:
        yield ray
    finally:
        ray.shutdown()


def largest_node_b(ray) -> float:
    """The largest `memory` resource (bytes) of the cluster's alive nodes: what one task may ask for."""
    return max((float(n.get("Resources", {}).get("memory", 0)) for n in ray.nodes() if n.get("Alive")), default=0.0)


def refuse_unplaceable(memory: Mapping[str, float], node_b: float, what: str, change: str,
                       name: Callable[[str], str] | None = None) -> None:
    """One line for the largest task no alive node can hold (Ray would keep it pending forever); `name`:
    how the line names a task id (default: what + the id)."""
    over = {tid: b for tid, b in memory.items() if b > node_b}
    if not over:
        return
    tid = max(sorted(over), key=lambda t: over[t])  # the largest, the first by id among equals
    more = f" (and {len(over) - 1} more)" if len(over) > 1 else ""
    who = name(tid) if name else f"{what} {tid}"
    raise InputError(f"{who}{more} needs an estimated {over[tid] / GiB:.2f} GiB of memory, more than any "
                     f"node of the Ray cluster has (largest: {node_b / GiB:.2f} GiB of Ray's `memory` resource), "
                     f"so no node could run it; {change}, or add a node with more memory "
                     "(its `ray start --memory` resource)", where="--address")


def run_ray(tasks: list, *, workers: int | None, address: str | None, on_result: Callable[[dict], None],
            fn: Callable | None = None, id_key: str = "point_id", what: str = "point",
            ship_traces: bool = False, memory: Mapping[str, float] | None = None, change: str = "") -> None:
    """Run `tasks` as Ray tasks; call on_result(result) in this thread as each finishes.

    `fn` (default: a sweep point) returns a dict with the task's id under `id_key`; a task Ray
    cannot finish (its worker or node died twice, out of memory) becomes a failed result naming
    it. `ship_traces`: sweep points read their trace files from the object store. `memory`: task id
    -> its estimated peak in bytes, asked of Ray as the task's `memory` resource; a task no alive
    node can hold is refused first (`change`: the setting that makes it smaller)."""
    from experiments.pool import task_id
    from experiments.worker import run_point, run_point_shipped

    with session(workers, address) as ray:
        pending: list = []
        try:
            if memory is not None:  # before anything is submitted: an infeasible task would wait forever
                refuse_unplaceable({task_id(t, id_key): memory[task_id(t, id_key)] for t in tasks},
                                   largest_node_b(ray), what, change)
            blobs = ship_trace_files(tasks, ray) if ship_traces and fn is None else {}
            # max_retries: a worker process that dies is retried once by Ray, as the local pool does.
            remote = ray.remote(num_cpus=1, max_retries=1)(run_point_shipped if blobs else (fn or run_point))
            refs = {}
            for t in tasks:
                tid = task_id(t, id_key)
                r = remote.options(memory=int(memory[tid])) if memory is not None else remote
                p = (t["config"].get("trace") or {}).get("path") if blobs else None
                ref = r.remote(t, blobs.get(p or "")) if blobs else r.remote(t)
                refs[ref] = tid
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        res = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - worker died twice, or the task could not run
                        res = {id_key: refs[ref], "status": "failed", "error": _died(e, what, refs[ref])}
                    on_result(res)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
