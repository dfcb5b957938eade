"""Merging pods exactly: what a pod returns, and the whole deployment's result built from them.

A pod returns plain data (``PodResult``: numpy arrays and dicts of numbers,
no cache or SimPy objects), so it can come from another process or machine
or from a file. ``Merger`` puts the per-request arrays back in request order as each pod arrives
(each request ran in exactly one pod), sums the counters (tier statistics,
block moves, network bytes and busy seconds, I/O, prefetch counts; ``None``
in any pod stays ``None``), merges the iteration histograms bin by bin, and
offsets each pod's worker ids into the whole deployment's numbering (pod k
holds racks k x racks/K ... (k+1) x racks/K - 1). The result has every field
``sim.report.cluster.cluster_metrics`` and ``cluster_requests`` read, so the
report's quantiles come from the full per-request arrays: exact, not
approximated.

A run that needs no row in memory (its quantiles are sketched: more requests than
``report.exact_quantiles_max_requests``; no ``--compare-measured`` list) merges with ``Reduce``: each pod
puts its own rows into ``sim.report.cluster_totals.ClusterTotals`` (sums, sketches, the saturation check's
inputs, on the whole run's arrival span) a block at a time as it runs and keeps none
(``sim.modes.partition.PodTask.reduce_span``); it returns those totals, which the driver adds at the pod's
worker and rack offsets. Neither the pods nor the driver then hold a row a request: the driver keeps the
4-byte cover count a request instead of ~168 bytes of rows (10M requests: 0.04 GB, not 1.6), a pod a block
of rows instead of its share. For a per-request file the pods return their rows too (``PodTask.keep_rows``)
and the merger spills them to disk as they come, to be read back in request order a block at a time
(``Merger.row_blocks``).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.config import Config
from sim.modes.common import nan_rows
from sim.modes.result_rows import CLUSTER_COLUMNS, RowBlock
from sim.replica.histogram import IterationHistogram
from sim.report.cluster_totals import ClusterTotals
from sim.report.saturation import ArrivalSpan
from trace.workload import Workload

ARRAYS = tuple(c.name for c in CLUSTER_COLUMNS)  # a pod's per-request rows


@dataclass
class PodResult:
    pod: int
    task_id: str
    index: np.ndarray  # the pod's requests in the whole workload
    arrays: dict[str, np.ndarray]  # ARRAYS, one row per request of the pod; worker ids local to the pod
    cache: dict  # sim.modes.cluster_result.cache_summary
    network: dict  # Network.stats()
    scalars: dict  # sim_time_s, wall_s, preemptions, workers_per_pod
    io: dict
    prefetch: dict
    hist: dict | None = None  # counts, total, sum_s of the iteration histogram (timed)
    # a pod of a run that merges totals (PodTask.reduce_span): ClusterTotals.state() of its rows; `arrays` then
    # empty unless the run writes a per-request file (PodTask.keep_rows)
    totals: tuple[dict[str, np.ndarray], dict] | None = None


def pod_result(task, res, wall_s: float) -> PodResult:
    h = res.iteration_hist
    reduced = task.reduce_span is not None  # its rows went into res.totals (and none was kept unless keep_rows)
    return PodResult(
        pod=task.pod, task_id=task.task_id, index=np.asarray(task.index, dtype=np.int64),
        arrays={k: np.asarray(getattr(res, k)) for k in ARRAYS} if task.keep_rows or not reduced else {},
        cache=res.cache_summary(), network=res.network_stats(),
        scalars={"sim_time_s": float(res.sim_time_s), "wall_s": float(wall_s), "preemptions": int(res.preemptions),
                 "workers_per_pod": int(res.setup.layout.n_workers)},
        io=res.io, prefetch=res.prefetch,
        hist=None if h is None else {"counts": h.counts.copy(), "total": int(h.total), "sum_s": float(h.sum_s)},
        totals=res.totals.state() if reduced else None,
    )


def add_numbers(a: Any, b: Any) -> Any:
    """Sum nested dicts of numbers key by key; None anywhere stays None."""
    if isinstance(a, dict) and isinstance(b, dict):  # a key only one side has (a tier one pod never used) is kept
        return {k: b[k] if k not in a else a[k] if k not in b else add_numbers(a[k], b[k])
                for k in dict.fromkeys([*a, *b])}
    if a is None or b is None:
        return None
    return a + b


@dataclass
class MergedClusterResult:
    """The partitioned deployment's result: the fields of a ClusterResult the report reads."""

    policy: str
    router: str
    timing: bool
    setup: Any  # ClusterSetup of the whole deployment (all racks)
    workload: Workload
    cache: dict
    network: dict
    sim_time_s: float = 0.0
    wall_s: float = 0.0
    iteration_ms: dict | None = None
    preemptions: int = 0
    io: dict = field(default_factory=dict)
    prefetch: dict = field(default_factory=dict)
    pod_wall_s: list[float] = field(default_factory=list)
    # the other per-request arrays (ARRAYS), None when the merge was reduced: then `totals` holds their sums
    hit_blocks: np.ndarray | None = None
    hit_tokens: np.ndarray | None = None
    worker: np.ndarray | None = None
    net_s: np.ndarray | None = None
    queue_s: np.ndarray | None = None
    prefill_s: np.ndarray | None = None
    tpot_s: np.ndarray | None = None
    ttft_s: np.ndarray | None = None
    e2e_s: np.ndarray | None = None
    busy_s: np.ndarray | None = None
    recomputed_tokens: np.ndarray | None = None
    totals: ClusterTotals | None = None

    def cache_summary(self) -> dict:
        return self.cache

    def network_stats(self) -> dict:
        return self.network


def needs_rows(cfg: Config, n_requests: int, requests_listed: bool) -> bool:
    """Whether a partitioned run must merge the pods' per-request rows in memory: for exact quantiles (up to
    ``report.exact_quantiles_max_requests`` requests: ``sim.report.sink``), or when a list collects every row
    (`requests_listed`: ``--compare-measured`` reads them all). A per-request file past the limit is written
    from the pods' rows spilled to disk (``sim.modes.partition_run.run_partitioned``)."""
    return requests_listed or n_requests <= cfg.report.exact_quantiles_max_requests


def spills_rows(rows: bool, requests: object | None) -> bool:
    """Whether the pods return their rows beside their totals, for the driver to spill to disk: a run that
    merges totals (`rows` False, ``needs_rows``) and writes a per-request file (`requests`: its sink)."""
    return not rows and requests is not None


@dataclass(frozen=True)
class Reduce:
    """Merge pods into totals, not rows (module docstring): the whole deployment's sizes, the config and the
    whole run's arrival span (the saturation check's inject phase)."""

    cfg: Config
    timing: bool
    n_workers: int
    n_racks: int
    workers_per_rack: int
    span: ArrivalSpan  # the whole run's arrivals (each pod's totals are on it too)


class Merger:
    """The merge, one pod at a time: each pod's per-request arrays go into the whole run's arrays as it
    arrives and are dropped, so the driver holds one copy of the per-request results (10M requests: ~1.7
    GB), not the pods' and the merged ones at once; with `reduce`, each pod brings its totals instead.
    With `spill` (a folder; a reduced run that writes a per-request file) each pod's rows are written there as
    it arrives, one ``.npy`` a column, and ``row_blocks`` reads them back in request order a block at a time.
    Counters and histograms are kept per pod (small)."""

    def __init__(self, n: int, reduce: Reduce | None = None, spill: Path | None = None) -> None:
        self.n = n
        self.spill = spill
        self.spilled: list[int] = []  # the pods whose rows are in `spill`
        self.keep = ARRAYS if reduce is None else ()
        self.totals: ClusterTotals | None = None
        if reduce is not None:
            self.totals = ClusterTotals(reduce.cfg, timing=reduce.timing, n_workers=reduce.n_workers,
                                        workers_per_rack=reduce.workers_per_rack, n_racks=reduce.n_racks,
                                        arrival_s=reduce.span)
        self.arrays: dict[str, np.ndarray] = {}
        self.kinds: dict[str, tuple] = {}  # each array's row shape and dtype
        self.seen = np.zeros(n, dtype=np.int32)
        self.pods: list[PodResult] = []  # the pods' summaries; their arrays are moved into self.arrays

    def add(self, p: PodResult) -> None:
        if (self.totals is not None) != (p.totals is not None):
            raise ValueError(f"pod {p.pod} brought {'totals' if p.totals is not None else 'rows'}, not the "
                             f"{'totals' if self.totals is not None else 'rows'} this merge needs")
        if self.totals is not None and p.totals is not None:  # the pod reduced its own rows (PodTask.reduce_span)
            self.totals.merge_state(*p.totals, worker_offset=p.pod * p.scalars["workers_per_pod"])
        if self.spill is not None:
            if not p.arrays:
                raise ValueError(f"pod {p.pod} brought no rows for the per-request file")
            self._spill(p)
        for k in self.keep:
            v = p.arrays[k]
            self.kinds[k] = (v.shape[1:], v.dtype)
            if k not in self.arrays:
                if v.dtype.kind == "f" and np.isnan(v).all():
                    continue  # NaN so far (a hit-rate-only run's latencies): nothing held until a value comes
                fill = np.nan if v.dtype.kind == "f" else 0  # the rows of the pods merged so far were NaN
                self.arrays[k] = np.full((self.n, *v.shape[1:]), fill, dtype=v.dtype)
            self.arrays[k][p.index] = v + p.pod * p.scalars["workers_per_pod"] if k == "worker" else v
        np.add.at(self.seen, p.index, 1)  # a request listed twice counts twice
        self.pods.append(PodResult(p.pod, p.task_id, p.index, {}, p.cache, p.network, p.scalars, p.io,
                                   p.prefetch, p.hist))

    def _spill(self, p: PodResult) -> None:
        assert self.spill is not None
        offset = p.pod * p.scalars["workers_per_pod"]
        np.save(self.spill / f"pod{p.pod}-index.npy", np.asarray(p.index, dtype=np.int64))  # increasing
        for k in ARRAYS:
            v = p.arrays[k]
            np.save(self.spill / f"pod{p.pod}-{k}.npy", v + offset if k == "worker" else v)
        self.spilled.append(p.pod)

    def row_blocks(self, size: int) -> Iterator[RowBlock]:
        """The spilled rows in request order, `size` requests a block (each request in exactly one pod: call
        after ``result``, which checks it). Each block maps the pods' columns afresh and reads its slices
        only, so the process never holds the spilled rows (a mapping kept open would count every page it
        read in the resident set)."""
        assert self.spill is not None
        for lo in range(0, self.n, size):
            hi = min(self.n, lo + size)
            out: dict[str, np.ndarray] = {}
            for k in self.spilled:
                idx = self._column(k, "index")
                a, b = int(np.searchsorted(idx, lo)), int(np.searchsorted(idx, hi))
                at = np.asarray(idx[a:b]) - lo
                del idx
                if b == a:
                    continue
                for c in ARRAYS:
                    v = self._column(k, c)
                    if c not in out:
                        out[c] = np.empty((hi - lo, *v.shape[1:]), dtype=v.dtype)
                    out[c][at] = v[a:b]
                    del v
            yield RowBlock.of(out, lo)

    def _column(self, pod: int, name: str) -> np.ndarray:
        assert self.spill is not None
        return np.load(self.spill / f"pod{pod}-{name}.npy", mmap_mode="r")

    def result(self, *, policy: str, router: str, timing: bool, setup, workload: Workload,
               wall_s: float) -> MergedClusterResult:
        """The whole deployment from its pods (each request in exactly one pod)."""
        if self.n and not (self.seen == 1).all():
            bad = int((self.seen != 1).sum())
            raise ValueError(f"pods do not cover the workload once: {bad} request(s) in 0 or 2+ pods")
        pods = sorted(self.pods, key=lambda p: p.pod)
        cache, net, io, pf = pods[0].cache, pods[0].network, pods[0].io, pods[0].prefetch
        for p in pods[1:]:
            cache, net = add_numbers(cache, p.cache), add_numbers(net, p.network)
            io, pf = add_numbers(io, p.io), add_numbers(pf, p.prefetch)
        # per rack / per pool sizes are the same in every pod: not summed
        cache = {**cache, "eic_blocks": pods[0].cache["eic_blocks"], "ssd_blocks": pods[0].cache["ssd_blocks"]}
        iteration_ms = None
        if timing:
            h = IterationHistogram()
            for p in pods:
                if p.hist is not None:
                    h.counts += p.hist["counts"]
                    h.total += p.hist["total"]
                    h.sum_s += p.hist["sum_s"]
            iteration_ms = h.summary_ms()
        arrays = dict(self.arrays)
        for k in self.keep:
            if k not in arrays:  # NaN in every pod: one read-only view, no n-row array
                shape, dtype = self.kinds.get(k, ((), np.dtype(float)))
                arrays[k] = nan_rows(self.n, shape, dtype, written=False)
        return MergedClusterResult(
            policy=policy, router=router, timing=timing, setup=setup, workload=workload, **arrays,
            cache=cache, network=net, sim_time_s=max(p.scalars["sim_time_s"] for p in pods), wall_s=wall_s,
            iteration_ms=iteration_ms, preemptions=sum(p.scalars["preemptions"] for p in pods), io=io, prefetch=pf,
            pod_wall_s=[p.scalars["wall_s"] for p in pods], totals=self.totals,
        )


__all__ = ["ARRAYS", "MergedClusterResult", "Merger", "PodResult", "Reduce", "add_numbers",
           "needs_rows", "pod_result", "spills_rows"]
