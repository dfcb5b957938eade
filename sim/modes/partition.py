"""Cluster mode split into pods: a deterministic top-level partition, each pod simulated on its own.

Large deployments shard traffic before any cache-aware routing: a session (or
the hash of a prompt's first block, its prefix root) always goes to the same
pod of racks. With ``pods`` = K the cluster's racks form K pods of
racks / K racks each; request i goes to pod ``splitmix64(key_i) % K``
(``PARTITION_KEYS``) and inside its pod the configured router picks the
worker. Pods share nothing, so each one is a cluster replay of its own
(``run_pod``: racks / K racks, the pod's requests, seed + pod), in any
process or on any machine, and the merge (``sim.modes.partition_merge``) is
exact: per-request arrays put back in request order, counters summed, the
report computed from them as for one replay.

Refused (``check_partition``), because pods would share state:
a remote SSD pool (``cluster.remote_ssd_capacity_gib`` > 0 is one pool all
racks read and write), and any mode but cluster (single is one node; PD's
prefill -> decode transfers and decode router span its racks).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.config import Config, config_with
from sim.errors import InputError
from sim.modes.learned_window import WindowCheck
from sim.report.saturation import ArrivalSpan
from trace.workload import Workload

WHERE = "cluster.pods (--pods)"


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A fixed 64-bit mixer (same result on every machine and Python run, unlike hash())."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _prefix_root(w: Workload) -> np.ndarray:
    """The first block id of each request (its prefix root); the request index when it has no block."""
    first = w.prefix_blocks().first_blocks()  # read from the parent form: nothing is expanded
    return np.where(first >= 0, first, np.arange(len(w), dtype=np.int64))


def _session(w: Workload) -> np.ndarray:
    """The session id; requests of unknown session (-1) fall back to their prefix root."""
    known = w.session_id >= 0
    return w.session_id if known.all() else np.where(known, w.session_id, _prefix_root(w))


# partition key name -> function(workload) -> one int64 key per request
PARTITION_KEYS: dict[str, Callable[[Workload], np.ndarray]] = {"session": _session, "prefix_root": _prefix_root}


@dataclass(frozen=True)
class Partition:
    pods: int
    by: str = "session"
    at_once: int = 1  # pods simulated at the same time on this machine (the memory estimate counts them)

    @classmethod
    def of(cls, cfg: Config, at_once: int = 1) -> Partition | None:
        """The partition `cfg` describes (``cluster.pods``, ``cluster.partition_by``); None for one cluster."""
        return cls(cfg.cluster.pods, cfg.cluster.partition_by, at_once) if cfg.cluster.pods else None

    def describe(self, cfg: Config) -> dict:
        """The report's ``partition`` block."""
        return {"pods": self.pods, "by": self.by, "racks_per_pod": cfg.cluster.racks // self.pods}


def check_partition(cfg: Config, part: Partition, mode: str) -> None:
    """Refuse, in one line, a partition the deployment or mode cannot honour."""
    if mode != "cluster":
        raise InputError(f"pods split cluster mode only (got --mode {mode}): single mode is one node, and PD's "
                         "prefill -> decode transfers and decode router span all its racks", where=WHERE)
    if part.by not in PARTITION_KEYS:
        raise InputError(f"unknown partition key {part.by!r} (known: {', '.join(PARTITION_KEYS)})",
                         where="cluster.partition_by (--partition-by)")
    racks = cfg.cluster.racks
    if part.pods < 1 or part.pods > racks or racks % part.pods:
        raise InputError(f"{part.pods} pods cannot split cluster.racks = {racks} evenly: use a divisor of {racks}",
                         where=WHERE)
    if cfg.cluster.remote_ssd_capacity_gib > 0:
        raise InputError(f"cluster.remote_ssd_capacity_gib = {cfg.cluster.remote_ssd_capacity_gib:g} is one pool "
                         "every rack shares, so pods would not be independent; set it to 0 to partition",
                         where=WHERE)


def assign_pods(w: Workload, part: Partition) -> np.ndarray:
    """The pod of each request: splitmix64(key) % pods."""
    keys = PARTITION_KEYS[part.by](w)
    return (_splitmix64(keys) % np.uint64(part.pods)).astype(np.int64)


def pod_sizes(w: Workload, part: Partition, pods: np.ndarray | None = None) -> list:
    """Each pod's share of `w` as the memory estimate reads it (sim.modes.memory.WorkloadSize), before any
    pod is built: its requests, accesses and own blocks (a pod of a distinct workload may own a few
    more: the shared prefixes it re-parents, trace.reparent.subset), and its share of the workload's bytes."""
    from sim.modes.memory import WorkloadSize

    pods = assign_pods(w, part) if pods is None else pods
    pb = w.prefix_blocks()
    reqs = np.bincount(pods, minlength=part.pods)
    acc = np.bincount(pods, weights=w.n_blocks(), minlength=part.pods)
    own = np.bincount(pods, weights=np.diff(pb.own_off), minlength=part.pods)
    per_req = w.nbytes() / max(1, len(w))
    # a distinct form's pods are dense (nothing to renumber); any other keeps stored ids
    return [WorkloadSize(int(reqs[k]), int(per_req * reqs[k]), int(acc[k]), int(own[k]), w.compact,
                         not pb.distinct) for k in range(part.pods)]


def pod_config(cfg: Config, part: Partition, pod: int) -> Config:
    """One pod as a cluster of its own (not partitioned again): racks / pods racks, its own seed (pod 0
    keeps the run's)."""
    return config_with(cfg, {"cluster.racks": cfg.cluster.racks // part.pods, "seed": cfg.seed + pod,
                             "cluster.pods": 0})


@dataclass
class PodTask:
    """What a pod's worker needs (picklable: it crosses process and machine boundaries)."""

    task_id: str  # "<router>/<policy>/pod<k>"
    pod: int
    config: dict  # the pod's Config, model_dump(mode="json")
    policy: str
    router: str
    timing: bool
    index: np.ndarray  # the pod's requests (indices into the prepared workload, increasing)
    workload: Workload  # those requests, prepared (re-blocked)
    key: str = ""  # what the finished pod is stored under (sim.modes.partition_store)
    # the run's learned window re-check, done in the pod once its first pass has run (online learned only)
    window: WindowCheck | None = None
    # its worker's estimated peak in bytes (the largest pod's, as the driver checked): its Ray memory resource
    peak_b: float = 0.0
    # the whole run's arrivals when it merges totals, not rows (partition_merge.Reduce): the pod then puts its
    # rows into totals of its own as it goes and returns those (no value a request, in the pod or the driver)
    reduce_span: ArrivalSpan | None = None
    # with reduce_span: the run writes a per-request file, so the pod returns its rows as well
    keep_rows: bool = False


def pod_tasks(cfg: Config, w: Workload, part: Partition, policy: str, router: str, timing: bool,
              pods: np.ndarray | None = None, window: WindowCheck | None = None,
              peak_b: float = 0.0, reduce_span: ArrivalSpan | None = None,
              keep_rows: bool = False) -> list[PodTask]:
    """One task per pod (pods with no request included: their report counts are zero). `pods`: the
    assignment when the caller has it (``assign_pods``: a pass over the workload, ~0.5 s at 10M). `window`:
    the run's learned window re-check (sim.modes.runner), given to the learned policy's pods. `peak_b`: one
    pod worker's estimated peak (sim.modes.memory.one_pod_b). `reduce_span`: the whole run's arrivals when it
    merges totals, not rows (each pod then reduces its own rows, ``PodTask.reduce_span``); `keep_rows`: the pods
    return their rows too (``PodTask.keep_rows``)."""
    window = window if policy == "learned" else None
    pods = assign_pods(w, part) if pods is None else pods
    tasks = []
    for k in range(part.pods):
        idx = np.flatnonzero(pods == k)
        pc = pod_config(cfg, part, k)
        tasks.append(PodTask(f"{router}/{policy}/pod{k}", k, pc.model_dump(mode="json"), policy, router, timing,
                             idx, w.select(idx), window=window, peak_b=peak_b, reduce_span=reduce_span,
                             keep_rows=keep_rows))
    return tasks


def run_pod(task: PodTask, progress: Callable[[int], None] | None = None):
    """Simulate one pod; its plain-data result (``sim.modes.partition_merge.PodResult``). An online learned
    pod whose exact training window does not fit (``task.window``) is refused (InputError) before it replays."""
    from sim.modes.cluster import run_cluster
    from sim.modes.learned_window import recheck_learned
    from sim.modes.partition_merge import pod_result
    from sim.policies.base import AccessContext

    cfg = Config.model_validate(task.config)
    t0 = time.perf_counter()
    w = task.workload
    ctx = AccessContext.from_workload(w)
    recheck_learned(task.window, cfg, w, ctx, whose=f"pod {task.pod}'s")  # its first pass, shared with the replay
    res = run_cluster(cfg, w, task.policy, task.router, ctx=ctx, timing=task.timing, progress=progress,
                      whole_span=task.reduce_span,
                      stream_rows=task.reduce_span is not None and not task.keep_rows)
    return pod_result(task, res, time.perf_counter() - t0)


__all__ = ["PARTITION_KEYS", "Partition", "PodTask", "assign_pods", "check_partition", "pod_config", "pod_sizes",
           "pod_tasks", "run_pod"]
