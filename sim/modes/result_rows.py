"""A single-node run's per-request result columns, held a block of requests at a time.

Up to ``report.exact_quantiles_max_requests`` requests (or when the caller collects every row in a list, as
``--compare-measured`` does) a run keeps its columns whole: one block, handed over at the end, and the report
is what it always was, to the last bit. Above it the columns are blocks of ``ROW_BLOCK`` requests, each
handed to the run's consumer (``sim.report.single.SingleTotals``: sums, sketches, the saturation check, the
streamed per-request file) as soon as every request in it and in the blocks before it is done, then
dropped. A hit-rate-only run holds one block; a timed one the blocks its requests in flight span
(issue #19: memory that follows the requests in flight, not the run's length).

The replays write a request's row in its block (``at``) and say when the row is complete (``done``); blocks
go to the consumer in request order, so the per-request file keeps its order.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.modes.common import nan_rows

ROW_BLOCK = 1 << 16  # requests a block of a streamed run (10 timed columns: ~7 MB)


# the per-request columns: sim.modes.single.RunResult's arrays of the same names when a run keeps them whole
COLUMNS = ("worker", "hit_blocks", "hit_tokens", "queue_s", "load_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s",
           "recomputed_tokens")


class RowBlock:
    """The result columns (COLUMNS) of requests [lo, lo + n)."""

    __slots__ = ("lo", "n", "left", *COLUMNS)

    def __init__(self, lo: int, n: int, timing: bool) -> None:
        self.lo, self.n, self.left = lo, n, n  # left: requests whose row is not complete yet
        self.worker = np.zeros(n, dtype=np.int64)
        self.hit_blocks = np.zeros((n, 3), dtype=np.int64)  # blocks served from hbm, dram, ssd
        self.hit_tokens = np.zeros((n, 3), dtype=np.int64)
        # a latency per request: only the timed replay writes them (nan_rows: a hit-rate-only run holds a view)
        self.queue_s = nan_rows(n, written=timing)
        self.load_s = nan_rows(n, written=timing)
        self.prefill_s = nan_rows(n, written=timing)
        self.ttft_s = nan_rows(n, written=timing)
        self.tpot_s = nan_rows(n, written=timing)
        self.e2e_s = nan_rows(n, written=timing)
        self.recomputed_tokens = np.zeros(n, dtype=np.int64)


class ResultRows:
    """The blocks of one run of `n` requests, `size` requests each (``size >= n``: one block)."""

    def __init__(self, n: int, timing: bool, size: int, consume: Callable[[RowBlock], None]) -> None:
        if size < 1:
            raise ValueError("a row block holds at least one request")
        self.n, self.timing, self.size, self.consume = n, timing, size, consume
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
            b = self.open[k] = RowBlock(lo, min(self.size, self.n - lo), self.timing)
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
            self.consume(b)

    def close(self) -> None:
        """End of the run: every row is complete and handed over (an empty run hands over one empty block,
        so the consumer's report is the empty arrays')."""
        if self.n == 0:
            self.consume(RowBlock(0, 0, self.timing))
            return
        self._hand_over()
        if self.open or self.next * self.size < self.n:
            left = sum(b.left for b in self.open.values())
            raise RuntimeError(f"result rows: {left} requests never completed their row (block {self.next} of "
                               f"{-(-self.n // self.size)} not handed over)")


def block_size(n: int, streamed: bool) -> int:
    """A run's block: ROW_BLOCK requests when it streams its rows, else the whole run."""
    return ROW_BLOCK if streamed and n > ROW_BLOCK else max(1, n)


__all__ = ["COLUMNS", "ROW_BLOCK", "ResultRows", "RowBlock", "block_size"]
