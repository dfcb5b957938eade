"""What a worker process does for one sweep point (shared by the local pool and Ray).

The workload is cached per process, keyed by what defines it (the trace
section, or the synthetic section + seed), so a worker that evaluates many
points of the same workload loads or generates it once.
"""
from __future__ import annotations

import json
import os
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sim.config import Config, config_with
from sim.errors import InputError
from trace.workload import Workload

MAX_CACHED_WORKLOADS = 6  # a sweep over a workload axis keeps a few; bounded so RSS stays flat
# Bytes of other points' workloads a worker keeps besides the one its point uses: the driver counts them
# in every point's peak (experiments.memory_fit), and lowers this per sweep (the task's ``cache_b``) so that
# the largest point plus what its worker keeps still fits the bound.
CACHE_B = 256 * 1024**2
_WORKLOADS: OrderedDict[str, Workload] = OrderedDict()
STATS = {"workload_loads": 0}  # per process: how many times a workload was actually built


def workload_key(cfg: Config) -> str:
    """What determines the workload of a config (and nothing else)."""
    if cfg.trace.path:
        d: dict[str, Any] = {"trace": cfg.trace.model_dump(mode="json")}
    else:
        d = {"synthetic": cfg.synthetic.model_dump(mode="json"), "seed": cfg.seed, "limit": cfg.trace.limit}
    return json.dumps(d, sort_keys=True)


def trace_copy(data: bytes, name: str) -> Path:
    """A local file holding `data` (a trace shipped through Ray's object store), written once per content."""
    import hashlib
    import tempfile

    from sim.io_safe import write_bytes_atomic

    # one folder per content, the file under its own name (the workload is named after its file)
    d = Path(tempfile.gettempdir()) / "kvsim-traces" / hashlib.sha256(data).hexdigest()[:16]
    d.mkdir(parents=True, exist_ok=True)
    p = d / Path(name).name
    if not p.exists():
        write_bytes_atomic(p, data)
    return p


def _keep_within(key: str | None, cache_b: int) -> None:
    """Drop the least recently used workloads other than `key` until at most MAX_CACHED_WORKLOADS - 1 of
    them, of at most `cache_b` bytes together, remain."""
    others = [k for k in _WORKLOADS if k != key]  # oldest first
    held = sum(_WORKLOADS[k].nbytes() for k in others)
    while others and (len(others) >= MAX_CACHED_WORKLOADS or held > cache_b):
        held -= _WORKLOADS.pop(others.pop(0)).nbytes()


def load_workload(cfg: Config, cwd: str | None = None, trace_file: str | None = None,
                  cache_b: int = CACHE_B) -> Workload:
    """The point's workload, from this process's cache when an earlier point built it; the others this
    process keeps stay within `cache_b` bytes (trimmed before a new one is built, so they never add to a
    build's peak beyond that)."""
    from trace.source import workload_from_config

    key = workload_key(cfg)
    if key in _WORKLOADS:
        _WORKLOADS.move_to_end(key)
        _keep_within(key, cache_b)
        return _WORKLOADS[key]
    _keep_within(None, cache_b)
    load_cfg = cfg
    p = cfg.trace.path
    # A Ray worker may run elsewhere than the driver's directory: relative
    # trace paths are the driver's (the repository root).
    if p and trace_file:  # shipped through the object store: read the local copy, report the given path
        load_cfg = config_with(cfg, {"trace.path": trace_file})
    elif p and cwd and not Path(p).is_absolute() and not Path(p).exists() and (Path(cwd) / p).exists():
        load_cfg = config_with(cfg, {"trace.path": str(Path(cwd) / p)})
    w, _ = workload_from_config(load_cfg)
    STATS["workload_loads"] += 1
    _WORKLOADS[key] = w
    return w


def run_point(task: dict) -> dict:
    """Evaluate one point; never raises for a failing point (the error is the result)."""
    from experiments.modes import evaluate, parse_options

    t0 = time.perf_counter()
    out: dict[str, Any] = {"point_id": task["point_id"], "pid": os.getpid()}
    try:
        cfg = Config.model_validate(task["config"])
        mode = task["mode"]
        w = load_workload(cfg, task.get("cwd"), task.get("trace_file"), int(task.get("cache_b", CACHE_B)))
        opts = parse_options(mode, task.get("options"), where="options")
        out["report"] = evaluate(cfg, mode, w, bool(task.get("timing", True)), opts)
        out["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - a failing point is recorded and the sweep goes on
        out["status"] = "failed"
        out["error"] = str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
    out["wall_s"] = time.perf_counter() - t0
    out["workload_loads"] = STATS["workload_loads"]
    return out


def run_point_shipped(task: dict, trace: bytes | None) -> dict:
    """run_point with the trace file's bytes from Ray's object store (``sweep --ship-traces``)."""
    if trace is not None:
        task = {**task, "trace_file": str(trace_copy(trace, task["config"]["trace"]["path"]))}
    return run_point(task)
