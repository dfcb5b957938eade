"""Report metrics of a PD or colocated deployment (``sim.modes.pd.simulator.DeploymentResult``).

Definitions (per request, seconds in the simulation, reported in ms):

* TTFT = KV usable for decoding - arrival. PD: the transfer to the decode
  replica is done; colocated: the prefill is done. Breakdown: ``load``
  (DRAM/EIC prefix load before queueing), ``queue`` (waiting for the first
  prefill chunk), ``prefill`` (first chunk start to last chunk end,
  including other requests' chunks interleaved), ``decode_wait`` (prefill
  end to the decode replica granting memory - and, for pull, a batch slot)
  and ``transfer`` (the rest of prefill end -> KV at decode: the transfer
  time the overlap did not hide). The five add up to TTFT.
* TPOT = (finish - TTFT) / (output tokens - 1): every token after the first,
  including any wait for a batch slot and preemptions. Requests with one
  output token have no TPOT (they meet the TPOT SLO by definition).
* SLO attainment: share of requests with TTFT <= ``slo.ttft_ms`` and TPOT
  <= ``slo.tpot_ms``; goodput = requests meeting both / the trace's arrival
  window (first to last arrival; the same denominator for every deployment
  of a trace, so goodputs compare directly).
* GPU utilization of a pool: busy seconds of its replicas / (replicas x
  span), span = first arrival to last finish; throughputs use the span too.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sim.config import Config
from sim.replica.histogram import merged_summary_ms
from sim.report.requests import pd_requests
from sim.report.saturation import SaturationStream
from sim.report.schema import slo_ok
from sim.report.sink import latency_metrics, metrics_sink


def per_request(b, cfg: Config, bt: int) -> dict[str, np.ndarray]:
    """Per served request of block `b` (a sim.modes.result_rows.RowBlock of PD_COLUMNS, arrival order; `bt`: tokens
    a block): the arrays the metrics and the per-request file share. Times in seconds; TTFT parts
    load/queue/prefill/decode_wait/transfer add up to ``ttft``."""
    n = b.n
    inp, out = b.inp, b.out  # the block's own columns (int64 / float: PD_COLUMNS), read, never written
    t_arr, t_ready, t_pstart, t_pend, t_grant = b.t_arr, b.t_ready, b.t_pstart, b.t_pend, b.t_grant
    t_kv, t_done = b.t_kv, b.t_done
    ttft = t_kv - t_arr
    dec = out > 1
    tpot = np.full(n, np.nan)
    tpot[dec] = (t_done[dec] - t_kv[dec]) / (out[dec] - 1)
    after = t_kv - t_pend  # prefill end -> KV at decode
    decode_wait = np.where(np.isfinite(t_grant), np.minimum(after, np.maximum(0.0, t_grant - t_pend)), 0.0)
    hit_hbm, hit_low = b.hit_hbm, b.hit_low
    hit_dram = np.minimum(hit_low, b.n_dram * bt)
    ok_ttft, ok_tpot = slo_ok(ttft, tpot, cfg.slo.ttft_ms, cfg.slo.tpot_ms)
    return {
        "inp": inp, "out": out, "dec": dec, "t_arr": t_arr, "t_done": t_done,
        "ttft": ttft, "tpot": tpot, "e2e": t_done - t_arr,
        # additive: load + queue + prefill + decode_wait + transfer = TTFT
        "load": t_ready - t_arr, "queue": t_pstart - t_ready, "prefill": t_pend - t_pstart,
        "decode_wait": decode_wait, "transfer": after - decode_wait,
        "hit_hbm": hit_hbm, "hit_low": hit_low, "hit_dram": hit_dram, "hit_eic": hit_low - hit_dram,
        "ok_ttft": ok_ttft, "ok_tpot": ok_tpot,
    }


PARTS = ("load", "queue", "prefill", "decode_wait", "transfer")  # the TTFT parts of a PD request


class PDTotals:
    """What the report reads of a deployment's finished requests (``sim.modes.pd.finished``), taken a block at a
    time: counts and sums, the first arrival and last finish, the latencies' sink, the KV transfers' times
    (`kind` "pd"), the saturation check's stream, and each block's rows for the per-request file
    (`requests`, with the input `workload` and the `rejected` requests interleaved in its order). A deployment
    that keeps its rows hands over one block, and every figure is the whole arrays' to the last bit; above
    ``report.exact_quantiles_max_requests`` (`streamed`) sums are taken block by block (last bits)."""

    def __init__(self, cfg: Config, w, bt: int, kind: str, *, streamed: bool = False, requests=None,
                 workload=None, rejected: np.ndarray | None = None, policy: str = "") -> None:
        self.cfg, self.w, self.bt, self.kind, self.streamed = cfg, w, bt, kind, streamed
        self.n = 0
        self.inp = self.out = 0
        self.t_arr_min, self.t_arr_max, self.t_done_max = np.inf, -np.inf, -np.inf
        self.ok_ttft = self.ok_tpot = self.ok = 0
        self.hit = dict.fromkeys(("hit_hbm", "hit_low", "hit_dram", "hit_eic"), 0)
        self.cached_blocks = self.blocks = 0
        self.preempted = 0
        self.flow_s = self.exposed_s = 0.0  # the moved requests' KV transfer time, and its part TTFT waited for
        self.sink = metrics_sink(len(w), cfg)
        # streamed: the inject phase from the workload's arrivals; whole: from the served requests' own (below)
        self.saturation: SaturationStream | None = SaturationStream(w.arrival_ms / 1000.0) if streamed else None
        self.requests, self.workload, self.policy = requests, workload, policy
        self.rejected = np.sort(np.asarray(rejected if rejected is not None else [], dtype=np.int64))
        # served row j is input request j + #(rejected before it): #{k: rejected[k] - k <= j}
        self._gaps = self.rejected - np.arange(len(self.rejected))
        self._file_at = 0  # the next input request the per-request file writes

    def add(self, b) -> None:
        """A block (sim.modes.result_rows.RowBlock of PD_COLUMNS) of finished requests, in arrival order."""
        a = per_request(b, self.cfg, self.bt)
        self.n += b.n
        self.inp += int(a["inp"].sum())
        self.out += int(a["out"].sum())
        if b.n:
            self.t_arr_min = min(self.t_arr_min, a["t_arr"].min())
            self.t_arr_max = max(self.t_arr_max, a["t_arr"].max())
            self.t_done_max = max(self.t_done_max, a["t_done"].max())
        self.sink.add({"ttft": a["ttft"], "tpot": a["tpot"], "e2e": a["e2e"], **{k: a[k] for k in PARTS}})
        ok_ttft, ok_tpot = a["ok_ttft"], a["ok_tpot"]
        self.ok_ttft += int(ok_ttft.sum())
        self.ok_tpot += int(ok_tpot.sum())
        self.ok += int((ok_ttft & ok_tpot).sum())
        for k in self.hit:
            self.hit[k] += int(a[k].sum())
        nblocks = np.diff(self.w.block_offsets[b.lo:b.lo + b.n + 1])
        self.cached_blocks += int(np.minimum(-(-(a["hit_hbm"] + a["hit_low"]) // self.bt), nblocks).sum())
        self.blocks += int(nblocks.sum())
        self.preempted += int((b.preempted > 0).sum())
        if self.kind == "pd":  # the KV moved to a decode replica: its transfer time and the exposed part
            xs = b.xfer_s
            moved = a["dec"] & (xs > 0)
            self.flow_s += xs[moved].sum()
            self.exposed_s += a["transfer"][moved].sum()
            self.sink.add({"kv_time": np.where(moved, xs, np.nan),
                           "kv_exposed": np.where(moved, a["transfer"], np.nan)})
        if not self.streamed:  # the whole deployment: the inject phase from its own arrivals (rows in arrival order)
            self.saturation = SaturationStream(a["t_arr"])
        assert self.saturation is not None
        self.saturation.add(a["t_arr"], a["ttft"])
        if self.requests is not None:
            self._write(b, a)

    def _write(self, b, a: dict[str, np.ndarray]) -> None:
        """The input requests up to this block's last served one (or to the end): served rows from the block,
        rejected ones between them (sim.report.requests.pd_requests)."""
        hi = b.lo + b.n
        last = hi == len(self.w)
        end = len(self.workload) if last else hi - 1 + int(np.searchsorted(self._gaps, hi - 1, side="right")) + 1
        self.requests.append(pd_requests(self.cfg, self.workload, self.rejected, b, a, self.kind, self.policy,
                                         self._file_at, end))
        self._file_at = end


def deployment_metrics(res, cfg: Config, rejected: int = 0) -> dict[str, Any]:
    """Report metrics of one deployment run (a sim.modes.pd.simulator.DeploymentResult, its rows taken into
    ``res.totals``, a PDTotals).

    ``rejected`` requests (no replica could hold them) count as SLO misses:
    they are in the denominators of the attainments, not in the latencies.
    """
    t: PDTotals = res.totals
    setup = res.setup
    bt = setup.block_tokens
    bb = int(round(bt * setup.kv_bytes_per_token))
    n = t.n
    n_all = max(1, n + rejected)
    slo = cfg.slo
    span = float(t.t_done_max - t.t_arr_min) if n else 0.0
    span_d = max(span, 1e-9)
    window = float(t.t_arr_max - t.t_arr_min) if n else 0.0
    window_d = window if window > 0 else span_d
    sink = t.sink
    lat = latency_metrics(sink, PARTS, part_keys=False)

    total_in = max(1, t.inp)
    low = res.lower.summary()
    trees = res.trees
    sizes = ("used_bytes", "capacity_bytes")
    tiers = {
        "hbm": {"hit_rate": float(t.hit["hit_hbm"] / total_in),
                "used_bytes": int(sum(len(tr) for tr in trees) * bb),
                "capacity_bytes": int(sum(tr.capacity for tr in trees) * bb)},
        "dram": {"hit_rate": float(t.hit["hit_dram"] / total_in), **{k: low["dram"][k] for k in sizes}},
        "eic": {"hit_rate": float(t.hit["hit_eic"] / total_in), **{k: low["eic"][k] for k in sizes}},
    }

    pools = {}
    all_replicas = []
    for name, replicas in res.pools.items():
        all_replicas += replicas
        busy = sum(e.stats.busy_s for e in replicas)
        it = sum(e.stats.iterations for e in replicas)
        dtok = sum(e.stats.decode_tokens for e in replicas)
        pools[name] = {
            "replicas": len(replicas),
            "utilization_share": busy / (len(replicas) * span_d) if replicas else 0.0,
            "iterations": int(it),
            "events": int(sum(e.stats.stretches for e in replicas)),
            "prefill_tokens": int(sum(e.stats.prefill_tokens for e in replicas)),
            "decode_tokens": int(dtok),
            "mean_decode_batch": (dtok / it) if it and dtok else 0.0,
            "max_decode_batch": int(max((e.stats.max_batch_seen for e in replicas), default=0)),
            "decode_kv_peak_tokens": int(max((getattr(e.mem, "peak", 0) for e in replicas), default=0)),
            "iteration_ms": merged_summary_ms(e.hist for e in replicas),
        }
    m: dict[str, Any] = {
        "hit_rate": float((t.hit["hit_hbm"] + t.hit["hit_low"]) / total_in),
        "block_hit_rate": float(t.cached_blocks / max(1, t.blocks)),
        "tiers": tiers,
        **lat,
        "iteration_ms": merged_summary_ms(e.hist for e in all_replicas),
        "throughput_tokens_s": float((t.inp + t.out) / span_d),
        "throughput_req_s": float(n / span_d),
        "slo_attainment": float(t.ok / n_all),
        "slo": {"ttft_ms": slo.ttft_ms, "tpot_ms": slo.tpot_ms,
                "ttft_attainment": float(t.ok_ttft / n_all),
                "tpot_attainment": float(t.ok_tpot / n_all),
                "attainment": float(t.ok / n_all)},
        "requests_served": n,
        "requests_rejected": int(rejected),
        "goodput_req_s": float(t.ok / window_d),
        "arrival_window_s": window,
        "gpu_utilization_share": {k: v["utilization_share"] for k, v in pools.items()},
        "pools": pools,
        "evictions": int(sum(tr.evictions for tr in trees)),
        "preemptions": {"mode": cfg.compute.preemption, "count": int(sum(e.stats.preemptions for e in all_replicas)),
                        "requests": t.preempted,
                        "recompute_tokens": int(sum(e.stats.recompute_tokens for e in all_replicas)),
                        "swap_bytes": int(sum(e.stats.swap_bytes for e in all_replicas))},
        "lower_tiers": low,
        "tier_io": {k: dict(v) for k, v in res.lower.io.items()},
        "recomputed_prefixes": int(res.recomputed[0]),
        "recomputed_tokens": int(res.recomputed[1]),
        "prefetch": res.prefetch,
        "network": res.net.stats(),
        "span_s": span,
        "sim_time_s": float(res.sim_time_s),
        "sim_speed_req_s": float(n / res.wall_s) if res.wall_s > 0 else None,
    }
    tr = res.transfer
    if tr is not None:
        flow_s = float(t.flow_s)
        st = tr.stats.to_dict()
        m["kv_transfer"] = {
            "strategy": tr.name, "layerwise": bool(tr.layerwise and tr.name == "push"),
            **st,
            "time_ms": sink.dist_ms("kv_time"),
            "exposed_ms": sink.dist_ms("kv_exposed"),
            "hidden_share": float(max(0.0, 1.0 - t.exposed_s / flow_s)) if flow_s > 0 else None,
        }
        m["transfers"] = {"bytes": st["bytes"], "count": st["requests"], "flows": st["flows"]}
    else:
        m["kv_transfer"] = None
        m["transfers"] = {"bytes": 0, "count": 0, "flows": 0}
    return m


COMPARE_KEYS = (
    ("ttft_p50_ms", ("ttft_ms", "p50")), ("ttft_p99_ms", ("ttft_ms", "p99")),
    ("tpot_p50_ms", ("tpot_ms", "p50")), ("tpot_p99_ms", ("tpot_ms", "p99")),
    ("e2e_p50_ms", ("e2e_ms", "p50")), ("slo_attainment", ("slo_attainment",)),
    ("ttft_attainment", ("slo", "ttft_attainment")), ("tpot_attainment", ("slo", "tpot_attainment")),
    ("goodput_req_s", ("goodput_req_s",)), ("hit_rate", ("hit_rate",)),
    ("preemptions", ("preemptions", "count")),
)


def _get(m: dict | None, path: tuple) -> Any:
    for k in path:
        if m is None:
            return None
        m = m.get(k)
    return m


def comparison(pd: dict, col: dict) -> dict[str, dict]:
    """{metric: {"pd", "colocated"}} for the headline figures."""
    return {name: {"pd": _get(pd, path), "colocated": _get(col, path)} for name, path in COMPARE_KEYS}
