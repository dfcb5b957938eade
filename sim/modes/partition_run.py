"""Running a partitioned cluster replay: pods as tasks (in this process, a local pool or Ray), kept as
they finish, merged when all are in.

``run_partitioned`` builds the pod tasks (``sim.modes.partition``), reuses
the pods a previous run already stored (``PodStore``: ``<dir>/<key>.npz``,
written atomically, keyed by everything that defines the pod: its config,
policy, router, timing and requests), hands the rest to a ``PodRunner`` and
merges (``sim.modes.partition_merge``). Progress counts the requests of the
finished pods. A pod whose worker failed, died or ran out of memory is named
in the error; the pods that finished are stored first, so a rerun only
simulates the missing ones.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from sim.config import Config
from sim.errors import InputError
from sim.io_safe import write_bytes_atomic
from sim.modes.learned_window import WindowCheck
from sim.modes.partition import Partition, PodTask, pod_tasks, run_pod
from sim.modes.partition_merge import ARRAYS, MergedClusterResult, Merger, PodResult, Reduce, spills_rows
from sim.modes.result_rows import CLUSTER_COLUMNS, ROW_BLOCK, row_bytes
from sim.report.request_stream import RequestSink
from sim.report.requests import cluster_requests
from sim.report.saturation import ArrivalSpan
from trace.workload import Workload

SCRATCH_PREFIX = "kvsim-pod-rows-"  # the spilled rows' folder, in the system temporary folder (TMPDIR)
# runner(tasks, on_result): runs run_pod_task on each task anywhere, calls on_result(result dict) here
PodRunner = Callable[[list[PodTask], Callable[[dict], None]], None]
# 2: the key hashes the block lists as held (parent form for compact pods); 3: a pod of a run that merges totals
# stores its totals, and its rows only for a per-request file (PodTask.reduce_span and keep_rows, in the key)
STORE_VERSION = 3


def run_pod_task(task: PodTask, progress: Callable[[int], None] | None = None) -> dict:
    """One pod, never raising: {"task_id", "status": "ok", "result": PodResult}, status "refused" + error
    (the pod refused its input, e.g. its learned window over the memory bound) or "failed" + error.
    `progress(i)`: the pod's requests done so far (in-process runs: a 10M-request run has pods of minutes)."""
    t0 = time.perf_counter()
    try:
        return {"task_id": task.task_id, "status": "ok", "result": run_pod(task, progress),
                "wall_s": time.perf_counter() - t0}
    except InputError as e:  # its one line, as the driver would have refused it
        return {"task_id": task.task_id, "status": "refused", "error": str(e), "wall_s": time.perf_counter() - t0}
    except Exception as e:  # noqa: BLE001 - reported by the driver, naming the pod
        return {"task_id": task.task_id, "status": "failed", "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(), "wall_s": time.perf_counter() - t0}


def in_process(tasks: list[PodTask], on_result: Callable[[dict], None]) -> None:
    """The reference runner: the pods one after another in this process."""
    for t in tasks:
        on_result(run_pod_task(t))


def pod_key(task: PodTask) -> str:
    """Everything that defines the pod's result (the workload by content), as a short hash."""
    h = hashlib.sha256()
    span = task.reduce_span
    h.update(json.dumps([STORE_VERSION, task.config, task.policy, task.router, task.timing, task.pod,
                         None if span is None else [span.first_s, span.last_s, span.requests], task.keep_rows],
                        sort_keys=True).encode())
    w = task.workload
    pb = w.prefix_blocks()  # the block lists as held (a compact pod is never expanded for its key)
    for a in (task.index, w.arrival_ms, w.input_tokens, w.output_tokens, w.session_id, w.block_offsets,
              pb.parent, pb.shared, pb.own_off, pb.ids_stored()):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


class PodStore:
    """Finished pods in a folder, one ``<key>.npz`` each (no pickles: arrays and one JSON string)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"pod-{key}.npz"

    def save(self, key: str, r: PodResult) -> None:
        meta = {"key": key, "pod": r.pod, "task_id": r.task_id, "cache": r.cache, "network": r.network,
                "scalars": r.scalars, "io": r.io, "prefetch": r.prefetch,
                "hist": None if r.hist is None else {"total": r.hist["total"], "sum_s": r.hist["sum_s"]}}
        arrays = {f"a_{k}": v for k, v in r.arrays.items()}
        if r.totals is not None:
            t_arrays, meta["totals"] = r.totals
            arrays.update({f"t_{k}": v for k, v in t_arrays.items()})
        arrays["index"] = r.index
        arrays["meta"] = np.array(json.dumps(meta))
        if r.hist is not None:
            arrays["hist_counts"] = r.hist["counts"]
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub types the keywords as allow_pickle
        self.folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.path(key), buf.getvalue())

    def load(self, key: str) -> PodResult | None:
        """The stored pod, or None when absent, unreadable or not this pod's (it then runs again)."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("key") != key:
                    return None
                totals = None
                if "totals" in meta:
                    totals = ({k[2:]: z[k] for k in z.files if k.startswith("t_")}, meta["totals"])
                arrays = {k: z[f"a_{k}"] for k in ARRAYS} if f"a_{ARRAYS[0]}" in z.files else {}
                hist = None
                if meta["hist"] is not None:
                    hist = {"counts": z["hist_counts"], **meta["hist"]}
                return PodResult(pod=meta["pod"], task_id=meta["task_id"], index=z["index"], arrays=arrays,
                                 cache=meta["cache"], network=meta["network"], scalars=meta["scalars"], io=meta["io"],
                                 prefetch=meta["prefetch"], hist=hist, totals=totals)
        except (OSError, ValueError, KeyError, TypeError):
            return None


def spill_bytes(n_requests: int) -> int:
    """The disk the pods' spilled rows take (``Merger(spill=)``): every column as saved (a hit-rate-only run's
    NaN latencies are written out too) and the request index, headers aside."""
    return n_requests * (row_bytes(CLUSTER_COLUMNS, timing=True) + 8)


def check_scratch(n_requests: int) -> None:
    """Refuse up front a per-request file of a pods run whose spilled rows do not fit the scratch folder's free
    space (the folder ``run_partitioned`` spills to), rather than fail at the end with the pods' work done."""
    folder = tempfile.gettempdir()
    need, free = spill_bytes(n_requests), shutil.disk_usage(folder).free
    if need > free:
        raise InputError(f"the per-request file of {n_requests:,} requests is written from the pods' rows spilled to "
                         f"{folder}: {need / 2**30:.2f} GiB needed, {free / 2**30:.2f} GiB free there; set TMPDIR "
                         "to a folder with room", where="--requests-out")


def _failure_message(failed: list[tuple[PodTask, dict]], kept: int, store: PodStore | None) -> str:
    t, res = min(failed, key=lambda f: f[0].pod)  # the lowest pod: the same line whichever failed first
    more = f" ({len(failed) - 1} more pod(s) failed too)" if len(failed) > 1 else ""
    where = (f"; the {kept} finished pod(s) are kept in {store.folder} and a rerun with the same --out reuses them"
             if store is not None else "")
    verb = "refused" if res.get("status") == "refused" else "failed"
    return f"pod {t.pod} ({t.task_id}, {len(t.index):,} requests) {verb}: {res.get('error')}{more}{where}"


def run_partitioned(cfg: Config, w: Workload, policy: str, router: str, part: Partition, *, timing: bool,
                    setup, runner: PodRunner | None = None, store: PodStore | None = None,
                    progress: Callable[[int], None] | None = None, rows: bool = True,
                    pods: np.ndarray | None = None, window: WindowCheck | None = None,
                    pod_b: float = 0.0, requests: RequestSink | None = None) -> MergedClusterResult:
    """Replay the prepared workload `w` on the partitioned deployment (`setup`: the whole one). `rows`:
    merge the per-request rows (``partition_merge.needs_rows``); else only their totals. `pods`:
    the request -> pod assignment when already computed. `window`: the learned window re-check each
    learned pod makes after its first pass (``sim.modes.learned_window``); a refused pod stops the run as
    a failed one does. `pod_b`: the estimated peak of one pod's worker (each task's Ray memory resource).
    `requests`: with `rows` False, the per-request file (a RequestStream): the pods return their rows as well
    as their totals, the driver spills each pod's to a scratch folder as it arrives and writes the file from
    there in request order, a block at a time, then removes the folder."""
    t0 = time.perf_counter()
    lay = setup.layout
    reduce = None if rows else Reduce(cfg, timing, lay.n_workers, lay.topo.n_racks, lay.workers_per_rack,
                                      ArrivalSpan.of(w.arrival_ms / 1000.0))
    spill = spills_rows(rows, requests)
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX) if spill else nullcontext() as folder:
        tasks = pod_tasks(cfg, w, part, policy, router, timing, pods, window, pod_b,
                          reduce_span=None if reduce is None else reduce.span, keep_rows=spill)
        # each finished pod's arrays go straight into the whole run's (or its totals, its rows to `folder`)
        merged = Merger(len(w), reduce, Path(folder) if folder else None)
        _run_pods(tasks, merged, w, runner, store, progress)
        res = merged.result(policy=policy, router=router, timing=timing, setup=setup, workload=w,
                            wall_s=time.perf_counter() - t0)
        if spill:
            assert requests is not None  # spills_rows says so
            labels = {"router": router, "policy": policy}
            for b in merged.row_blocks(ROW_BLOCK):
                requests.append(cluster_requests(cfg, w, b, labels, timing, lay.workers_per_rack))
    return res


def _run_pods(tasks: list[PodTask], merged: Merger, w: Workload, runner: PodRunner | None, store: PodStore | None,
              progress: Callable[[int], None] | None) -> None:
    """Merge the stored pods, run the others (by `runner`, in this process by default) and merge them as they
    finish; a failed or refused pod raises, naming it, once the others are kept."""
    todo = []
    for t in tasks:
        t.key = pod_key(t)
        r = store.load(t.key) if store is not None else None
        if r is not None:
            merged.add(r)
        else:
            todo.append(t)
    by_id = {t.task_id: t for t in tasks}
    done_requests = [sum(len(p.index) for p in merged.pods)]
    if progress:
        progress(done_requests[0])
    failed: list[tuple[PodTask, dict]] = []

    def on_result(res: dict) -> None:
        t = by_id[res["task_id"]]
        if res.get("status") != "ok":
            failed.append((t, res))
            return
        r = res["result"]
        if store is not None:
            store.save(t.key, r)  # kept at once: a later failure or kill loses nothing finished
        merged.add(r)
        done_requests[0] += len(t.index)
        if progress and done_requests[0] < len(w):  # the caller reports the end (one "done" line)
            progress(done_requests[0])

    if todo and runner in (None, in_process) and progress:
        report = progress

        def inside(i: int) -> None:  # requests done: the finished pods' plus this pod's so far
            if done_requests[0] + i < len(w):
                report(done_requests[0] + i)

        for t in todo:  # the reference runner, with progress inside each pod
            on_result(run_pod_task(t, inside))
            t.workload = t.workload.head(0)  # done here: its requests' copy is not needed any more
    elif todo:
        (runner or in_process)(todo, on_result)
    if failed:
        raise InputError(_failure_message(failed, len(merged.pods), store), where="--pods")


__all__ = ["PodRunner", "PodStore", "in_process", "pod_key", "run_partitioned", "run_pod_task"]
