"""A run's per-request result columns (single-node ``COLUMNS``, cluster ``CLUSTER_COLUMNS``), held a block of
requests at a time.

Up to ``report.exact_quantiles_max_requests`` requests (or when the caller collects every row in a list, as
``--compare-measured`` does) a run keeps its columns whole: one block, handed over at the end, and the report
is what it always was, to the last bit. Above it the columns are blocks of ``ROW_BLOCK`` requests, each
handed to the run's consumer (``sim.report.single.SingleTotals``, ``sim.report.cluster_totals.ClusterTotals``:
sums, sketches, the saturation check, the streamed per-request file) as soon as every request in it and in
the blocks before it is done, then dropped. A hit-rate-only run holds one block; a timed one the blocks its
requests in flight span (issue #19: memory that follows the requests in flight, not the run's length).

The replays write a request's row in its block (``at``) and say when the row is complete (``done``); blocks
go to the consumer in request order, so the per-request file keeps its order.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.cache.layout import LOC_NAMES
from sim.modes.common import nan_rows

ROW_BLOCK = 1 << 16  # requests a block of a streamed run (10 timed columns: ~7 MB)


@dataclass(frozen=True)
class Column:
    """One per-request result column: `width` values a request (0: one), and what an unwritten row holds."""

    name: str
    width: int = 0
    kind: str = "int"  # "int": int64 zeros; "float": float zeros; "latency": NaN, written by timed replays only

    def make(self, n: int, timing: bool) -> np.ndarray:
        shape = (n, self.width) if self.width else (n,)
        if self.kind == "latency":  # a hit-rate-only run holds one read-only view (nan_rows), not a row each
            return nan_rows(n, shape[1:], written=timing)
        return np.zeros(shape, dtype=np.int64 if self.kind == "int" else float)


def _latencies(*names: str) -> tuple[Column, ...]:
    return tuple(Column(k, kind="latency") for k in names)


# A single-node run's columns: sim.modes.single.RunResult's arrays of the same names when it keeps them whole;
# blocks and tokens served from hbm, dram, ssd.
COLUMNS = (Column("worker"), Column("hit_blocks", 3), Column("hit_tokens", 3),
           *_latencies("queue_s", "load_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s"), Column("recomputed_tokens"))
# A cluster replay's (sim.modes.cluster_result.ClusterResult; a pod's, sim.modes.partition_merge): served per
# location (sim.cache.layout.LOC_NAMES), the network wait (net_s), and busy_s, the seconds a request occupied
# its worker (e2e, or the estimate without timing).
CLUSTER_COLUMNS = (Column("hit_blocks", len(LOC_NAMES)), Column("hit_tokens", len(LOC_NAMES)), Column("worker"),
                   *_latencies("net_s", "queue_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s"),
                   Column("busy_s", kind="float"), Column("recomputed_tokens"))


class RowBlock:
    """The result columns of requests [lo, lo + n): one array attribute per Column."""

    def __init__(self, lo: int, n: int, timing: bool, columns: tuple[Column, ...] = COLUMNS) -> None:
        self.lo, self.n, self.left = lo, n, n  # left: requests whose row is not complete yet
        for c in columns:
            setattr(self, c.name, c.make(n, timing))

    @classmethod
    def of(cls, arrays: dict[str, np.ndarray], lo: int = 0) -> RowBlock:
        """Arrays already made (a run that kept its rows, a merged partitioned run) as the block of requests
        from `lo`."""
        b = cls(lo, len(next(iter(arrays.values()))) if arrays else 0, False, ())
        b.left = 0
        for k, v in arrays.items():
            setattr(b, k, v)
        return b

    def __getattr__(self, name: str) -> np.ndarray:  # only for the type checker: the columns are set above
        raise AttributeError(name)


class ResultRows:
    """The blocks of one run of `n` requests, `size` requests each (``size >= n``: one block). `keep`: a run
    that keeps its rows whole (one block) holds that block as ``whole`` once it is handed over."""

    def __init__(self, n: int, timing: bool, size: int, consume: Callable[[RowBlock], None],
                 columns: tuple[Column, ...] = COLUMNS, keep: bool = False) -> None:
        if size < 1:
            raise ValueError("a row block holds at least one request")
        self.n, self.timing, self.size, self.consume, self.columns = n, timing, size, consume, columns
        self.keep = keep
        self.whole: RowBlock | None = None
        self.open: dict[int, RowBlock] = {}
        self.next = 0  # the next block to hand over
        self.most_open = 0  # the most blocks held at once (tests, benchmarks)

    def at(self, i: int) -> RowBlock:
        """The block holding request i's row (made when first asked for)."""
        k = i // self.size
        b = self.open.get(k)
        if b is None:
            if not 0 <= i < self.n:
                raise IndexError(f"request {i} outside the run's {self.n}")
            lo = k * self.size
            b = self.open[k] = RowBlock(lo, min(self.size, self.n - lo), self.timing, self.columns)
            self.most_open = max(self.most_open, len(self.open))
        return b

    def done(self, i: int, count: int = 1) -> None:
        """Requests i .. i + count - 1 (one block's) have their complete rows."""
        b = self.at(i)
        b.left -= count
        if b.left == 0 and b.lo // self.size == self.next:
            self._hand_over()

    def _hand_over(self) -> None:
        while (b := self.open.get(self.next)) is not None and b.left == 0:
            del self.open[self.next]
            self.next += 1
            self._consume(b)

    def _consume(self, b: RowBlock) -> None:
        self.consume(b)
        if self.keep:
            self.whole = b

    def close(self) -> None:
        """End of the run: every row is complete and handed over (an empty run hands over one empty block,
        so the consumer's report is the empty arrays')."""
        if self.n == 0:
            self._consume(RowBlock(0, 0, self.timing, self.columns))
            return
        self._hand_over()
        if self.open or self.next * self.size < self.n:
            left = sum(b.left for b in self.open.values())
            raise RuntimeError(f"result rows: {left} requests never completed their row (block {self.next} of "
                               f"{-(-self.n // self.size)} not handed over)")


def row_bytes(columns: tuple[Column, ...], timing: bool = False) -> int:
    """The bytes of one request's row; a hit-rate-only run's latencies are one shared NaN view."""
    return sum(8 * max(c.width, 1) for c in columns if timing or c.kind != "latency")


def streams(cfg, n: int, requests) -> bool:
    """Whether a run of `n` requests streams its rows: above ``report.exact_quantiles_max_requests``, unless a
    list collects every row (`requests`: ``--compare-measured`` reads them all)."""
    return n > cfg.report.exact_quantiles_max_requests and not isinstance(requests, list)


def block_size(n: int, streamed: bool) -> int:
    """A run's block: ROW_BLOCK requests when it streams its rows, else the whole run."""
    return ROW_BLOCK if streamed and n > ROW_BLOCK else max(1, n)


__all__ = ["CLUSTER_COLUMNS", "COLUMNS", "ROW_BLOCK", "Column", "ResultRows", "RowBlock", "block_size", "row_bytes",
           "streams"]
