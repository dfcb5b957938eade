"""The columnar request stream every simulator, oracle and calculator reads.

Arrays, not lists of dicts, so that million-request traces fit in memory.
Block hashes are stored in CSR form: request i owns
``block_ids[block_offsets[i]:block_offsets[i+1]]``. A block id names a whole
prefix (as Mooncake's hash_ids do): two requests share block k only if they
share every block before it too, so a prefix cache can key on the id alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trace.prefix import PrefixBlocks, worth_compacting
from trace.reparent import distinct_form, subset


@dataclass
class LoadStats:
    """What a loader did with a file: rows read, loaded, rejected by reason."""

    source: str = ""
    rows_read: int = 0
    loaded: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    # (line number, reason) of the first few rejected rows, for the user.
    examples: list[tuple[int, str]] = field(default_factory=list)
    # Free-form remarks, e.g. "block ids synthesized per session".
    notes: list[str] = field(default_factory=list)

    MAX_EXAMPLES = 20

    def reject(self, line: int, reason: str, detail: str = "") -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if len(self.examples) < self.MAX_EXAMPLES:
            self.examples.append((line, f"{reason}: {detail}" if detail else reason))

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "loaded": self.loaded,
            "rejected": dict(self.rejected),
            "rejected_total": self.rejected_total,
            "examples": [{"line": ln, "reason": r} for ln, r in self.examples],
            "notes": list(self.notes),
        }


# What a benchmark measured per request (trace.converters.vllm_bench), kept as Workload.extra columns
# through the trace formats that can hold them (mooncake JSONL, npz); NaN = not measured.
MEASURED_COLUMNS = ("measured_ttft_ms", "measured_tpot_ms", "measured_itl_p50_ms", "measured_e2e_ms")


def _as(a, dtype) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=dtype))


# The default `turn`: every turn unknown. A shared sentinel recognised by
# identity, because the default cannot know the row count; __post_init__
# replaces it, so `Workload.turn` is always an array of n rows.
_TURNS_UNKNOWN = np.zeros(0, dtype=np.int64)


@dataclass
class Workload:
    """A validated request stream, sorted by arrival time."""

    name: str
    arrival_ms: np.ndarray  # float64, non-decreasing
    input_tokens: np.ndarray  # int64 >= 0
    output_tokens: np.ndarray  # int64 >= 0
    session_id: np.ndarray  # int64, -1 = unknown
    block_offsets: np.ndarray  # int64, len n+1, block_offsets[0] == 0: access positions of each request
    # int64, the CSR rows. None when `prefix` holds the lists: then it is expanded on first read (small
    # traces, tests); the simulators read `prefix_blocks()` and never expand it.
    block_ids: np.ndarray
    block_tokens: int  # tokens per hash block of the source
    # Turn number within the session (0 = first), -1 unknown.
    turn: np.ndarray = field(default_factory=lambda: _TURNS_UNKNOWN)
    # True when block ids were made up from token counts (Azure, BurstGPT...).
    synthetic_blocks: bool = False
    # Optional per-request float64 columns the simulation does not read but reports carry along, e.g. the
    # latencies a benchmark measured (MEASURED_COLUMNS, `run --compare-measured`). Empty on the normal path.
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    # The block lists in parent form (trace.prefix): memory follows the unique blocks, not the accesses.
    prefix: PrefixBlocks | None = None
    # True when the loader already found the parent form saves too little (compacted() then returns self
    # at once instead of compressing the CSR again: a transient of several arrays per access).
    parent_form_checked: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.arrival_ms = _as(self.arrival_ms, np.float64)
        self.input_tokens = _as(self.input_tokens, np.int64)
        self.output_tokens = _as(self.output_tokens, np.int64)
        self.session_id = _as(self.session_id, np.int64)
        self.block_offsets = _as(self.block_offsets, np.int64)
        n = len(self.arrival_ms)
        if self.block_ids is None:
            if self.prefix is None or len(self.prefix) != n:
                raise ValueError("Workload needs block_ids or a PrefixBlocks of n requests")
            if not np.array_equal(np.diff(self.block_offsets), self.prefix.counts()):
                raise ValueError("Workload.block_offsets disagree with the prefix form's block counts")
            del self.block_ids  # expanded on first read (__getattr__)
        else:
            self.block_ids = _as(self.block_ids, np.int64)
            if self.prefix is not None:
                raise ValueError("Workload takes block_ids or prefix, not both")
        if self.turn is None or self.turn is _TURNS_UNKNOWN:
            self.turn = np.full(n, -1, dtype=np.int64)
        self.turn = _as(self.turn, np.int64)
        for name in ("input_tokens", "output_tokens", "session_id", "turn"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Workload.{name} has {len(getattr(self, name))} rows, expected {n}")
        if len(self.block_offsets) != n + 1 or (n >= 0 and self.block_offsets[0] != 0):
            raise ValueError("Workload.block_offsets must have n+1 entries starting at 0")
        if self.prefix is None and self.block_offsets[-1] != len(self.block_ids):
            raise ValueError("Workload.block_offsets[-1] must equal len(block_ids)")
        if self.block_tokens <= 0:
            raise ValueError("Workload.block_tokens must be positive")
        if self.extra:
            self.extra = {k: _as(v, np.float64) for k, v in self.extra.items()}
            for name, col in self.extra.items():
                if len(col) != n:
                    raise ValueError(f"Workload.extra[{name!r}] has {len(col)} rows, expected {n}")

    @classmethod
    def from_requests(cls, requests, *, arrival_ms=None, input_tokens=None, output_tokens=None,
                      session_id=None, block_tokens: int = 16, name: str = "t") -> Workload:
        """A workload from each request's list of block ids (hand-made cases, tests, notebooks).

        Defaults: arrivals 0, 1, 2... ms; prompts of whole blocks; one output
        token; no sessions.
        """
        n = len(requests)
        offs = np.zeros(n + 1, dtype=np.int64)
        offs[1:] = np.cumsum([len(r) for r in requests])
        return cls(
            name=name,
            arrival_ms=np.arange(n, dtype=float) if arrival_ms is None else arrival_ms,
            input_tokens=np.array([block_tokens * len(r) for r in requests], dtype=np.int64)
            if input_tokens is None else input_tokens,
            output_tokens=np.ones(n, dtype=np.int64) if output_tokens is None else output_tokens,
            session_id=np.full(n, -1, dtype=np.int64) if session_id is None else session_id,
            block_offsets=offs,
            block_ids=np.array([b for r in requests for b in r], dtype=np.int64),
            block_tokens=block_tokens,
        )

    def __getattr__(self, name: str) -> Any:
        # Only reached for block_ids of a prefix-form workload: expand it once (the old in-memory path).
        prefix = self.__dict__.get("prefix")
        if name == "block_ids" and prefix is not None:
            ids = prefix.to_csr()[1]
            self.__dict__["block_ids"] = ids
            return ids
        raise AttributeError(name)

    @property
    def compact(self) -> bool:
        """True when the block lists are held in parent form and not expanded."""
        return self.prefix is not None and "block_ids" not in self.__dict__

    def prefix_blocks(self) -> PrefixBlocks:
        """The block lists as the simulators read them (the CSR as a parent-less PrefixBlocks if need be)."""
        if self.prefix is not None:
            return self.prefix
        return PrefixBlocks.from_csr(self.block_offsets, self.block_ids)

    @property
    def total_blocks(self) -> int:
        """Block accesses of the whole trace."""
        return int(self.block_offsets[-1])

    def compacted(self) -> Workload:
        """The same workload in parent form when that holds fewer words than the CSR
        (trace.prefix.worth_compacting); else itself. Block lists are unchanged. The form is distinct
        when the ids allow it (trace.reparent: each request extends the first holder of its seen prefix,
        whatever the sessions), else each request extends its session's previous one. A parent form that
        is not distinct is re-parented the same way."""
        if self.prefix is not None:
            d = None if self.prefix.distinct else distinct_form(self.prefix)
            return self if d is None or d is self.prefix else self._with_prefix(d)
        if self.parent_form_checked or not len(self):
            return self
        n_acc = len(self.block_ids)  # worth compacting holds fewer own blocks than this bound
        pb = distinct_form(PrefixBlocks.from_csr(self.block_offsets, self.block_ids),
                           max_own=n_acc - 2 * len(self) - 1)
        if pb is None and np.any(self.session_id >= 0):
            pb = PrefixBlocks.compress(self.block_offsets, self.block_ids, self.session_id)
        if pb is None or not worth_compacting(pb.n_own(), len(self), len(self.block_ids)):
            return self
        return self._with_prefix(pb)

    def _with_prefix(self, pb: PrefixBlocks) -> Workload:
        return Workload(
            name=self.name, arrival_ms=self.arrival_ms, input_tokens=self.input_tokens,
            output_tokens=self.output_tokens, session_id=self.session_id, block_offsets=self.block_offsets,
            block_ids=None, block_tokens=self.block_tokens, turn=self.turn,  # type: ignore[arg-type]
            synthetic_blocks=self.synthetic_blocks, extra=self.extra, prefix=pb,
        )

    def expanded(self) -> Workload:
        """The same workload with its CSR rows in memory (the old path; small traces)."""
        if self.prefix is None:
            return self
        return Workload(
            name=self.name, arrival_ms=self.arrival_ms, input_tokens=self.input_tokens,
            output_tokens=self.output_tokens, session_id=self.session_id, block_offsets=self.block_offsets,
            block_ids=self.prefix.to_csr()[1], block_tokens=self.block_tokens, turn=self.turn,
            synthetic_blocks=self.synthetic_blocks, extra=self.extra,
        )

    def __len__(self) -> int:
        return len(self.arrival_ms)

    @property
    def n_requests(self) -> int:
        return len(self.arrival_ms)

    def blocks(self, i: int) -> np.ndarray:
        """Block ids of request i (a view of the CSR, or a new array from the prefix form)."""
        if self.compact:
            assert self.prefix is not None
            return self.prefix.row(i)
        return self.block_ids[self.block_offsets[i] : self.block_offsets[i + 1]]

    def n_blocks(self) -> np.ndarray:
        return np.diff(self.block_offsets)

    def head(self, limit: int | None) -> Workload:
        """The first `limit` requests (all of them when limit is None)."""
        if limit is None or limit >= len(self):
            return self
        if self.compact:
            assert self.prefix is not None
            k = int(limit)
            return self._rows(slice(0, k), self.block_offsets[:k + 1], None, self.prefix.head(k))
        return self.select(np.arange(limit))

    def select(self, idx: np.ndarray) -> Workload:
        """A new Workload holding requests `idx` (in that order): in parent form when it is compact and the
        selection holds every selected request's parent (``trace.reparent.subset``), else expanded."""
        idx = np.asarray(idx, dtype=np.int64)
        counts = self.n_blocks()[idx]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        sub = subset(self.prefix, idx) if self.compact else None  # type: ignore[arg-type]
        if sub is not None:  # the selection holds its requests' parents: it stays in parent form (pods)
            return self._rows(idx, offsets, None, sub)
        if self.compact:  # expand the selected rows only (an audit's sample of a 10M-request trace)
            ids = self.prefix.rows_csr(idx)[1]  # type: ignore[union-attr]
        elif len(idx):
            starts = self.block_offsets[idx]
            # Gather each request's block slice without a Python loop.
            rel = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], counts)
            ids = self.block_ids[np.repeat(starts, counts) + rel]
        else:
            ids = np.zeros(0, dtype=np.int64)
        return self._rows(idx, offsets, ids, None)

    def _rows(self, sel, offsets: np.ndarray, ids: np.ndarray | None, prefix: PrefixBlocks | None) -> Workload:
        """Requests `sel` (a slice or an index array) with their block lists as `ids` (CSR) or `prefix`."""
        return Workload(
            name=self.name, arrival_ms=self.arrival_ms[sel], input_tokens=self.input_tokens[sel],
            output_tokens=self.output_tokens[sel], session_id=self.session_id[sel], block_offsets=offsets,
            block_ids=ids,  # type: ignore[arg-type]  # None with a prefix form
            block_tokens=self.block_tokens, turn=self.turn[sel], synthetic_blocks=self.synthetic_blocks,
            extra={k: v[sel] for k, v in self.extra.items()}, prefix=prefix,
        )

    def reblock(self, page_tokens: int) -> Workload:
        """Re-express block ids at a finer page size.

        `page_tokens` must divide `block_tokens`. Each source block becomes
        block_tokens/page_tokens pages with ids ``id * factor + k``; the pages
        past a request's input length are dropped, so a request's page count is
        ceil(input_tokens / page_tokens) capped by its source blocks. Coarser
        re-blocking would merge hashes of different prefixes, so it is refused.
        """
        if page_tokens == self.block_tokens:
            return self
        if page_tokens <= 0 or self.block_tokens % page_tokens != 0:
            raise ValueError(
                f"cache.block_tokens={page_tokens} must divide the trace's block size {self.block_tokens}"
            )
        if self.prefix is not None:  # finer pages of a parent-form trace: expanded (the estimate counts it)
            return self.expanded().reblock(page_tokens)
        factor = self.block_tokens // page_tokens
        nb = self.n_blocks()
        pages = np.minimum(-(-self.input_tokens // page_tokens), nb * factor)
        pages = np.maximum(pages, 0)
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(pages, out=offsets[1:])
        rel = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], pages)
        src = np.repeat(self.block_offsets[:-1], pages) + rel // factor
        ids = self.block_ids[src] * factor + rel % factor
        return Workload(
            name=self.name,
            arrival_ms=self.arrival_ms,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            session_id=self.session_id,
            block_offsets=offsets,
            block_ids=ids,
            block_tokens=page_tokens,
            turn=self.turn,
            synthetic_blocks=self.synthetic_blocks,
            extra=self.extra,
        )

    def nbytes(self) -> int:
        blocks = self.prefix.nbytes() if self.prefix is not None else 0
        if "block_ids" in self.__dict__:
            blocks += self.block_ids.nbytes
        return blocks + sum(
            a.nbytes
            for a in (
                self.arrival_ms, self.input_tokens, self.output_tokens, self.session_id,
                self.block_offsets, self.turn, *self.extra.values(),
            )
        )
