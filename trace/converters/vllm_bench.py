"""`vllm bench serve --save-result --save-detailed` JSON -> a trace that keeps what was measured.

The per-request lists are read by ``sim.timing.points.vllm_requests`` (the parser `calibrate timing
--points` uses too). Each successful request becomes one trace row: input/output tokens, its arrival
and four measured columns (trace.workload.MEASURED_COLUMNS), which `run --compare-measured` sets
against the simulated latencies:

* ``measured_ttft_ms``: ttfts x 1000;
* ``measured_tpot_ms``: sum(itls) / (output_tokens - 1) x 1000 (vllm's TPOT, excluding the first
  token); NaN for a request of one output token;
* ``measured_itl_p50_ms``: the median of its inter-token gaps (NaN without gaps);
* ``measured_e2e_ms``: (ttft + sum(itls)) x 1000.

Arrivals: ``start_times`` (the client's send times) relative to the first; without them (older vllm)
evenly spaced at ``request_rate`` (vllm drew its gaps from a Poisson/gamma process, which is lost), or
all at 0 when the rate was ``inf``. The benchmark JSON has no prompt text, so there is no prefix
structure: block ids are synthetic and unique per request (16 tokens per block, as for the Azure
token-count traces) and every prefix hit rate is 0 - unless the benchmark used a prefix dataset
whose structure you know, which the trace cannot show. The metadata and `trace stats` say so.

Skipped requests by reason: ``failed_request`` (an error text or no first token) and ``bad_value``.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from sim.errors import InputError
from sim.timing.points import BenchRequest, check_vllm_run, vllm_requests, vllm_runs
from trace.collector import Collector
from trace.converters.base import ConvertOptions, ConvertResult
from trace.converters.output import write_converted
from trace.rowio import trace_name
from trace.workload import MEASURED_COLUMNS, LoadStats, Workload

NAME = "vllm-bench"
BLOCK_TOKENS = 16
NO_PREFIX_NOTE = ("the benchmark JSON has no prompt text: block ids are synthetic and unique per request, so prefix "
                  "hit rates are 0 (unless the benchmark used a prefix dataset of known structure, which the trace "
                  "cannot show)")
# vllm's benchmark keys worth keeping in the metadata
RUN_KEYS = ("date", "backend", "model_id", "tokenizer_id", "num_prompts", "request_rate", "burstiness",
            "max_concurrency", "duration")


def _measured(r: BenchRequest) -> tuple[float, float, float, float]:
    gaps = r.itls_s
    decode_s = math.fsum(gaps)
    tpot = decode_s / (r.output_tokens - 1) * 1000.0 if r.output_tokens > 1 else math.nan
    itl = statistics.median(gaps) * 1000.0 if gaps else math.nan
    return r.ttft_s * 1000.0, tpot, itl, (r.ttft_s + decode_s) * 1000.0


def _arrivals(run: dict, reqs: list[BenchRequest], where: str) -> tuple[list[float], str]:
    """Arrival ms of each request and how they were found."""
    if reqs and all(r.start_s is not None for r in reqs):
        t0 = min(r.start_s for r in reqs if r.start_s is not None)
        # rounded to ns: perf_counter differences carry float noise (699.9999999999993)
        return [round((r.start_s - t0) * 1000.0, 6) for r in reqs if r.start_s is not None], "start_times"
    rate = run.get("request_rate")
    try:
        rate_f = float(rate) if rate is not None else math.inf
    except (TypeError, ValueError):
        raise InputError(f"request_rate: expected a number or \"inf\", got {rate!r}", where=where) from None
    if math.isfinite(rate_f) and rate_f > 0:
        step = 1000.0 / rate_f
        return [r.index * step for r in reqs], f"no start_times: evenly spaced at request_rate {rate_f:g}/s"
    return [0.0] * len(reqs), "no start_times and request_rate inf: all sent at 0"


def convert(path: Path, *, strict: bool = False,
            limit: int | None = None) -> tuple[Workload, LoadStats, dict[str, Any]]:
    """The trace of one vllm bench serve run (see the module doc); InputError on a file that is not one."""
    runs = vllm_runs(path)
    if len(runs) != 1:
        raise InputError(f"holds {len(runs)} runs (--append-result); convert one run per file", where=str(path))
    where, run = runs[0]
    check_vllm_run(run, where)
    coll = Collector(path, NAME, strict=strict, limit=limit)

    def skip(reason: str, at: str, detail: str) -> None:
        if strict:
            raise InputError(f"{reason}: {detail}", where=at)
        coll.stats.reject(int(at.rpartition(" ")[2]), reason, detail)

    reqs = vllm_requests(run, where, skip)
    coll.stats.rows_read = len(run["input_lens"])
    arrivals, how = _arrivals(run, reqs, where)
    order = sorted(range(len(reqs)), key=arrivals.__getitem__)  # stable: ties keep the run's order
    measured: list[list[float]] = [[] for _ in MEASURED_COLUMNS]
    for k in order:
        r = reqs[k]
        if coll.full:
            break
        if coll.add(r.index, arrivals[k], r.input_tokens, r.output_tokens):
            for col, v in zip(measured, _measured(r), strict=True):
                col.append(v)
    w, st = coll.build(trace_name(path), synthetic_block_tokens=BLOCK_TOKENS)
    w.extra = {name: np.asarray(col, dtype=np.float64) for name, col in zip(MEASURED_COLUMNS, measured, strict=True)}
    st.notes.append(f"arrivals: {how}")
    meta: dict[str, Any] = {
        "converter": NAME,
        "source": str(path),
        "requests": len(w),
        "rows_read": st.rows_read,
        "skipped": dict(st.rejected),
        "arrivals": how,
        "block_ids": f"synthetic, {BLOCK_TOKENS} tokens per block, unique per request",
        "prefix_structure": NO_PREFIX_NOTE,
        "measured_columns": list(MEASURED_COLUMNS),
        "benchmark": {k: run[k] for k in RUN_KEYS if k in run},
    }
    return w, st, meta


def convert_options(opts: ConvertOptions) -> ConvertResult:
    """The registry's entry: convert `opts.src` and write the trace and its metadata as one set."""
    w, ls, meta = convert(opts.src, strict=opts.strict, limit=opts.limit)
    meta.update(trace=opts.out.name, notes=list(ls.notes), skipped=dict(ls.rejected))
    if opts.url:
        meta["url"] = opts.url
    mp = write_converted(w, meta, opts.out)
    return ConvertResult(out=opts.out, meta_path=mp, requests=len(w), meta=meta)


CONVERTERS = {
    "vllm-bench": (convert_options,
                   "per-request JSON of `vllm bench serve --save-result --save-detailed`: token counts, arrivals "
                   "and the measured TTFT/TPOT/ITL/E2E as measured_* columns (for run --compare-measured)"),
}
