"""Per-request results (`run --requests-out FILE`): one row per request and run, as CSV or Parquet.

The columns come from the arrays the report's percentiles are computed from
(``RunResult``/``ClusterResult`` fields, ``sim.report.pd.per_request``), so
the file's TTFT percentiles, hit tokens and SLO share are the report's.
Each builder returns a ``RequestTable``: label columns naming the run
(policy, router, deployment) and numpy columns of one value per request.
Column names and meanings: docs/REPORT_SCHEMA.md, "Per-request file".
"""
from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.cache.layout import LOC_NAMES
from sim.config import Config
from sim.errors import InputError
from sim.io_safe import check_output_path
from sim.report.schema import slo_ok

WHERE = "--requests-out"
CSV_CHUNK_ROWS = 65_536  # rows formatted at a time: bounds the transient Python objects of the CSV writer


@dataclass
class RequestTable:
    """One run's rows: constant label columns first, then one numpy array per column."""

    labels: dict[str, str]
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def names(self) -> list[str]:
        return [*self.labels, *self.columns]


def _common(w, request_id: np.ndarray, lo: int = 0) -> dict[str, np.ndarray]:
    """The workload's columns of the requests `request_id` (consecutive from `lo`: views, no copies)."""
    hi = lo + len(request_id)
    return {
        "request_id": request_id,
        "session_id": w.session_id[lo:hi],
        "turn": w.turn[lo:hi],
        "arrival_s": w.arrival_ms[lo:hi] / 1000.0,
        "input_tokens": w.input_tokens[lo:hi],
        "output_tokens": w.output_tokens[lo:hi],
    }


def _timed(cfg: Config, parts: dict[str, np.ndarray], ttft: np.ndarray, tpot: np.ndarray, e2e: np.ndarray,
           recomputed: np.ndarray) -> dict[str, np.ndarray]:
    """recomputed_tokens, the TTFT parts in ms, decode/TTFT/TPOT/E2E in ms and slo_met (the report's test)."""
    ok_ttft, ok_tpot = slo_ok(ttft, tpot, cfg.slo.ttft_ms, cfg.slo.tpot_ms)
    # x * 1000.0 exactly as dist_ms does, so the file's percentiles equal the report's to the last bit
    cols: dict[str, np.ndarray] = {"recomputed_tokens": recomputed}
    cols.update({f"{k}_ms": np.asarray(v, dtype=float) * 1000.0 for k, v in parts.items()})
    cols["decode_ms"] = (e2e - ttft) * 1000.0
    cols["ttft_ms"] = ttft * 1000.0
    cols["tpot_ms"] = tpot * 1000.0
    cols["e2e_ms"] = e2e * 1000.0
    cols["slo_met"] = ok_ttft & ok_tpot
    return cols


def single_requests(cfg: Config, w, policy: str, timing: bool, b) -> RequestTable:
    """Rows of one block of a single-node replay (a sim.modes.result_rows.RowBlock: the whole run, or a block
    of a run that streams its rows); without timing only the cache columns."""
    cols = _common(w, np.arange(b.lo, b.lo + b.n, dtype=np.int64), b.lo)
    cols["worker"] = b.worker
    for k, tier in enumerate(("hbm", "dram", "ssd")):
        cols[f"cached_{tier}_tokens"] = b.hit_tokens[:, k]
    if timing:
        parts = {"load": b.load_s, "queue": b.queue_s, "prefill": b.prefill_s}
        cols.update(_timed(cfg, parts, b.ttft_s, b.tpot_s, b.e2e_s, b.recomputed_tokens))
    return RequestTable({"policy": policy}, cols)


def cluster_requests(cfg: Config, w, b, labels: dict[str, str], timing: bool, workers_per_rack: int) -> RequestTable:
    """Rows of one block of a cluster replay (a sim.modes.result_rows.RowBlock of CLUSTER_COLUMNS: the whole run,
    a block of a run that streams its rows, or a partitioned run's merged rows): cached tokens per location.
    `labels`: its router and policy."""
    cols = _common(w, np.arange(b.lo, b.lo + b.n, dtype=np.int64), b.lo)
    cols["worker"] = b.worker
    cols["rack"] = b.worker // workers_per_rack
    for k, loc in enumerate(LOC_NAMES):
        cols[f"cached_{loc}_tokens"] = b.hit_tokens[:, k]
    if timing:
        parts = {"load": b.net_s, "queue": b.queue_s, "prefill": b.prefill_s}
        cols.update(_timed(cfg, parts, b.ttft_s, b.tpot_s, b.e2e_s, b.recomputed_tokens))
    return RequestTable(dict(labels), cols)


def pd_requests(cfg: Config, workload, rejected: np.ndarray, b, a: dict[str, np.ndarray], kind: str, policy: str,
                start: int, end: int) -> RequestTable:
    """Rows of input requests [start, end) of `workload` for one PD or colocated deployment: the served ones are
    block `b` of its finished requests (sim.modes.pd.finished.PD_COLUMNS; `a`: sim.report.pd.per_request of it),
    in order; requests no replica could hold (`rejected` indexes, sorted) get replica -1, no times, slo_met
    False. A deployment that keeps its rows writes one table, [0, len(workload))."""
    m = end - start
    served = np.ones(m, dtype=bool)
    served[rejected[(rejected >= start) & (rejected < end)] - start] = False
    if int(served.sum()) != b.n:
        raise RuntimeError(f"per-request file: {b.n} served rows for {int(served.sum())} requests in [{start}, {end})")

    def spread(v: np.ndarray, fill: float | int) -> np.ndarray:
        out = np.full(m, fill, dtype=float if isinstance(fill, float) else np.int64)
        out[served] = v
        return out

    pre = b.pre
    dec = pre if kind == "colocated" else b.dec
    cols = _common(workload, np.arange(start, end, dtype=np.int64), start)
    cols["prefill_replica"] = spread(pre, -1)
    cols["decode_replica"] = spread(dec, -1)
    cols["cached_hbm_tokens"] = spread(a["hit_hbm"], 0)
    cols["cached_dram_tokens"] = spread(a["hit_dram"], 0)
    cols["cached_eic_tokens"] = spread(a["hit_eic"], 0)
    parts = {k: spread(a[k], np.nan) for k in ("load", "queue", "prefill", "decode_wait", "transfer")}
    cols.update(_timed(cfg, parts, spread(a["ttft"], np.nan), spread(a["tpot"], np.nan), spread(a["e2e"], np.nan),
                       spread(b.recomputed, 0)))
    return RequestTable({"deployment": kind, "policy": policy}, cols)


# ---------------------------------------------------------------- writing


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _columns_agree(tables: list[RequestTable]) -> list[str]:
    names = tables[0].names()
    for t in tables[1:]:
        if t.names() != names:  # every run of one command has the same mode and timing
            raise ValueError(f"per-request tables differ in columns: {names} vs {t.names()}")
    return names


def _csv_cells(v: np.ndarray) -> list:
    """One column chunk as CSV cells: NaN -> empty, bool -> true/false, numbers as Python's repr (exact)."""
    if v.dtype == bool:
        return np.where(v, "true", "false").tolist()
    cells = v.tolist()
    if v.dtype.kind == "f":
        return ["" if x != x else x for x in cells]
    return cells


def csv_rows(t: RequestTable, lo: int = 0, hi: int | None = None) -> Iterator[list[tuple]]:
    """Rows lo..hi of `t` as CSV cell tuples, CSV_CHUNK_ROWS at a time (the batch and the streamed writer)."""
    hi = len(t) if hi is None else hi
    for a in range(lo, hi, CSV_CHUNK_ROWS):
        b = min(hi, a + CSV_CHUNK_ROWS)
        cells = [[v] * (b - a) for v in t.labels.values()]
        cells += [_csv_cells(np.asarray(v[a:b])) for v in t.columns.values()]
        yield list(zip(*cells, strict=True))


def write_csv(tables: list[RequestTable], path: Path) -> None:
    names = _columns_agree(tables)
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(names)
        for t in tables:
            for rows in csv_rows(t):
                wr.writerows(rows)


def arrow_table(t: RequestTable, lo: int = 0, hi: int | None = None):
    """Rows lo..hi of `t` as a pyarrow Table: labels dictionary-encoded, NaN (a time the request does not
    have) -> null."""
    import pyarrow as pa

    hi = len(t) if hi is None else hi
    n = hi - lo
    data = {k: pa.array([v] * n, type=pa.string()).dictionary_encode() for k, v in t.labels.items()}
    data.update({k: pa.array(np.asarray(v[lo:hi]), from_pandas=True) for k, v in t.columns.items()})
    return pa.table(data)


def write_parquet(tables: list[RequestTable], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _columns_agree(tables)
    pq.write_table(pa.concat_tables([arrow_table(t) for t in tables]), path)


WRITERS = {".csv": write_csv, ".parquet": write_parquet}


def check_requests_out(path: str) -> Path:
    """The --requests-out path, refused before the run: bad suffix, Parquet without pyarrow, unusable path."""
    p = check_output_path(path, WHERE)
    suffix = p.suffix.lower()
    if suffix not in WRITERS:
        raise InputError(f"unsupported file type {p.suffix or '(none)'!r}; use .csv or .parquet", where=WHERE)
    if suffix == ".parquet" and not _has_pyarrow():
        raise InputError("writing .parquet needs pyarrow (pip install pyarrow); or use .csv", where=WHERE)
    anchor = p.resolve().parent
    while not anchor.exists():
        anchor = anchor.parent
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise InputError(f"cannot write in {str(anchor)[:200]!r} (permission denied)", where=WHERE)
    return p


def write_requests(tables: list[RequestTable], path: str | Path) -> None:
    """Write every run's rows to `path` (its suffix picks the format; see check_requests_out)."""
    WRITERS[Path(path).suffix.lower()](tables, Path(path))
