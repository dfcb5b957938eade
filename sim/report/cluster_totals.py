"""What the cluster report reads of a replay's per-request arrays, as totals that pods add up.

``sim.report.cluster.cluster_metrics`` needs of the n-row arrays only: the tokens and blocks served
per location, the requests and busy seconds per worker and per rack (the skew block), the requests
meeting both SLO targets, the network wait summed, and the latencies' distributions (a
``MetricsSink``). Besides these it reads TTFT per request (the TTFT sum and the saturation check, which
pairs it with the arrivals); that array stays whole.

``ClusterTotals.of`` computes them from one replay's arrays; ``add`` puts a pod's into the whole run's,
its workers and racks offset to the pod's place. A partitioned run that needs neither exact quantiles
nor a per-request file keeps only these (``sim.modes.partition_merge.Merger``): about 12 bytes a
request (TTFT and the cover check) instead of the 168 of the merged arrays. What it reports equals
the merged arrays' report except float sums taken pod by pod (the network wait; the sketch's served
means), which may differ in the last bits; the counts, per-worker and per-rack figures are exact
(a worker's requests all sit in one pod, summed in request order either way).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.cache.layout import LOC_NAMES
from sim.config import Config
from sim.report.schema import slo_ok
from sim.report.sink import MetricsSink, metrics_sink

LATENCIES = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s", "load": "net_s", "queue": "queue_s",
             "prefill": "prefill_s"}  # sink metric -> array (load = waiting for the network)


@dataclass
class ClusterTotals:
    hit_tokens: np.ndarray  # per location (LOC_NAMES), summed over requests
    hit_blocks: np.ndarray
    requests_per_worker: np.ndarray  # int64, one per worker
    busy_per_worker: np.ndarray  # seconds
    requests_per_rack: np.ndarray
    busy_per_rack: np.ndarray
    requests: int
    slo_met: int  # requests meeting the TTFT and TPOT targets (timed)
    net_sum_s: float  # NaN-skipping sum of the network wait (timed)
    sink: MetricsSink | None  # the latencies (timed)

    @classmethod
    def of(cls, a: Mapping[str, np.ndarray], *, cfg: Config, timing: bool, n_workers: int, workers_per_rack: int,
           n_racks: int, n_requests: int | None = None) -> ClusterTotals:
        """The totals of one replay's arrays (``sim.modes.partition_merge.ARRAYS``); `n_requests`: the
        whole run's size, which picks the sink's kind (a pod passes the whole run's)."""
        worker, busy = np.asarray(a["worker"]), np.asarray(a["busy_s"])
        racks = worker // workers_per_rack
        sink, met, net = None, 0, 0.0
        if timing:
            sink = metrics_sink(len(worker) if n_requests is None else n_requests, cfg)
            sink.add({k: a[v] for k, v in LATENCIES.items()})
            ok_ttft, ok_tpot = slo_ok(a["ttft_s"], a["tpot_s"], cfg.slo.ttft_ms, cfg.slo.tpot_ms)
            met, net = int((ok_ttft & ok_tpot).sum()), float(np.nansum(a["net_s"]))
        return cls(
            hit_tokens=np.asarray(a["hit_tokens"]).sum(axis=0), hit_blocks=np.asarray(a["hit_blocks"]).sum(axis=0),
            requests_per_worker=np.bincount(worker, minlength=n_workers),
            busy_per_worker=np.bincount(worker, weights=busy, minlength=n_workers),
            requests_per_rack=np.bincount(racks, minlength=n_racks),
            busy_per_rack=np.bincount(racks, weights=busy, minlength=n_racks),
            requests=len(worker), slo_met=met, net_sum_s=net, sink=sink)

    @classmethod
    def empty(cls, *, cfg: Config, timing: bool, n_workers: int, n_racks: int, n_requests: int) -> ClusterTotals:
        """Nothing yet, sized for the whole deployment; pods ``add`` into it."""
        locs = len(LOC_NAMES)
        return cls(np.zeros(locs, np.int64), np.zeros(locs, np.int64), np.zeros(n_workers, np.int64),
                   np.zeros(n_workers), np.zeros(n_racks, np.int64), np.zeros(n_racks), 0, 0, 0.0,
                   metrics_sink(n_requests, cfg) if timing else None)

    def add(self, pod: ClusterTotals, *, worker_offset: int, rack_offset: int) -> None:
        """A pod's totals (its own worker and rack numbering) into the whole run's."""
        self.hit_tokens += pod.hit_tokens
        self.hit_blocks += pod.hit_blocks
        for whole, part, off in ((self.requests_per_worker, pod.requests_per_worker, worker_offset),
                                 (self.busy_per_worker, pod.busy_per_worker, worker_offset),
                                 (self.requests_per_rack, pod.requests_per_rack, rack_offset),
                                 (self.busy_per_rack, pod.busy_per_rack, rack_offset)):
            whole[off:off + len(part)] += part
        self.requests += pod.requests
        self.slo_met += pod.slo_met
        self.net_sum_s += pod.net_sum_s
        if self.sink is not None and pod.sink is not None:
            self.sink.merge(pod.sink)


def totals_of(res: Any, cfg: Config) -> ClusterTotals:
    """The totals of a cluster replay's result (its arrays, or a partitioned run's summed totals)."""
    if getattr(res, "totals", None) is not None:
        return res.totals
    lay = res.setup.layout
    arrays = {k: getattr(res, k) for k in ("hit_tokens", "hit_blocks", "worker", "busy_s", *LATENCIES.values())}
    return ClusterTotals.of(arrays, cfg=cfg, timing=res.timing, n_workers=lay.n_workers,
                            workers_per_rack=lay.workers_per_rack, n_racks=lay.topo.n_racks,
                            n_requests=len(res.workload))
