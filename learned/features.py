"""Per-access features of the learned eviction policy.

Every feature of access ``pos`` (one block of one request, indexed like
``AccessContext`` arrays) is a function of the accesses up to and including
the request that makes it: what a cache that keeps a few counters per block
and per session has seen at that moment. Nothing reads the future; the test
suite checks this by changing a workload's later requests and comparing.

The columns (``FEATURES``, in order):

``depth``            index of the block in its request (0 = first block).
``to_end``           blocks after this one in the request (0 = the last, usually
                     partial, block; its hash changes when the prompt grows).
``req_len_bucket``   request length bucket: floor(log2(blocks in the request)).
``frequency``        accesses of this block so far, this one included.
``recency_ms``       ms since the block's previous access (NaN on first access).
``reuse_gap``        accesses (block positions) since the block's previous access
                     (NaN on first access): recency in the cache's own clock.
``age_ms``           ms since the block's first access.
``sessions``         distinct sessions that touched the block so far (a request
                     with an unknown session counts as its own session).
``fanout``           distinct blocks seen right after this block so far: 2 or more
                     means the prefix up to here is shared by different
                     continuations (a system prompt or a shared document).
``session_gap_ms``   ms since the session's previous turn. For unknown sessions the
                     previous turn is inferred from the prefix: the request that last
                     touched this request's deepest previously seen block. NaN if none.
``prefix_seen``      leading blocks of this request seen before (the prefix an
                     infinite cache would hit), in blocks.

Size of the tier is deliberately not a column. The label is "reused within a
horizon H" with H taken from the trace's reuse distances, not from the tier,
so one score per access serves every tier (each worker's HBM, DRAM, SSD) and
is computed once. The tier size acts through the eviction rule instead: a
block's priority is its last access position plus ``H x P(reuse)``, and a
small tier reaches deep into that order while a large one evicts only its
tail. Measured on the Mooncake conversation trace: labels with a
capacity-scaled horizon (H = k x capacity, capacity as a feature) lost to LRU
at 16k blocks for every k tried, while the fixed horizon gains at 1k, 4k and
16k blocks (see the README section of the learned policy).

How it is computed: the per-block counters (frequency, sessions, fanout, first
and previous access) are what an online tracker updates in O(1) per access,
and that is how they are computed: ``FeatureStream`` feeds consecutive chunks
of requests to a ``learned.tracker.Tracker`` (compiled), whose state follows
the blocks seen so far, not the accesses. A chunk's rows are all a caller
holds: the policy scores a chunk and drops it (``learned.policy``), so the
features of a 10M-request trace never exist at once. The numpy whole-trace
computation it replaced is kept in the tests as the reference it equals bit
for bit (tests/learned/reference_features.py; the streamed chunks stacked
into one matrix, ``access_features``, in tests/learned/reference_online.py).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from learned.tracker import TRACKED, Tracker
from trace.prefix import first_use_ids

if TYPE_CHECKING:
    from sim.policies.base import AccessContext
    from trace.workload import Workload

FEATURES: tuple[str, ...] = (
    "depth",
    "to_end",
    "req_len_bucket",
    "frequency",
    "recency_ms",
    "reuse_gap",
    "age_ms",
    "sessions",
    "fanout",
    "session_gap_ms",
    "prefix_seen",
)
N_FEATURES = len(FEATURES)
_COL = {name: j for j, name in enumerate(FEATURES)}
_GAP = TRACKED.index("reuse_gap")


CHUNK_ACCESSES = 16384  # default rows per chunk (the policy scores a chunk per LightGBM call)


def dense_sessions(session_id: np.ndarray) -> tuple[np.ndarray, int]:
    """Per request the index of its session, 0..S-1 in order of first appearance (-1: unknown session),
    and S (int32 below 2**31 sessions: 4 bytes a request)."""
    sess = np.asarray(session_id, dtype=np.int64)
    known = sess >= 0
    ranks, n = first_use_ids(sess[known])
    out = np.full(len(sess), -1, dtype=np.int32 if n < 2**31 else np.int64)
    out[known] = ranks
    return out, n


class FeatureStream:
    """Feature rows of a workload's accesses, chunk by chunk of consecutive whole requests.

    `depth` replaces the depth column (a hand-made ``AccessContext``'s ``set_depth``); the other
    columns index blocks by their place in the request.
    """

    def __init__(self, w: Workload, depth: np.ndarray | None = None) -> None:
        self.w = w
        # the tracker indexes its arrays by id: stored ids renumbered once, on the parent form (no copy when
        # dense or already numbered in first-use order), and the known sessions likewise
        self.pb, n_ids = w.prefix_blocks().densified()
        sess, n_sess = dense_sessions(w.session_id)
        self.offsets = np.asarray(w.block_offsets, dtype=np.int64)
        self.depth = depth
        self.tracker = Tracker(w.arrival_ms, sess, n_ids, n_sess)
        self.next_request = 0  # first request of the next chunk
        self.n_requests = len(w)
        self.n = int(self.offsets[-1]) if len(self.offsets) else 0
        self._gaps = np.zeros(0)

    @property
    def pos(self) -> int:
        """Position of the next chunk's first access."""
        return int(self.offsets[self.next_request])

    def chunk_end(self, min_accesses: int) -> int:
        """The request after the shortest run of whole requests from ``next_request`` holding at least
        `min_accesses` accesses (or the last request)."""
        r0 = self.next_request
        want = self.offsets[r0] + max(1, int(min_accesses))
        return min(self.n_requests, max(r0 + 1, int(np.searchsorted(self.offsets, want, side="left"))))

    def take(self, r1: int) -> np.ndarray:
        """float32 rows (columns ``FEATURES``) of the accesses of requests ``next_request .. r1-1``."""
        r0 = self.next_request
        if r1 < r0 or r1 > self.n_requests:
            raise ValueError(f"features: chunk end {r1} outside {r0}..{self.n_requests}")
        offs, ids = self.pb.to_csr(r0, r1)
        tracked = self.tracker.update(offs, ids)
        n = len(ids)
        X = np.zeros((n, N_FEATURES), dtype=np.float32)
        counts = np.diff(offs)
        req = np.repeat(np.arange(r1 - r0, dtype=np.int64), counts)
        nblk = counts[req]
        rank = np.arange(n, dtype=np.int64) - offs[:-1][req]
        lo = int(self.offsets[r0])
        X[:, _COL["depth"]] = rank if self.depth is None else self.depth[lo:lo + n]
        X[:, _COL["to_end"]] = nblk - 1 - rank
        X[:, _COL["req_len_bucket"]] = np.floor(np.log2(np.maximum(nblk, 1)))
        for j, name in enumerate(TRACKED):
            X[:, _COL[name]] = tracked[:, j]
        self._gaps = tracked[:, _GAP]
        self.next_request = r1
        return X

    def reuse_gaps(self) -> np.ndarray:
        """float64 reuse distances of the last chunk's accesses (NaN: first access), exact where the
        float32 column rounds: the labels are settled from them (``learned.train``)."""
        return self._gaps

    def chunks(self, min_accesses: int = CHUNK_ACCESSES) -> Iterator[tuple[int, np.ndarray]]:
        """(first position, rows) of every remaining chunk."""
        return self.chunks_until(self.n_requests, min_accesses)

    def chunks_until(self, r_end: int, min_accesses: int = CHUNK_ACCESSES) -> Iterator[tuple[int, np.ndarray]]:
        """(first position, rows) of the chunks up to request `r_end` (the last one ends there)."""
        while self.next_request < r_end:
            pos = self.pos
            yield pos, self.take(min(r_end, self.chunk_end(min_accesses)))


def context_stream(ctx: AccessContext) -> FeatureStream:
    """The stream of a context's workload (with its hand-set depths, if any)."""
    if ctx._w is None:
        raise ValueError("learned features need an AccessContext made from a workload")
    return FeatureStream(ctx._w, ctx.depth if ctx._depth_given else None)

