"""`--backend ray`: the same point tasks as the local pool, as Ray tasks.

``ray`` is an optional extra (``pip install 'ray>=2.9'``). With no address a
local Ray instance is started (and shut down afterwards) with ``--workers``
CPUs (default: all); ``--address auto`` or ``HOST:PORT`` joins a running
cluster, shipping this repository as the job's working directory. The tasks
run ``experiments.worker.run_point``, the very function of the local
backend, and Ray reuses its worker processes, so the per-process workload
cache works the same way and the results are identical for the same seeds.

Trace files are read by the workers: on a multi-node cluster they must be
at the same path on every node (or under the repository, which is shipped).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sim.errors import InputError

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


def run_ray(tasks: list[dict], *, workers: int | None, address: str | None,
            on_result: Callable[[dict], None]) -> None:
    """Run `tasks` as Ray tasks; call on_result(result) in this thread as each finishes."""
    ray = _import_ray()
    from experiments.worker import run_point

    started_here = False
    if not ray.is_initialized():
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
        started_here = True
    try:
        # max_retries: a worker process that dies is retried once by Ray, as the local pool does.
        remote = ray.remote(num_cpus=1, max_retries=1)(run_point)
        refs = {remote.remote(t): t["point_id"] for t in tasks}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    res = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - worker died twice, or the task could not run
                    res = {"point_id": refs[ref], "status": "failed", "error": f"ray: {type(e).__name__}: {e}"}
                on_result(res)
    except BaseException:
        for ref in pending if "pending" in locals() else []:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()
