"""Worker pools that die with the process that started them.

``kill -9`` of a sweep cannot run any cleanup, so the workers watch for it
themselves: on Linux the fork server (a child of the sweep process) and each
worker (a child of the fork server) ask the kernel for SIGKILL when their
parent exits (``prctl(PR_SET_PDEATHSIG)``), which works even while a worker
is inside compiled code. A watchdog thread in every worker also waits on a
pipe whose only write end the sweep process holds: end of file there means the
sweep is gone, on every platform and start method. (Caveat of PDEATHSIG: it
fires when the *thread* that started the fork server ends; a library caller
that runs sweeps from a short-lived thread gets a new fork server next time.)
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PR_SET_PDEATHSIG = 1
PRELOAD = ["experiments.pool", "experiments.worker", "experiments.modes", "sim.modes.runner", "sim.modes.single"]


def mp_context():
    """Workers fork from a clean single-threaded server, not from this process: the CLI runs
    rich's refresh thread here, and forking a threaded process can copy a held lock into the
    child. The simulator is preloaded in the server, so a worker starts in milliseconds."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return mp.get_context("spawn")


def _die_with_parent_linux() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux / no prctl: the watchdog thread remains
        pass


def _in_forkserver() -> bool:
    """True while multiprocessing's fork server imports its preload list (this module is on it)."""
    f = sys._getframe()
    while f is not None:
        code = f.f_code
        if code.co_name == "main" and code.co_filename.endswith(os.path.join("multiprocessing", "forkserver.py")):
            return True
        f = f.f_back  # type: ignore[assignment]
    return False


def _watch(conn: Any) -> None:
    try:
        conn.recv()  # nothing is ever sent: returns only by EOF, when the sweep process is gone
    except (EOFError, OSError):
        pass
    os._exit(1)


def init_worker(conn: Any) -> None:
    """Pool initializer: die when the sweep process dies (see the module docstring)."""
    _die_with_parent_linux()
    if conn.poll(0):  # the sweep died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(conn,), daemon=True, name="parent-watch").start()


def task_id(task: Any, id_key: str = "point_id") -> str:
    """A task's id (either backend): a sweep point's dict entry, or a pod task's attribute."""
    return str(task[id_key] if isinstance(task, dict) else getattr(task, id_key))


class Pool(ProcessPoolExecutor):
    """A ProcessPoolExecutor whose workers exit when this process exits, even by SIGKILL."""

    def __init__(self, max_workers: int) -> None:
        ctx = mp_context()
        self._watch_r, self._watch_w = ctx.Pipe(duplex=False)
        super().__init__(max_workers=max_workers, mp_context=ctx, initializer=init_worker,
                         initargs=(self._watch_r,))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        self._watch_w.close()  # any worker still running (wait=False: interrupted) exits now
        self._watch_r.close()


if _in_forkserver():
    # The fork server is a child of the sweep process: it gets SIGKILL when the sweep dies, and its
    # workers (PR_SET_PDEATHSIG in init_worker) follow it, even inside compiled code holding the GIL.
    _die_with_parent_linux()
    if os.getppid() == 1:  # the sweep died before that took effect
        os._exit(1)
