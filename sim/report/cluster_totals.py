"""What the cluster report reads of a replay's per-request rows, as totals taken a block or a pod at a time.

``sim.report.cluster.cluster_metrics`` needs of the n-row arrays only: the tokens and blocks served
per location, the requests and busy seconds per worker and per rack (the skew block), the requests
meeting both SLO targets, the network wait and TTFT summed, the latencies' distributions (a
``MetricsSink``) and the saturation check's inputs (a ``SaturationStream``).

``ClusterTotals.add`` takes rows (a block of a run, ``sim.modes.result_rows``). A run that keeps its rows whole
adds them once, and every figure is the whole arrays' to the last bit. A run above
``report.exact_quantiles_max_requests`` adds a block at a time and drops it. A partitioned run that needs neither
exact quantiles nor a per-request file has each pod do that into totals of its own (sized for the pod, on the
whole run's ``ArrivalSpan``) and return their ``state()``, which the driver's totals ``merge_state`` at the pod's
worker and rack offsets (``sim.modes.partition_merge.Merger``): no value a request is kept anywhere. Then float
sums are taken block by block and pod by pod (the network wait, TTFT, busy seconds, the sketch's served means,
the backlog integrals) and may differ from the whole arrays' in the last bits; the counts and the per-worker and
per-rack request counts are exact.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sim.cache.layout import LOC_NAMES
from sim.config import Config
from sim.report.saturation import ArrivalSpan, SaturationStream
from sim.report.schema import slo_ok
from sim.report.sink import MetricsSink, SketchSink, metrics_sink

LATENCIES = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s", "load": "net_s", "queue": "queue_s",
             "prefill": "prefill_s"}  # sink metric -> array (load = waiting for the network)


class ClusterTotals:
    """Sized for the deployment (`n_workers` in racks of `workers_per_rack`) and run (`arrival_s`: every request's
    arrival, or a pod's totals the whole run's ``ArrivalSpan``: the saturation check's inject phase and the sink's
    kind); rows ``add`` into it."""

    def __init__(self, cfg: Config, *, timing: bool, n_workers: int, workers_per_rack: int, n_racks: int,
                 arrival_s: np.ndarray | ArrivalSpan) -> None:
        self.cfg, self.timing, self.workers_per_rack = cfg, timing, workers_per_rack
        locs = len(LOC_NAMES)
        self.hit_tokens = np.zeros(locs, np.int64)  # per location (LOC_NAMES), summed over requests
        self.hit_blocks = np.zeros(locs, np.int64)
        self.requests_per_worker = np.zeros(n_workers, np.int64)
        self.busy_per_worker = np.zeros(n_workers)  # seconds
        self.requests_per_rack = np.zeros(n_racks, np.int64)
        self.busy_per_rack = np.zeros(n_racks)
        self.requests = 0
        self.slo_met = 0  # requests meeting the TTFT and TPOT targets (timed)
        self.net_sum_s = 0.0  # NaN-skipping sums of the network wait and of TTFT (timed)
        self.ttft_sum_s = 0.0
        # a pod's totals (`arrival_s` the whole run's ArrivalSpan) take the whole run's sink kind and windows
        n = arrival_s.requests if isinstance(arrival_s, ArrivalSpan) else len(arrival_s)
        self.sink: MetricsSink | None = metrics_sink(n, cfg) if timing else None
        self.saturation = SaturationStream(arrival_s) if timing else None

    def add(self, a: Mapping[str, np.ndarray], arrival_s: np.ndarray) -> None:
        """Rows of some requests (``sim.modes.result_rows.CLUSTER_COLUMNS`` by name), `arrival_s` theirs."""
        worker, busy = np.asarray(a["worker"]), np.asarray(a["busy_s"])
        racks = worker // self.workers_per_rack
        self.hit_tokens += np.asarray(a["hit_tokens"]).sum(axis=0)
        self.hit_blocks += np.asarray(a["hit_blocks"]).sum(axis=0)
        for whole, got in ((self.requests_per_worker, np.bincount(worker, minlength=len(self.requests_per_worker))),
                           (self.busy_per_worker, np.bincount(worker, busy, len(self.busy_per_worker))),
                           (self.requests_per_rack, np.bincount(racks, minlength=len(self.requests_per_rack))),
                           (self.busy_per_rack, np.bincount(racks, busy, len(self.busy_per_rack)))):
            whole += got
        self.requests += len(worker)
        if self.timing:
            assert self.sink is not None and self.saturation is not None  # made when timed
            self.sink.add({k: a[v] for k, v in LATENCIES.items()})
            ok_ttft, ok_tpot = slo_ok(a["ttft_s"], a["tpot_s"], self.cfg.slo.ttft_ms, self.cfg.slo.tpot_ms)
            self.slo_met += int((ok_ttft & ok_tpot).sum())
            self.net_sum_s += float(np.nansum(a["net_s"]))
            self.ttft_sum_s += float(np.nansum(a["ttft_s"]))
            self.saturation.add(arrival_s, a["ttft_s"])

    # ------------------------------------------------------------ a pod's totals into the whole run's
    _COUNTS = ("hit_tokens", "hit_blocks", "requests_per_worker", "busy_per_worker", "requests_per_rack",
               "busy_per_rack")
    _SUMS = ("requests", "slo_met", "net_sum_s", "ttft_sum_s")

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON-able values): a pod's totals as plain data (``merge_state`` adds them to the whole
        run's; a PodStore keeps them). Its sink must be a sketch sink (a pod of a run past the exact limit)."""
        arrays = {k: getattr(self, k) for k in self._COUNTS}
        meta: dict[str, Any] = {k: getattr(self, k) for k in self._SUMS}
        if self.timing:
            assert isinstance(self.sink, SketchSink) and self.saturation is not None  # made when timed
            sat_arrays, meta["saturation"] = self.saturation.state()
            arrays.update({f"saturation_{k}": v for k, v in sat_arrays.items()})
            meta["sink"] = self.sink.to_dict()
        return arrays, meta

    def merge_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], *, worker_offset: int) -> None:
        """Add a pod's ``state()``: its workers counted from `worker_offset` (its racks from the rack that holds
        that worker: pods are whole racks)."""
        rack_offset = worker_offset // self.workers_per_rack
        self.hit_tokens += arrays["hit_tokens"]
        self.hit_blocks += arrays["hit_blocks"]
        for k, off in (("requests_per_worker", worker_offset), ("busy_per_worker", worker_offset),
                       ("requests_per_rack", rack_offset), ("busy_per_rack", rack_offset)):
            got = np.asarray(arrays[k])
            getattr(self, k)[off:off + len(got)] += got
        self.requests += int(meta["requests"])
        self.slo_met += int(meta["slo_met"])
        self.net_sum_s += float(meta["net_sum_s"])
        self.ttft_sum_s += float(meta["ttft_sum_s"])
        if self.timing:
            assert self.sink is not None and self.saturation is not None  # made when timed
            self.sink.merge(SketchSink.from_dict(meta["sink"]))
            sat = {k[len("saturation_"):]: v for k, v in arrays.items() if k.startswith("saturation_")}
            self.saturation.merge(SaturationStream.from_state(sat, meta["saturation"]))


def totals_of(res: Any, cfg: Config) -> ClusterTotals:
    """The totals of a cluster replay's result: its own (a run that fed its rows to them; a reduced partitioned
    run's), else taken once from its whole arrays (a partitioned run that merged its pods' rows)."""
    if getattr(res, "totals", None) is None:
        lay, arrival_s = res.setup.layout, res.workload.arrival_ms / 1000.0
        res.totals = ClusterTotals(cfg, timing=res.timing, n_workers=lay.n_workers,
                                   workers_per_rack=lay.workers_per_rack, n_racks=lay.topo.n_racks,
                                   arrival_s=arrival_s)
        res.totals.add({k: getattr(res, k) for k in ("hit_tokens", "hit_blocks", "worker", "busy_s",
                                                     *LATENCIES.values())}, arrival_s)
    return res.totals
