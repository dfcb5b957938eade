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
from sim.report.schema import slo_ok
from sim.report.sink import latency_metrics, metrics_sink


def _arr(reqs, name: str, dtype=float) -> np.ndarray:
    """A copy of field `name` of every request (reqs: sim.modes.pd.finished.FinishedRequests)."""
    return np.array(reqs.col(name), dtype=dtype)


def per_request(res, cfg: Config) -> dict[str, np.ndarray]:
    """Per served request (in arrival order, ``res.reqs``): the arrays the metrics and the per-request file
    share. Times in seconds; TTFT parts load/queue/prefill/decode_wait/transfer add up to ``ttft``."""
    reqs = res.reqs
    bt = res.setup.block_tokens
    n = len(reqs)
    inp = _arr(reqs, "inp", np.int64)
    out = _arr(reqs, "out", np.int64)
    t_arr, t_ready, t_pstart = _arr(reqs, "t_arr"), _arr(reqs, "t_ready"), _arr(reqs, "t_pstart")
    t_pend, t_grant = _arr(reqs, "t_pend"), _arr(reqs, "t_grant")
    t_kv, t_done = _arr(reqs, "t_kv"), _arr(reqs, "t_done")
    ttft = t_kv - t_arr
    dec = out > 1
    tpot = np.full(n, np.nan)
    tpot[dec] = (t_done[dec] - t_kv[dec]) / (out[dec] - 1)
    after = t_kv - t_pend  # prefill end -> KV at decode
    decode_wait = np.where(np.isfinite(t_grant), np.minimum(after, np.maximum(0.0, t_grant - t_pend)), 0.0)
    hit_hbm = _arr(reqs, "hit_hbm", np.int64)
    hit_low = _arr(reqs, "hit_low", np.int64)
    hit_dram = np.minimum(hit_low, _arr(reqs, "n_dram", np.int64) * bt)
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


def deployment_metrics(res, cfg: Config, rejected: int = 0) -> dict[str, Any]:
    """Report metrics of one deployment run (a sim.modes.pd.simulator.DeploymentResult).

    ``rejected`` requests (no replica could hold them) count as SLO misses:
    they are in the denominators of the attainments, not in the latencies.
    """
    reqs = res.reqs
    setup = res.setup
    bt = setup.block_tokens
    bb = int(round(bt * setup.kv_bytes_per_token))
    n = len(reqs)
    n_all = max(1, n + rejected)
    a = per_request(res, cfg)
    inp, out, dec, t_arr, t_done = a["inp"], a["out"], a["dec"], a["t_arr"], a["t_done"]
    ttft, tpot, e2e = a["ttft"], a["tpot"], a["e2e"]
    slo = cfg.slo
    ok_ttft, ok_tpot = a["ok_ttft"], a["ok_tpot"]
    ok = ok_ttft & ok_tpot
    span = float(t_done.max() - t_arr.min()) if n else 0.0
    span_d = max(span, 1e-9)
    window = float(t_arr.max() - t_arr.min()) if n else 0.0
    window_d = window if window > 0 else span_d

    exposed = a["transfer"]
    parts = ("load", "queue", "prefill", "decode_wait", "transfer")
    sink = metrics_sink(n, cfg)
    sink.add({"ttft": ttft, "tpot": tpot, "e2e": e2e, **{k: a[k] for k in parts}})
    lat = latency_metrics(sink, parts, part_keys=False)

    hit_hbm, hit_low, hit_dram, hit_eic = a["hit_hbm"], a["hit_low"], a["hit_dram"], a["hit_eic"]
    total_in = max(1, int(inp.sum()))
    nblocks = res.workload.n_blocks()
    cached_blocks = np.minimum(-(-(hit_hbm + hit_low) // bt), nblocks)
    low = res.lower.summary()
    trees = res.trees
    sizes = ("used_bytes", "capacity_bytes")
    tiers = {
        "hbm": {"hit_rate": float(hit_hbm.sum() / total_in),
                "used_bytes": int(sum(len(t) for t in trees) * bb),
                "capacity_bytes": int(sum(t.capacity for t in trees) * bb)},
        "dram": {"hit_rate": float(hit_dram.sum() / total_in), **{k: low["dram"][k] for k in sizes}},
        "eic": {"hit_rate": float(hit_eic.sum() / total_in), **{k: low["eic"][k] for k in sizes}},
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
    preempted = _arr(reqs, "preempted", np.int64)
    m: dict[str, Any] = {
        "hit_rate": float((hit_hbm.sum() + hit_low.sum()) / total_in),
        "block_hit_rate": float(cached_blocks.sum() / max(1, int(nblocks.sum()))),
        "tiers": tiers,
        **lat,
        "iteration_ms": merged_summary_ms(e.hist for e in all_replicas),
        "throughput_tokens_s": float((inp.sum() + out.sum()) / span_d),
        "throughput_req_s": float(n / span_d),
        "slo_attainment": float(ok.sum() / n_all),
        "slo": {"ttft_ms": slo.ttft_ms, "tpot_ms": slo.tpot_ms,
                "ttft_attainment": float(ok_ttft.sum() / n_all),
                "tpot_attainment": float(ok_tpot.sum() / n_all),
                "attainment": float(ok.sum() / n_all)},
        "requests_served": n,
        "requests_rejected": int(rejected),
        "goodput_req_s": float(ok.sum() / window_d),
        "arrival_window_s": window,
        "gpu_utilization_share": {k: v["utilization_share"] for k, v in pools.items()},
        "pools": pools,
        "evictions": int(sum(t.evictions for t in trees)),
        "preemptions": {"mode": cfg.compute.preemption, "count": int(sum(e.stats.preemptions for e in all_replicas)),
                        "requests": int((preempted > 0).sum()),
                        "recompute_tokens": int(sum(e.stats.recompute_tokens for e in all_replicas)),
                        "swap_bytes": int(sum(e.stats.swap_bytes for e in all_replicas))},
        "lower_tiers": low,
        "tier_io": {t: dict(v) for t, v in res.lower.io.items()},
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
        xs = _arr(reqs, "xfer_s")
        moved = dec & (xs > 0)
        flow_s = float(xs[moved].sum())
        # over the requests whose KV moved (NaN elsewhere: dists skip non-finite values)
        sink.add({"kv_time": np.where(moved, xs, np.nan), "kv_exposed": np.where(moved, exposed, np.nan)})
        st = tr.stats.to_dict()
        m["kv_transfer"] = {
            "strategy": tr.name, "layerwise": bool(tr.layerwise and tr.name == "push"),
            **st,
            "time_ms": sink.dist_ms("kv_time"),
            "exposed_ms": sink.dist_ms("kv_exposed"),
            "hidden_share": float(max(0.0, 1.0 - exposed[moved].sum() / flow_s)) if flow_s > 0 else None,
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
