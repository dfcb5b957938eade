"""Measured timing points for `calibrate timing`: what was measured, on what, and the readers that make them.

A ``TimingPoint`` is one measured duration and the step-cost quantity it is
compared with (``sim.timing.calibrate.predict``):

* ``prefill``: one iteration of ``batch`` prefill chunks of ``prompt_tokens -
  cached_tokens`` new tokens each on top of ``cached_tokens`` (batch 1 =
  ``StepModel.prefill_s``);
* ``step``: a decode-only iteration of ``batch`` requests reading ``batch x
  context`` KV tokens (``StepModel.iteration_s(decode_batch, decode_kv_tokens)``);
* ``itl``: the mean inter-token latency of ``batch`` concurrent requests of
  ``prompt_tokens`` in / ``output_tokens`` out (``sim.timing.validation.itl_s``);
* ``linear``: the projection GEMMs of one transformer layer for ``tokens`` tokens (Vidur ``mlp.csv``): the model's
  linear term scaled by the layer's share ``layer_params`` of its linear weights;
* ``allreduce``: one TP all-reduce of ``message_bytes`` over ``tp`` GPUs
  (Vidur ``all_reduce.csv``).

Readers (registry ``READERS``, auto-detected by ``detect_format``): the points
CSV, a ``vllm bench serve --save-result --save-detailed`` JSON, and the Vidur
profiling CSVs (parsed by ``sim.timing.vidur_profiles``). Every bad value is an
InputError naming the file and line.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sim.config.gpus import gpu_spec
from sim.config.models import model_spec
from sim.errors import InputError

KINDS = ("prefill", "step", "itl", "linear", "allreduce")


@dataclass(frozen=True)
class Deployment:
    """What a point was measured on; "" / 0 = not in the file (taken from the command-line flags)."""

    gpu: str = ""
    model: str = ""
    tp: int = 0
    pp: int = 0
    dtype: str = ""   # weight dtype; "" = the config's model.weight_dtype
    kv_dtype: str = ""       # "" = the config's model.kv_dtype
    compute_dtype: str = ""  # GEMM dtype; "" = fp8 with fp8 weights, else fp16 (the config's when dtype is "")


@dataclass(frozen=True)
class TimingPoint:
    kind: str                 # one of KINDS
    where: str                # file:line (or file: field) it came from
    dep: Deployment
    measured_s: float
    prompt_tokens: int = 0    # prefill
    cached_tokens: int = 0    # prefill
    batch: int = 0            # prefill: chunks in the iteration; step: decode batch; itl: concurrent requests
    context: float = 0.0      # step, itl: mean KV tokens per request
    output_tokens: int = 0    # itl: output tokens per request
    tokens: int = 0           # linear: tokens through the layer
    layer_params: float = 0.0  # linear: weights of the measured GEMMs (one layer, all TP shards)
    hidden: int = 0           # linear: the measured layer's width (checked against the model)
    message_bytes: float = 0.0  # allreduce

    def describe(self) -> str:
        d = self.dep
        on = f"tp{d.tp}" + (f" pp{d.pp}" if d.pp > 1 else "")
        if self.kind == "prefill":
            cached = f" ({self.cached_tokens} cached)" if self.cached_tokens else ""
            what = f"prefill {self.prompt_tokens} tok{cached}"
            return f"{what} x{self.batch} {on}"
        if self.kind == "step":
            return f"step batch {self.batch} ctx {self.context:,.0f} {on}"
        if self.kind == "itl":
            return f"itl C={self.batch} {self.prompt_tokens}/{self.output_tokens} {on}"
        if self.kind == "linear":
            return f"linear {self.tokens} tok {on}"
        return f"all-reduce {self.message_bytes / 2**20:,.3g} MiB {on}"


# ---------------------------------------------------------------- value checks

def _num(raw: object, col: str, where: str, *, integer: bool = False, minimum: float = 0.0) -> float:
    """A finite number >= minimum (an integer if asked); anything else names file:line and column."""
    if isinstance(raw, bool):
        raise InputError(f"{col}: expected a number, got {raw!r}", where=where)
    try:
        v = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{col}: expected a number, got {raw!r}", where=where) from None
    if not math.isfinite(v):
        raise InputError(f"{col}: must be finite, got {raw!r}", where=where)
    if integer and v != int(v):
        raise InputError(f"{col}: expected a whole number, got {raw!r}", where=where)
    if v < minimum:
        raise InputError(f"{col}: must be >= {minimum:g}, got {raw!r}", where=where)
    return v


def _check_names(dep: Deployment, where: str) -> None:
    for col, name, lookup in (("gpu", dep.gpu, gpu_spec), ("model", dep.model, model_spec)):
        if not name:
            continue
        try:
            lookup(name)
        except InputError as e:
            msg = str(e).removeprefix(f"{e.where}: ") if e.where else str(e)
            raise InputError(f"{col}: {msg}", where=where) from None


# ---------------------------------------------------------------- points CSV

CSV_COLUMNS = ("gpu", "model", "tp", "prompt_tokens", "cached_tokens", "batch", "context",
               "measured_prefill_ms", "measured_step_ms")
# What a file must have: the deployment and batch, and at least one measured column with the shape it needs
# (prefill: prompt tokens; step: context). cached_tokens, pp and dtype are optional.
_NEEDS = {"measured_prefill_ms": ("prompt_tokens",), "measured_step_ms": ("context",)}


def read_points_csv(path: Path) -> list[TimingPoint]:
    """The points CSV: one row = a prefill point, a step point, or both (an empty measured column = none)."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        measured = [c for c in _NEEDS if c in header]
        missing = [c for c in ("gpu", "model", "tp", "batch") if c not in header]
        missing += [c for m in measured for c in _NEEDS[m] if c not in header]
        if not measured:
            missing.append("measured_prefill_ms or measured_step_ms")
        if missing:
            raise InputError(f"missing column(s) {', '.join(missing)} (columns: {', '.join(CSV_COLUMNS)}; "
                             "cached_tokens, pp, dtype optional)", where=f"{path}:1")
        points: list[TimingPoint] = []
        for i, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            points.extend(_csv_row(row, f"{path}:{i}"))
    if not points:
        raise InputError("no measured points (every row needs measured_prefill_ms or measured_step_ms)",
                         where=str(path))
    return points


def _csv_row(row: dict[str, str], where: str) -> list[TimingPoint]:
    dep = Deployment(gpu=row["gpu"], model=row["model"],
                     tp=int(_num(row["tp"], "tp", where, integer=True, minimum=1)),
                     pp=int(_num(row.get("pp") or 1, "pp", where, integer=True, minimum=1)),
                     dtype=row.get("dtype", ""))
    if not dep.gpu or not dep.model:
        raise InputError("gpu and model must not be empty", where=where)
    _check_names(dep, where)
    batch = int(_num(row["batch"], "batch", where, integer=True, minimum=1))
    out: list[TimingPoint] = []
    if row.get("measured_prefill_ms"):
        prompt = int(_num(row["prompt_tokens"], "prompt_tokens", where, integer=True))
        cached = int(_num(row.get("cached_tokens") or 0, "cached_tokens", where, integer=True))
        ms = _num(row["measured_prefill_ms"], "measured_prefill_ms", where)
        if ms <= 0:
            raise InputError(f"measured_prefill_ms: must be > 0, got {ms:g}", where=where)
        if prompt <= cached:
            raise InputError(f"prompt_tokens ({prompt}) must exceed cached_tokens ({cached}) "
                             "for a prefill measurement", where=where)
        out.append(TimingPoint("prefill", where, dep, ms / 1e3, prompt_tokens=prompt, cached_tokens=cached,
                               batch=batch))
    if row.get("measured_step_ms"):
        ms = _num(row["measured_step_ms"], "measured_step_ms", where)
        if ms <= 0:
            raise InputError(f"measured_step_ms: must be > 0, got {ms:g}", where=where)
        ctx = _num(row["context"], "context", where)
        out.append(TimingPoint("step", where, dep, ms / 1e3, batch=batch, context=ctx))
    if not out:
        raise InputError("neither measured_prefill_ms nor measured_step_ms is given", where=where)
    return out


# ---------------------------------------------------------------- vllm bench serve JSON
# Format: vllm/benchmarks/serve.py (https://github.com/vllm-project/vllm/blob/main/vllm/benchmarks/serve.py):
# main_async writes result_json = {date, backend, label, model_id, tokenizer_id, num_prompts, request_rate
# (a number or "inf"), burstiness, max_concurrency (null = unlimited), **benchmark_result}; without
# --save-detailed it pops input_lens, output_lens, start_times, ttfts, itls, generated_texts, errors.
# benchmark_result has duration (s) and per request: input_lens, output_lens (tokens), ttfts (s),
# itls (list of inter-token gaps, s) - calculate_metrics turns them into the *_ms fields with "* 1000".
# --append-result appends further runs as one JSON object per line.

VLLM_DETAILED = ("input_lens", "output_lens", "ttfts", "itls")


def vllm_runs(path: Path) -> list[tuple[str, dict]]:
    """The runs of a result file (one JSON object, or one per line after --append-result), with where each is."""
    text = path.read_text()
    try:
        obj = json.loads(text)
        return [(str(path), obj)]
    except json.JSONDecodeError:
        pass
    runs = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            runs.append((f"{path}:{i}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON ({e.msg})", where=f"{path}:{i}") from None
    return runs


def check_vllm_run(run: object, where: str) -> None:
    """InputError unless `run` is a result object with the per-request lists (--save-detailed)."""
    if not isinstance(run, dict):
        raise InputError("expected a JSON object (a vllm bench serve result)", where=where)
    missing = [k for k in VLLM_DETAILED if k not in run]
    if missing:
        raise InputError(f"no per-request fields {', '.join(missing)}: rerun vllm bench serve with "
                         "--save-result --save-detailed", where=where)


def read_vllm_bench(path: Path) -> list[TimingPoint]:
    """Points from a vllm bench serve result (every run of an --append-result file).

    * prefill: with max_concurrency 1 every successful request's TTFT is one
      prefill point (batch 1, nothing cached); otherwise only the request with
      the smallest TTFT (the one that queued least), still batch 1.
    * step: the median of all inter-token latencies of the run, at batch =
      max_concurrency (or, when unset, the mean number of requests in flight by
      Little's law: sum of request latencies / duration, rounded) and context
      = the mean over requests of input + output/2 tokens.
    """
    points: list[TimingPoint] = []
    for where, run in vllm_runs(path):
        check_vllm_run(run, where)
        points.extend(_vllm_run(run, where))
    if not points:
        raise InputError("no successful requests with a first token", where=str(path))
    return points


@dataclass(frozen=True)
class BenchRequest:
    """One successful request of a vllm bench serve run (read by vllm_requests)."""

    index: int                # its position in the run's lists
    input_tokens: int
    output_tokens: int
    ttft_s: float
    itls_s: tuple[float, ...]  # inter-token gaps
    start_s: float | None     # start_times entry (the client's perf_counter at sending), None when absent


# skip(reason, where, detail) for a request vllm_requests leaves out: reason "failed_request" (an error text
# or no first token) or "bad_value" (a field that is not a number of the right kind).
SkipFn = Callable[[str, str, str], None]


def _skip_failed_only(reason: str, where: str, detail: str) -> None:
    """Calibration's rule: failed requests are left out silently, a bad value is an error."""
    if reason != "failed_request":
        raise InputError(detail, where=where)


def vllm_requests(run: dict, where: str, skip: SkipFn | None = None) -> list[BenchRequest]:
    """The successful requests of one run (its per-request lists); the one parser of this format.

    skip (default: failed ones silently, a bad value raises) decides what a left-out request does.
    """
    skip = skip or _skip_failed_only
    cols = [run[k] for k in VLLM_DETAILED]
    if not all(isinstance(c, list) for c in cols) or len({len(c) for c in cols}) != 1:
        raise InputError(f"{', '.join(VLLM_DETAILED)} must be lists of equal length", where=where)
    errors = run.get("errors") or [""] * len(cols[0])
    starts = run.get("start_times")
    if starts is not None and (not isinstance(starts, list) or len(starts) != len(cols[0])):
        raise InputError("start_times must be a list as long as input_lens", where=where)
    reqs = []
    for i, (n_in, n_out, ttft, itl) in enumerate(zip(*cols, strict=True)):
        at = f"{where}: request {i}"
        if (errors[i] if i < len(errors) else "") or not ttft:
            # vllm records ttft 0.0 and an error text
            skip("failed_request", at, str(errors[i] if i < len(errors) else "") or "no first token")
            continue
        try:
            n_in = int(_num(n_in, "input_lens", at, integer=True, minimum=1))
            n_out = int(_num(n_out, "output_lens", at, integer=True))
            ttft = _num(ttft, "ttfts", at)
            if not isinstance(itl, list):
                raise InputError(f"itls: expected a list, got {itl!r}", where=at)
            gaps = tuple(_num(g, "itls", at) for g in itl)
            start = _num(starts[i], "start_times", at, minimum=-math.inf) if starts is not None else None
        except InputError as e:
            skip("bad_value", at, str(e).removeprefix(f"{at}: "))
            continue
        reqs.append(BenchRequest(i, n_in, n_out, ttft, gaps, start))
    return reqs


def _vllm_run(run: dict, where: str) -> list[TimingPoint]:
    reqs = [(r.input_tokens, r.output_tokens, r.ttft_s, list(r.itls_s)) for r in vllm_requests(run, where)]
    if not reqs:
        return []
    conc = run.get("max_concurrency")
    dep = Deployment()
    if conc is not None:
        conc = int(_num(conc, "max_concurrency", where, integer=True, minimum=1))
    points: list[TimingPoint] = []
    pre = reqs if conc == 1 else [min(reqs, key=lambda r: r[2])]
    for n_in, _, ttft, _ in pre:
        points.append(TimingPoint("prefill", f"{where}: ttft", dep, ttft, prompt_tokens=n_in, batch=1))
    gaps = [g for r in reqs for g in r[3] if g > 0]
    if gaps:
        batch = conc
        if batch is None:
            duration = _num(run.get("duration"), "duration", where)
            if duration <= 0:
                raise InputError("duration must be > 0 without max_concurrency", where=where)
            batch = max(1, round(sum(r[2] + sum(r[3]) for r in reqs) / duration))
        ctx = statistics.fmean(r[0] + r[1] / 2.0 for r in reqs)
        points.append(TimingPoint("step", f"{where}: itls", dep, statistics.median(gaps), batch=batch, context=ctx))
    return points


# ---------------------------------------------------------------- Vidur profiling CSVs

def read_vidur(path: Path) -> list[TimingPoint]:
    """Vidur profiles in its data/profiling layout, parsed by sim.timing.vidur_profiles:
    ``<root>/<gpu>/<model>/mlp.csv`` -> one linear point per row (median ms of the layer's
    projection GEMMs, vidur_profiles.LAYER_OPS, which the step-cost linear term stands for; the GPU from
    the directory, the model too when it names a preset) and ``<root>/network/<gpu>_<system>/all_reduce.csv``
    -> one allreduce point per row with >= 2 workers (median ms)."""
    from sim.timing import vidur_profiles as vp

    with path.open(errors="replace") as f:
        header = f.readline()
    parent, root = path.parent, path.parent.parent.parent
    points = []
    if "time_stats.all_reduce." in header:
        gpu = _known(gpu_spec, parent.name.split("_")[0])
        for i, a in enumerate(vp.all_reduce_points(parent.name, root=root)):
            if a.workers < 2:
                continue
            where = f"{path}: row {i + 1}"
            if not a.ms > 0 or not a.nbytes > 0:
                raise InputError("all-reduce time and size must be > 0", where=where)
            points.append(TimingPoint("allreduce", where, Deployment(gpu, "", a.workers, 1), a.ms / 1e3,
                                      message_bytes=float(a.nbytes)))
    elif "num_tensor_parallel_workers" in header:
        model = _known(model_spec, parent.name)
        for i, lp in enumerate(vp.layer_points(parent.parent.name, parent.name, root=root),
                               start=2):
            where = f"{path}:{i}"
            if not lp.ms > 0:
                raise InputError("the layer's op times must sum to > 0 ms", where=where)
            points.append(TimingPoint("linear", where, Deployment(_known(gpu_spec, lp.gpu), model, lp.tp, 1, "fp16"),
                                      lp.ms / 1e3, tokens=lp.tokens, layer_params=float(lp.shape.linear_params),
                                      hidden=lp.shape.hidden))
    else:
        raise InputError("not a Vidur mlp.csv or all_reduce.csv (attention.csv is not used)", where=str(path))
    if not points:
        raise InputError("no usable rows", where=str(path))
    return points


def _known(lookup: Callable[[str], object], name: str) -> str:
    """`name` if it is a preset `lookup` knows, else "" (then a flag must say)."""
    try:
        lookup(name)
        return name
    except InputError:
        return ""


# ---------------------------------------------------------------- detection and the registry

READERS: dict[str, Callable[[Path], list[TimingPoint]]] = {
    "csv": read_points_csv,
    "vllm-bench": read_vllm_bench,
    "vidur": read_vidur,
}


def detect_format(path: Path) -> str:
    """vllm-bench for JSON, vidur for a CSV with time_stats.* columns, else the points CSV."""
    with path.open(errors="replace") as f:
        head = f.read(4096)
    if head.lstrip().startswith("{"):
        return "vllm-bench"
    first = head.splitlines()[0] if head else ""
    return "vidur" if "time_stats." in first else "csv"


def read_points(path: str | Path, fmt: str | None = None) -> list[TimingPoint]:
    p = Path(path)
    if not p.is_file():
        raise InputError("points file not found", where=str(p))
    fmt = fmt or detect_format(p)
    if fmt not in READERS:
        raise InputError(f"unknown points format {fmt!r} (known: {', '.join(READERS)})", where="--format")
    return READERS[fmt](p)


def resolve(points: list[TimingPoint], gpu: str | None, model: str | None, tp: int | None,
            pp: int | None = None) -> list[TimingPoint]:
    """Fill what the files left out from the flags, keep the points the flags select, demand one gpu and model."""
    def only(key: str) -> str:  # the one value the points that name it agree on, else ""
        seen = {getattr(p.dep, key) for p in points if getattr(p.dep, key)}
        return seen.pop() if len(seen) == 1 else ""

    gpu, model = gpu or only("gpu"), model or only("model")
    want = {"gpu": gpu_spec(gpu).name if gpu else "", "model": (model or "").lower(), "tp": tp or 0, "pp": pp or 0}
    out = []
    for p in points:
        d = p.dep
        have = {"gpu": gpu_spec(d.gpu).name if d.gpu else "", "model": d.model.lower(), "tp": d.tp, "pp": d.pp}
        if any(want[k] and have[k] and want[k] != have[k] for k in want):
            continue  # measured on something else than the flags select
        d = replace(d, gpu=d.gpu or gpu or "", model=d.model or model or "", tp=d.tp or tp or 0,
                    pp=d.pp or pp or 1)
        for key, val in (("gpu", d.gpu), ("model", d.model), ("tp", d.tp)):
            if not val:
                raise InputError(f"the file does not say which {key} it was measured on: pass --{key}",
                                 where=p.where)
        _check_names(d, p.where)
        out.append(replace(p, dep=replace(d, gpu=gpu_spec(d.gpu).name)))
    if not out:
        raise InputError("no points left for the selected --gpu/--model/--tp", where="--points")
    for key in ("gpu", "model"):
        seen = sorted({getattr(p.dep, key).lower() for p in out})
        if len(seen) > 1:
            raise InputError(f"points span several {key}s ({', '.join(seen)}): choose one with --{key}",
                             where="--points")
    return out
