"""The Collector: validated trace rows accumulated in typed arrays, then one Workload.

A loader hands each parsed row to :meth:`Collector.add`, which checks what is
common to all formats (lengths, time order, hash-id counts), counts
rejections by reason in :class:`LoadStats` (or raises :class:`InputError`
under ``strict``) and honours ``limit``; :meth:`Collector.build` turns the
arrays into a :class:`Workload` in one go.

Hash ids are not kept per access: every ``_BATCH_IDS`` ids the rows go to a
:class:`trace.prefix_stream.PrefixStream`, which keeps only each row's own
blocks (past the common prefix with its session's previous row) and checks
prefix identity on the fly, so loading follows the unique blocks. Then each
request is re-parented to the first holder of its seen prefix (trace.reparent:
the distinct form, whatever the sessions). The Workload is the one the whole
CSR gave (``ensure_prefix_ids`` then ``Workload.compacted``): the same ids,
parents and shared counts.
"""
from __future__ import annotations

import math
from array import array
from pathlib import Path

import numpy as np

from sim.errors import InputError
from trace.blockids import synthetic_block_ids
from trace.prefix import PrefixBlocks, worth_compacting
from trace.prefix_stream import PrefixStream
from trace.reparent import distinct_form, distinct_in_place
from trace.workload import LoadStats, Workload

# Latest accepted arrival (ms after the trace's time origin): ~317 years, above epoch-ms timestamps
# (1.7e12) and low enough that float64 keeps sub-millisecond steps; 1e300 would make every TTFT 0.
MAX_ARRIVAL_MS = 1e13
# Hash ids held per access before a batch goes to the PrefixStream (8 MiB).
_BATCH_IDS = 1 << 20


class Collector:
    """Accumulates validated rows in typed arrays; builds the Workload."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        *,
        strict: bool = False,
        limit: int | None = None,
        block_tokens: int | None = None,
    ) -> None:
        if limit is not None and (type(limit) is not int or limit < 1):
            raise InputError(f"limit must be a positive integer, got {limit!r}", where=str(path))
        self.path = path
        self.fmt = fmt
        self.strict = strict
        self.limit = limit
        self.block_tokens = block_tokens  # None: no hash ids (synthetic later)
        self.stats = LoadStats(source=str(path))
        # Typed arrays, 8 bytes per value (a list of ints costs ~36).
        self.arrival = array("d")
        self.inp = array("q")
        self.out = array("q")
        self.sess = array("q")
        self.turn = array("q")
        self.counts = array("q")
        # The rows with hash ids not yet absorbed: their counts, ids and sessions.
        self.ids = array("q")
        self.batch_counts = array("q")
        self.batch_sess = array("q")
        self.stream = PrefixStream()
        self.last_ms = -math.inf
        self.full = False

    # -- rejections

    def reject(self, line: int, reason: str, detail: str = "") -> None:
        if len(detail) > 160:
            detail = detail[:157] + "..."
        if self.strict:
            msg = f"line {line}: {reason}" + (f": {detail}" if detail else "")
            raise InputError(msg, where=str(self.path))
        self.stats.reject(line, reason, detail)

    # -- rows

    def add(
        self,
        line: int,
        arrival_ms: float,
        inp: int,
        out: int,
        session: int = -1,
        turn: int = -1,
        hashes: list | None = None,
        block_tokens: int | None = None,
    ) -> bool:
        """Validate and keep one request; False (and counted) when rejected."""
        if inp < 0 or out < 0:
            which = "input" if inp < 0 else "output"
            self.reject(line, "negative_length", f"{which} length {inp if inp < 0 else out}")
            return False
        if arrival_ms < 0:
            self.reject(line, "negative_timestamp", f"arrival {arrival_ms:g} ms")
            return False
        if arrival_ms > MAX_ARRIVAL_MS:
            self.reject(line, "timestamp_out_of_range",
                        f"arrival {arrival_ms:g} ms is beyond the limit of {MAX_ARRIVAL_MS:g} ms (~317 years)")
            return False
        if arrival_ms < self.last_ms:
            self.reject(
                line, "timestamp_out_of_order",
                f"arrival {arrival_ms:g} ms is before the previous row's {self.last_ms:g} ms",
            )
            return False
        if hashes is not None:
            bt = block_tokens or self.block_tokens
            assert bt is not None, "rows with hash ids need a block size (Collector or add block_tokens)"
            want = -(-inp // bt)
            if len(hashes) != want:
                self.reject(
                    line, "hash_ids_count_mismatch",
                    f"{len(hashes)} hash_ids for input_length {inp} (expected {want} at {bt} tokens/block)",
                )
                return False
            self.counts.append(len(hashes))
            self.batch_counts.append(len(hashes))
            self.batch_sess.append(session)
            self.ids.extend(hashes)
            if len(self.ids) >= _BATCH_IDS:
                self.flush()
        self.last_ms = arrival_ms
        self.arrival.append(arrival_ms)
        self.inp.append(inp)
        self.out.append(out)
        self.sess.append(session)
        self.turn.append(turn)
        self.stats.loaded += 1
        if self.limit is not None and self.stats.loaded >= self.limit:
            self.full = True
        return True

    def flush(self) -> None:
        """Hand the pending rows with hash ids to the PrefixStream."""
        if self.batch_counts:
            self.stream.absorb(_np(self.batch_counts, np.int64), _np(self.ids, np.int64),
                               _np(self.batch_sess, np.int64))
            # new arrays: the numpy views above hold buffer exports of the old ones
            self.ids, self.batch_counts, self.batch_sess = array("q"), array("q"), array("q")

    # -- the result

    def build(self, name: str, *, synthetic_block_tokens: int | None = None,
              synthetic_flag: bool = False) -> tuple[Workload, LoadStats]:
        """The Workload arrays. Hash ids are checked for prefix identity;
        without hash ids (synthetic_block_tokens given) ids are synthesized."""
        st = self.stats
        if st.rows_read == 0:
            raise InputError("empty trace file: no data rows", where=str(self.path))
        if st.loaded == 0:
            err = InputError(
                f"no valid requests: all {st.rows_read} rows rejected ({_reasons(st)})"
                + (f"; first: line {st.examples[0][0]}: {st.examples[0][1]}" if st.examples else "")
                + (f"; is this a {self.fmt} trace?" if set(st.rejected) == {"malformed_row"} else ""),
                where=str(self.path),
            )
            err.load_stats = st  # type: ignore[attr-defined]
            raise err
        n = st.loaded
        ids: np.ndarray | None
        pb: PrefixBlocks | None = None
        arrival = _np(self.arrival, np.float64)
        inp = _np(self.inp, np.int64)
        out = _np(self.out, np.int64)
        sess = _np(self.sess, np.int64)
        turn = _np(self.turn, np.int64)
        if synthetic_block_tokens is not None:
            offsets, ids = synthetic_block_ids(inp, sess, synthetic_block_tokens)
            bt = synthetic_block_tokens
            synthetic = True
            if (sess >= 0).any():
                st.notes.append(
                    f"block ids are synthetic ({bt}-token blocks made from token counts): the turns of a "
                    "session share their full blocks up to the shorter prompt; a partial last block and "
                    "every request without a session get ids of their own"
                )
            else:
                st.notes.append(
                    f"block ids are synthetic ({bt}-token blocks made from token counts): the trace has no "
                    "session ids, so every request gets unique blocks (no prefix sharing is invented)"
                )
        else:
            assert self.block_tokens is not None, "rows without hash ids need synthetic_block_tokens"
            bt = self.block_tokens
            synthetic = synthetic_flag
            offsets, ids, pb = self._blocks(n, sess)
        if self.full and self.limit is not None:
            st.notes.append(f"stopped after the first {self.limit} loaded requests (limit)")
        w = Workload(
            name=name,
            arrival_ms=arrival,
            input_tokens=inp,
            output_tokens=out,
            session_id=sess,
            block_offsets=offsets,
            block_ids=ids,  # type: ignore[arg-type]  # None: the parent form holds them
            block_tokens=int(bt),
            turn=turn,
            synthetic_blocks=synthetic,
            prefix=pb,
            parent_form_checked=synthetic_block_tokens is None,
        )
        return w, st

    def _blocks(self, n: int, sess: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, PrefixBlocks | None]:
        """(offsets, CSR ids, parent form) of the hash ids: the form ``Workload.compacted`` would pick."""
        self.flush()
        stream = self.stream
        assert stream.n == n, "every loaded row of a hashed trace has hash ids"
        pb, n_conflicts = stream.finish()
        self.stream = PrefixStream()
        if n_conflicts:
            self.stats.notes.append(
                f"hash_ids are not prefix-identifying ({n_conflicts} ids follow different prefixes); "
                "re-keyed every block by its whole prefix"
            )
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(_np(self.counts, np.int64), out=offsets[1:])
        # Each request re-parented to the first holder of its seen prefix (trace.reparent), across sessions
        # too; the session form when the ids do not allow it.
        n_acc = int(offsets[-1])
        if not n_conflicts and worth_compacting(int(stream.counts[1]), n, n_acc):
            # prefix-identifying as read, and the distinct form (one own block per distinct id) is worth it:
            # built over the stream's own ids, which it overwrites (no second array of them)
            return offsets, None, distinct_in_place(pb, stream.own_ids, int(stream.counts[1]))
        d = distinct_form(pb, max_own=n_acc - 2 * n - 1)  # no further than worth_compacting allows
        best = d if d is not None else pb
        if worth_compacting(best.n_own(), n, n_acc):  # as Workload.compacted decides
            return offsets, None, best
        if not np.any(sess >= 0):  # no parents: the own ids are the CSR
            return offsets, pb.ids_stored(), None
        return offsets, pb.to_csr()[1], None


def _np(a, dtype) -> np.ndarray:
    """A numpy view of a typed array (no copy), or a new array from a list."""
    if isinstance(a, array):
        return np.frombuffer(a, dtype=dtype)
    return np.array(a, dtype=dtype)


def _reasons(st: LoadStats) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(st.rejected.items(), key=lambda kv: -kv[1]))
