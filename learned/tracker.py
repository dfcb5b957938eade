"""The per-block tracker behind the learned policy's features, carried from chunk to chunk.

``learned.features`` defines the columns; this module computes them one chunk of consecutive requests
at a time from a state whose size follows the blocks seen so far, never the accesses: per block its
access count, previous access (position and request), first request, distinct sessions and distinct
followers, and its first session and first follower; per known session its latest turn. Times are read
from the workload's per-request arrivals by request index (the same float64 values the whole-trace
computation subtracted). A chunk's block lists are materialised from the workload's parent form
(``trace.prefix``) for that chunk only.

Block ids arrive dense, 0..n_blocks-1: they index the per-block arrays directly. A trace's stored ids
(hashes) are renumbered once by the caller with the project's one id-to-index map
(``PrefixBlocks.densified``: ``learned.features.FeatureStream``), so the tracker has no id index of
its own. A block's second and later sessions and followers go to sets of pairs, a hash index keyed by
two words: in multi-turn traffic most blocks have one of each, so the sets hold the shared prefixes'
exceptions.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from trace.prefix import mix64

# float64 columns the kernel writes (the others come from the request layout: learned.features)
TRACKED = ("frequency", "recency_ms", "reuse_gap", "age_ms", "sessions", "fanout", "session_gap_ms",
           "prefix_seen")
_LOAD_NUM, _LOAD_DEN = 6, 10  # a table is grown above 60 % full


@njit(cache=True, inline="always")
def _slot_hash(a, b):
    return mix64(mix64(a) + b)


@njit(cache=True)
def _find_or_add(table, ka, kb, cnt, a, b):
    """Index of key (a, b) in insertion order, added when new; (index, was_new). The caller reserved
    room (``PairIndex.reserve``), so nothing grows here."""
    mask = len(table) - 1
    h = _slot_hash(a, b) & mask
    while True:
        v = table[h]
        if v == -1:
            break
        if ka[v] == a and kb[v] == b:
            return v, False
        h = (h + 1) & mask
    v = cnt[0]
    table[h] = v
    ka[v] = a
    kb[v] = b
    cnt[0] = v + 1
    return v, True


@njit(cache=True)
def _rehash(ka, kb, n, size):
    table = np.full(size, -1, dtype=np.int64)
    mask = size - 1
    for v in range(n):
        h = _slot_hash(ka[v], kb[v]) & mask
        while table[h] != -1:
            h = (h + 1) & mask
        table[h] = v
    return table


def _grown(a: np.ndarray, n: int, fill) -> np.ndarray:
    out = np.full(n, fill, dtype=a.dtype)
    out[:len(a)] = a
    return out


class PairIndex:
    """Keys (a, b) numbered 0, 1, 2... as first added: a set, or a map to arrays indexed by the number."""

    def __init__(self) -> None:
        self.table = np.full(16, -1, dtype=np.int64)
        self.ka = np.zeros(8, dtype=np.int64)
        self.kb = np.zeros(8, dtype=np.int64)
        self.cnt = np.zeros(1, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.cnt[0])

    def reserve(self, extra: int) -> int:
        """Room for `extra` more keys; returns the key arrays' capacity (for arrays kept beside them)."""
        need = len(self) + int(extra)
        if need > len(self.ka):
            cap = max(need, 2 * len(self.ka))
            self.ka, self.kb = _grown(self.ka, cap, 0), _grown(self.kb, cap, 0)
        size = len(self.table)
        while _LOAD_DEN * need > _LOAD_NUM * size:
            size *= 2
        if size != len(self.table):
            self.table = _rehash(self.ka, self.kb, len(self), size)
        return len(self.ka)

    def nbytes(self) -> int:
        return self.table.nbytes + self.ka.nbytes + self.kb.nbytes


@njit(cache=True)
def _chunk(offs, ids, r0, arr, sess, pos0,
           freq, prev_pos, prev_req, first_req, n_sess, n_fan, sess1, fol1,
           sp_tab, sp_a, sp_b, sp_cnt,
           fp_tab, fp_a, fp_b, fp_cnt,
           st_req, out):
    """Tracked columns (``TRACKED``) of requests r0.. (CSR `offs`/`ids` from 0, dense ids) into `out`,
    updating the state. `arr`/`sess`: every request's arrival and session index (dense, -1 unknown);
    `st_req`: each session's latest request with blocks (-1 none yet). A block's first session and
    first follower are kept inline; only further ones go to the pair sets (most blocks have one of each)."""
    nan = np.nan
    for r in range(len(offs) - 1):
        lo, hi = offs[r], offs[r + 1]
        if hi == lo:
            continue  # a request without blocks has no accesses and is no turn of its session
        req = r0 + r
        t = arr[req]
        s = sess[req]
        prev_turn = nan
        k = -1
        if s >= 0:  # a known session's previous turn decides, not the prefix
            k = s
            if st_req[k] >= 0:
                prev_turn = arr[st_req[k]]
            st_req[k] = req
        start = pos0 + lo
        ps = 0
        deep = -1
        for j in range(lo, hi):
            b = ids[j]
            p = pos0 + j
            pp = prev_pos[b]
            seen = pp >= 0
            if seen and pp < start:  # previous access in an earlier request: part of the seen prefix
                ps = j - lo + 1
                deep = prev_req[b]
            freq[b] += 1
            if not seen:
                first_req[b] = req
            if k >= 0:
                if sess1[b] == -1:
                    sess1[b] = k
                    n_sess[b] += 1
                elif sess1[b] != k and _find_or_add(sp_tab, sp_a, sp_b, sp_cnt, b, k)[1]:
                    n_sess[b] += 1
            elif not (seen and pp >= start):  # an unknown session is its own request
                n_sess[b] += 1
            if j + 1 < hi:
                f = ids[j + 1]
                if fol1[b] == -1:
                    fol1[b] = f
                    n_fan[b] += 1
                elif fol1[b] != f and _find_or_add(fp_tab, fp_a, fp_b, fp_cnt, b, f)[1]:
                    n_fan[b] += 1
            out[j, 0] = freq[b]
            out[j, 1] = t - arr[prev_req[b]] if seen else nan
            out[j, 2] = p - pp if seen else nan
            out[j, 3] = t - arr[first_req[b]]
            out[j, 4] = n_sess[b]
            out[j, 5] = n_fan[b]
            prev_pos[b] = p
            prev_req[b] = req
        if k < 0 and ps > 0:  # unknown session: the request that last touched the deepest seen block
            prev_turn = arr[deep]
        for j in range(lo, hi):
            out[j, 6] = t - prev_turn
            out[j, 7] = ps


class Tracker:
    """The carried state: feed it consecutive chunks of requests (``update``), get their tracked columns.

    Per block (36 bytes with int32 indexes): access count, previous access position and request, first request,
    distinct sessions and followers, first session and first follower; plus the pair sets for blocks
    with more than one session or follower; per session its latest request. Block ids are dense,
    0..n_blocks-1, and so are the sessions' indexes, 0..n_sessions-1 per request (-1: unknown session),
    both renumbered by the caller (module doc). Request and block indexes are int32 below 2**31.
    """

    def __init__(self, arrival_ms: np.ndarray, session: np.ndarray, n_blocks: int, n_sessions: int) -> None:
        self.arr = np.ascontiguousarray(arrival_ms, dtype=np.float64)
        self.sess = np.ascontiguousarray(session)
        if self.sess.dtype.kind != "i" or len(self.sess) != len(self.arr):
            raise ValueError("tracker: one integer session index per request")
        if len(self.sess) and (self.sess.min() < -1 or self.sess.max() >= n_sessions):
            raise ValueError(f"tracker: session indexes must be dense, 0..{n_sessions - 1} (-1 unknown)")
        small = max(n_blocks, len(self.arr)) < 2**31
        self.idx_t = np.int32 if small else np.int64
        self.sess_pairs = PairIndex()  # (block, session index) beyond the block's first session
        self.fan_pairs = PairIndex()  # (block, next block in a request) beyond the block's first follower
        self.sess_req = np.full(int(n_sessions), -1, dtype=self.idx_t)  # each session's latest request
        self.pos = 0  # position of the next access
        self.request = 0  # the next request
        self.n_blocks = nb = int(n_blocks)  # the ids are 0..n_blocks-1: sized once, no growth slack
        t = self.idx_t
        self.prev_pos = np.full(nb, -1, dtype=np.int64)
        self.freq, self.n_sess, self.n_fan = np.zeros(nb, t), np.zeros(nb, t), np.zeros(nb, t)
        self.prev_req, self.first_req = np.zeros(nb, t), np.zeros(nb, t)
        self.sess1, self.fol1 = np.full(nb, -1, t), np.full(nb, -1, t)

    _PER_BLOCK = ("prev_pos", "freq", "n_sess", "n_fan", "prev_req", "first_req", "sess1", "fol1")

    def update(self, offs: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """float64 (accesses x len(TRACKED)) of the next chunk's requests (CSR `offs`/`ids` from 0)."""
        n = len(ids)
        out = np.empty((n, len(TRACKED)))
        r0 = self.request
        self.request += len(offs) - 1
        if n == 0:
            return out
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.min() < 0 or ids.max() >= self.n_blocks:  # the kernel indexes without bounds checks
            raise ValueError(f"tracker: block ids must be dense, 0..{self.n_blocks - 1}")
        self.sess_pairs.reserve(n)
        self.fan_pairs.reserve(n)
        sp, fp = self.sess_pairs, self.fan_pairs
        _chunk(np.ascontiguousarray(offs, dtype=np.int64), ids, r0, self.arr, self.sess, self.pos,
               self.freq, self.prev_pos, self.prev_req, self.first_req, self.n_sess, self.n_fan, self.sess1,
               self.fol1, sp.table, sp.ka, sp.kb, sp.cnt, fp.table, fp.ka, fp.kb, fp.cnt,
               self.sess_req, out)
        self.pos += n
        return out

    def nbytes(self) -> int:
        per_block = sum(getattr(self, name).nbytes for name in self._PER_BLOCK)
        return (per_block + self.sess_pairs.nbytes() + self.fan_pairs.nbytes()
                + self.sess_req.nbytes)
