"""A sweep's memory, checked by the driver before any point runs (the bound: sim.modes.memory).

A worker refuses a point over ``KVSIM_MEMORY_LIMIT_GIB`` when the point's turn comes (trace.source,
sim.modes.runner), after other points ran; and each worker checks only itself, so N workers each under
the bound can together exceed the machine and be killed by the kernel. Before the sweep writes anything,
the driver therefore

* estimates the peak of every point still to run as its worker will: the synthetic generation
  (``synthetic_estimate``, before generating) and the run's own estimate (``experiments.modes.point_need``:
  the runner's setup and arithmetic, nothing replayed) on the point's workload, which it builds here once
  per distinct workload (``experiments.worker.workload_key``, the workers' cache key) and drops before the
  next. A point over the bound refuses the whole sweep with one line naming it;
* counts in each point's peak the other points' workloads its worker may still keep cached
  (``experiments.worker``: at most ``cache_b`` bytes, the largest five of the sweep's other workloads at most),
  ``cache_b`` lowered for the sweep so that the largest point plus that still fits the bound;
* fits the points that run at once: when the largest `workers` peaks together exceed the bound, fewer
  run at once (the most whose largest peaks fit), said in one printed line.

Building the workload costs the driver what one worker pays to build it (a generator run, or loading the
trace file once): exact where a bound from the spec alone (requests, file size) could not be (the cache
slots follow the distinct blocks, known only once the workload exists).
"""
from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sim.errors import InputError
from sim.modes.memory import BASE_B, ENV, Estimate, GiB, limit_bytes, refusal, synthetic_estimate


def point_name(p: Any) -> str:
    """A point as a refusal names it: its id, axis values and seed."""
    return f"point {p.point_id} ({json.dumps(p.axes, default=str)}, seed {p.seed})"


def _refuse(p: Any, est: Estimate, what: str, change: str, lim: float, where: str, others: int = 0) -> InputError:
    more = f" (and {others} more point(s) of its workload)" if others else ""
    return InputError(f"{point_name(p)}{more}: {refusal(est, what=what, change=change, lim=lim)}", where=where)


@dataclass(frozen=True)
class SweepPeaks:
    """What the driver knows of its points' memory before any runs."""

    peaks: dict[str, float]  # point_id -> its worker's estimated peak, with the workloads the worker keeps
    cache_b: int  # bytes of other points' workloads each worker may keep (each task's ``cache_b``)


def point_peaks(points: Sequence[Any], timing: bool, where: str, lim: float | None = None) -> SweepPeaks:
    """Each point's estimated worker peak: the larger of generating its workload and running it, plus the other
    workloads its worker may keep cached (module doc); an InputError naming the first point whose own estimate
    exceeds the bound. A point whose workload or setup cannot be built gets BASE_B: it fails in its worker with
    its own message, as it would have."""
    from experiments.worker import workload_key

    lim = limit_bytes() if lim is None else lim
    groups: dict[str, list[Any]] = {}
    for p in points:
        groups.setdefault(workload_key(p.config), []).append(p)
    own: dict[str, float] = {}
    sizes: dict[str, float] = {}  # workload key -> its bytes
    for key, group in groups.items():
        peaks, sizes[key] = _group_peaks(group, timing, where, lim)
        own.update(peaks)
    return _with_cached(groups, own, sizes, lim)


def _group_peaks(group: list[Any], timing: bool, where: str, lim: float) -> tuple[dict[str, float], float]:
    """(the own peaks of the points sharing one workload, built here once; the workload's bytes, inf when it
    cannot be built here, so a worker keeping it is counted at the most it may keep)."""
    from experiments.modes import point_need
    from trace.source import workload_from_config

    cfg = group[0].config
    floor = float(BASE_B)
    if not cfg.trace.path:  # generating it: checked before generating, as trace.source does
        gen = synthetic_estimate(cfg.synthetic)
        if gen.total > lim:
            raise _refuse(group[0], gen, f"generating {cfg.synthetic.requests:,} synthetic requests",
                          "lower synthetic.requests", lim, where, len(group) - 1)
        floor = gen.total
    try:
        w, _ = workload_from_config(cfg)
    except Exception:  # noqa: BLE001 - its points fail in their workers with this error, as before
        return {p.point_id: floor for p in group}, math.inf
    size = float(w.nbytes())
    peaks: dict[str, float] = {}
    for p in group:
        try:
            need = point_need(p.config, p.mode, w, timing)
        except Exception:  # noqa: BLE001 - a bad point fails in its worker, named there
            peaks[p.point_id] = floor
            continue
        if need is None:  # an empty workload: nothing to replay
            peaks[p.point_id] = floor
            continue
        if need.est.total > lim:
            raise _refuse(p, need.est, need.what, need.change, lim, where)
        peaks[p.point_id] = max(floor, need.est.total)
    return peaks, size


def _with_cached(groups: dict[str, list[Any]], own: dict[str, float], sizes: dict[str, float],
                 lim: float) -> SweepPeaks:
    """Each point's own peak plus what its worker may keep of the other workloads: the largest
    MAX_CACHED_WORKLOADS - 1 of them, at most `cache_b` bytes together, ``experiments.worker.CACHE_B`` lowered
    until the largest own peak plus it fits `lim`."""
    from experiments.worker import CACHE_B, MAX_CACHED_WORKLOADS

    top = max(own.values(), default=0.0)
    cache_b = CACHE_B if math.isinf(lim) else max(0, min(CACHE_B, int(lim - top)))
    peaks: dict[str, float] = {}
    for key, group in groups.items():
        others = sorted((b for k, b in sizes.items() if k != key), reverse=True)[:MAX_CACHED_WORKLOADS - 1]
        held = min(cache_b, sum(others))
        peaks.update((p.point_id, own[p.point_id] + held) for p in group)
    return SweepPeaks(peaks, cache_b)


def fit_workers(peaks: Sequence[float], workers: int, lim: float) -> int:
    """How many points may run at once: at most `workers` (and the points), and the largest that many
    peaks together within `lim`; at least 1 (each point alone fits: point_peaks refused the others)."""
    big = sorted(peaks, reverse=True)
    k = max(1, min(workers, len(big)))
    while k > 1 and sum(big[:k]) > lim:
        k -= 1
    return k


def fit_line(peaks: Sequence[float], wanted: int, k: int, lim: float, what: str = "sweep", unit: str = "points") -> str:
    """The one line saying that `k` points run at once instead of `wanted`, with the numbers."""
    big = sorted(peaks, reverse=True)
    return (f"{what}: {wanted} {unit} at once would need up to {sum(big[:wanted]) / GiB:.2f} GiB together (largest "
            f"{big[0] / GiB:.2f} GiB), over the {lim / GiB:.2f} GiB limit; running {k} at once "
            f"({sum(big[:k]) / GiB:.2f} GiB at most); set --workers (experiments.workers) or {ENV} to choose")


def at_once(peaks: Sequence[float], workers: int, what: str = "sweep", unit: str = "points",
            lim: float | None = None) -> int:
    """`workers`, or fewer when the largest `workers` of `peaks` exceed the bound together (printing the
    line that says so)."""
    lim = limit_bytes() if lim is None else lim
    wanted = max(1, min(workers, len(peaks)))
    k = fit_workers(peaks, workers, lim)
    if k >= wanted:
        return workers
    print(fit_line(peaks, wanted, k, lim, what, unit), file=sys.stderr)
    return k


def fit_sweep(points: Sequence[Any], timing: bool, workers: int, where: str) -> tuple[int, int]:
    """The points' check: (how many run at once, the bytes each worker may keep of other points' workloads);
    see the module docstring. With no known bound (a machine whose memory is unknown) nothing is built."""
    from experiments.worker import CACHE_B

    lim = limit_bytes()
    if not points or math.isinf(lim):
        return workers, CACHE_B
    sp = point_peaks(points, timing, where, lim)
    return at_once(list(sp.peaks.values()), workers, lim=lim), sp.cache_b
