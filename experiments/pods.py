"""Where the pods of a partitioned cluster replay run (``run --pods K``): the sweep's backends.

``pod_runner`` returns a ``sim.modes.partition_run.PodRunner``: with one worker
and the local backend the pods run one after another in this process (the
reference), else as tasks on the local process pool (``--workers N``) or on
Ray (``--backend ray [--address HOST:PORT]``), each pod on its own worker.
A pod's task carries its requests (already partitioned and re-blocked), so a
Ray worker reads no trace file. On a Ray cluster (``--address``) each pod's
task asks Ray for its worker's estimated peak (``PodTask.peak_b``) as its
``memory`` resource; a pod no node can hold is refused before any runs.
"""
from __future__ import annotations

from collections.abc import Callable

from sim.errors import InputError
from sim.modes.partition import PodTask
from sim.modes.partition_run import PodRunner, in_process, run_pod_task

# what makes a pod smaller, for the refusal of a pod no Ray node can hold
POD_CHANGE = "use more pods (--pods K, or cluster.pods) or a smaller workload"


def pod_runner(backend: str = "local", workers: int | None = None, address: str | None = None) -> PodRunner:
    if backend not in ("local", "ray"):
        raise InputError(f"unknown backend {backend!r} (known: local, ray)", where="--backend")
    if workers is not None and workers < 1:
        raise InputError(f"must be >= 1, got {workers}", where="--workers")
    if address and backend != "ray":
        raise InputError("--address goes with --backend ray", where="--address")
    if backend == "local" and (workers or 1) == 1:
        return in_process

    def run(tasks: list[PodTask], on_result: Callable[[dict], None]) -> None:
        if backend == "local":
            from experiments.engine import run_local

            run_local(tasks, workers or 1, on_result, fn=run_pod_task, id_key="task_id", what="pod task")
        else:
            from experiments.ray_backend import run_ray

            # on a cluster each pod asks Ray for its worker's estimated peak (this machine's was checked)
            memory = {t.task_id: t.peak_b for t in tasks} if address else None
            run_ray(tasks, workers=workers, address=address, on_result=on_result, fn=run_pod_task,
                    id_key="task_id", what="pod task", memory=memory, change=POD_CHANGE)

    return run
