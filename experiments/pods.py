"""Where the pods of a partitioned cluster replay run (``run --pods K``): the sweep's backends.

``pod_runner`` returns a ``sim.modes.partition_run.PodRunner``: with one worker
and the local backend the pods run one after another in this process (the
reference), else as tasks on the local process pool (``--workers N``) or on
Ray (``--backend ray [--address HOST:PORT]``), each pod on its own worker.
A pod's task carries its requests (already partitioned and re-blocked), so a
Ray worker reads no trace file.
"""
from __future__ import annotations

from collections.abc import Callable

from sim.errors import InputError
from sim.modes.partition import PodTask
from sim.modes.partition_run import PodRunner, in_process, run_pod_task


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

            run_ray(tasks, workers=workers, address=address, on_result=on_result, fn=run_pod_task,
                    id_key="task_id", what="pod task")

    return run
