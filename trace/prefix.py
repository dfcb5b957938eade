"""Block lists held by what they add: a request = (the earlier request it extends, shared blocks, new blocks).

Multi-turn traffic repeats its context: turn k's prompt is turn k-1's prompt plus a little. Holding every
request's whole block list (the CSR ``Workload.block_ids``) costs 8 bytes per block *access*; holding
only the blocks a request adds costs 8 bytes per block it introduces, i.e. it follows the unique blocks.

``PrefixBlocks``: request i's block list is ``list(parent[i])[:shared[i]] + own_ids[own_off[i]:own_off[i+1]]``
with ``parent[i] < i`` (or -1 and ``shared[i] == 0``). The CSR form is the special case parent = -1
everywhere, own = the CSR itself (no copy), so the engines have one code path. Lists are materialised
one request at a time (``fill``, compiled: a walk up the parent chain copying each ancestor's own slice
that the request still needs) inside the simulators' loops; nothing expands the whole trace.

Every id of any request is in the own slice of that request or of an ancestor, which is earlier; so the
set of ids of the trace is the set of ``own_ids`` and the first request holding an id is the first
request whose own slice holds it (``first_seen``).

Dense ids (``PrefixBlocks.dense``): when no id occurs in two own slices, the ids' values carry nothing
the simulators use (they compare ids, never read them), so own block k can simply be called ``k``.
Then ``own_ids`` is not stored at all (an empty array; ``fill`` writes the position) and the form costs
four words per request whatever the prompt lengths: 10M requests of 238 blocks in 0.3 GiB instead of
2.9 GiB of 64-bit hashes. The synthetic generator uses it unless asked for its content hashes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit


@njit(cache=True)
def fill(parent, shared, own_off, own_ids, i, buf):
    """Write request i's block list into buf[0:n]; returns n. An empty `own_ids` means dense ids."""
    n = shared[i] + own_off[i + 1] - own_off[i]
    need = n
    cur = i
    dense = len(own_ids) == 0
    while need > 0 and cur >= 0:
        s = shared[cur]
        lo = own_off[cur]
        hi = min(s + own_off[cur + 1] - lo, need)
        if dense:
            for k in range(s, hi):
                buf[k] = lo + k - s
        else:
            for k in range(s, hi):
                buf[k] = own_ids[lo + k - s]
        if s < need:
            need = s
        cur = parent[cur]
    return n


@njit(cache=True)
def _fill_range(parent, shared, own_off, own_ids, i0, i1, offs, out):
    """CSR rows i0..i1-1 into out (offsets `offs` relative to row i0)."""
    for i in range(i0, i1):
        fill(parent, shared, own_off, own_ids, i, out[offs[i - i0]:])


@njit(cache=True)
def _fill_rows(parent, shared, own_off, own_ids, idx, offs, out):
    """CSR rows idx[0], idx[1], ... into out (offsets `offs`)."""
    for k in range(len(idx)):
        fill(parent, shared, own_off, own_ids, idx[k], out[offs[k]:])


@njit(cache=True)
def _first_blocks(parent, shared, own_off, own_ids):
    n = len(parent)
    out = np.full(n, -1, dtype=np.int64)
    dense = len(own_ids) == 0
    for i in range(n):  # a parent is earlier, so its first block is known
        if shared[i] > 0:
            out[i] = out[parent[i]]
        elif own_off[i + 1] > own_off[i]:
            out[i] = own_off[i] if dense else own_ids[own_off[i]]
    return out


@njit(cache=True)
def _compress_rows(offs, ids, prev_of, full):
    """Parent = previous request of the same session when it shares a prefix; shared = the common
    prefix capped at the parent's `full` blocks (a parent's last partial block never carries over)."""
    n = len(offs) - 1
    parent = np.full(n, -1, dtype=np.int64)
    shared = np.zeros(n, dtype=np.int64)
    own_len = np.zeros(n, dtype=np.int64)
    for i in range(n):
        lo, hi = offs[i], offs[i + 1]
        p = prev_of[i]
        m = 0
        if p >= 0:
            plo = offs[p]
            cap = min(hi - lo, full[p], offs[p + 1] - plo)
            while m < cap and ids[lo + m] == ids[plo + m]:
                m += 1
        if m > 0:
            parent[i] = p
            shared[i] = m
        own_len[i] = hi - lo - m
    return parent, shared, own_len


_NO_IDS = np.zeros(0, dtype=np.int64)


def worth_compacting(n_own: int, n_requests: int, n_access: int) -> bool:
    """Does the parent form hold fewer words than the CSR's ids? (its own ids plus a parent and a shared
    count per request; the offsets are the same)"""
    return n_own + 2 * n_requests < n_access


@njit(cache=True, inline="always")
def mix64(x):
    """splitmix64's finaliser, non-negative: a hash for open addressing (trace ids are often consecutive)."""
    z = np.uint64(x)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.int64(z >> np.uint64(1))


@njit(cache=True)
def _grown(tab, ids):
    """A table of first positions (-1 empty, keyed by ids[position]) rehashed at twice the size."""
    big = np.full(2 * len(tab), -1, dtype=tab.dtype)
    bmask = len(big) - 1
    for e in tab:
        if e != -1:
            g = mix64(ids[e]) & bmask
            while big[g] != -1:
                g = (g + 1) & bmask
            big[g] = e
    return big


@njit(cache=True)
def _first_use_ranks(ids, tab):
    """Rank of each id in order of first appearance. `tab` (all -1, a power of two) holds first positions
    (the key is ids[pos], the rank out[pos]); it doubles above 60 % full."""
    out = np.empty(len(ids), dtype=np.int64)
    mask = len(tab) - 1
    cnt = 0
    for j in range(len(ids)):
        x = ids[j]
        h = mix64(x) & mask
        while True:
            v = tab[h]
            if v == -1:
                break
            if ids[v] == x:
                break
            h = (h + 1) & mask
        if v != -1:
            out[j] = out[v]
            continue
        if 10 * (cnt + 1) > 6 * len(tab):
            tab = _grown(tab, ids)
            mask = len(tab) - 1
            h = mix64(x) & mask
            while tab[h] != -1:
                h = (h + 1) & mask
        tab[h] = j
        out[j] = cnt
        cnt += 1
    return out, cnt


@njit(cache=True)
def _seen_before(own_off, ids, tab):
    """Per request, how many of its own ids occur in an earlier request's own slice (first positions in
    `tab`, grown as in _first_use_ranks: an id first met before own_off[i] was an earlier request's)."""
    n = len(own_off) - 1
    seen = np.zeros(n, dtype=np.int64)
    mask = len(tab) - 1
    cnt = 0
    for i in range(n):
        lo = own_off[i]
        for j in range(lo, own_off[i + 1]):
            x = ids[j]
            h = mix64(x) & mask
            while True:
                v = tab[h]
                if v == -1 or ids[v] == x:
                    break
                h = (h + 1) & mask
            if v != -1:
                if v < lo:
                    seen[i] += 1
                continue
            if 10 * (cnt + 1) > 6 * len(tab):
                tab = _grown(tab, ids)
                mask = len(tab) - 1
                h = mix64(x) & mask
                while tab[h] != -1:
                    h = (h + 1) & mask
            tab[h] = j
            cnt += 1
    return seen


def _position_table(n_ids: int) -> np.ndarray:
    """An empty table of first positions (grown by the kernels): int32 slots below 2**31 ids."""
    return np.full(1024, -1, dtype=np.int32 if n_ids < 2**31 else np.int64)


@njit(cache=True)
def _consecutive(ids):
    for j in range(len(ids)):
        if ids[j] != j:
            return False
    return True


def numbered_in_order(ids: np.ndarray) -> bool:
    """Are the ids 0, 1, 2, ... (dense in first-use order, so renumbering would change nothing)? A trace
    numbering its hash ids as first met (Mooncake's) gives that in distinct form (trace.reparent)."""
    return bool(ids.size) and _consecutive(np.ascontiguousarray(ids, dtype=np.int64))


def first_use_ids(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ids 0..U-1 numbered in order of first appearance, and U. A request's new blocks get
    consecutive ids, so an engine's per-block records and index entries for them are neighbours
    in memory; any numbering gives the same results (ids are only compared for equality).
    One pass over a hash table of first positions (4 bytes a slot below 2**31 ids): a sort would hold
    several arrays per id."""
    if numbered_in_order(ids):
        return ids, int(ids.size)  # already dense in first-use order
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out, n = _first_use_ranks(ids, _position_table(ids.size))
    return out, int(n)


@dataclass
class PrefixBlocks:
    """The block lists of n requests in parent form (module doc)."""

    parent: np.ndarray  # int64 [n], -1 = none
    shared: np.ndarray  # int64 [n], leading blocks taken from the parent's list
    own_off: np.ndarray  # int64 [n + 1]
    # int64 [own_off[-1]]; None: dense ids (own block k is called k, nothing stored; module doc)
    own_ids: np.ndarray | None = None
    # True when no id occurs in two own slices (the synthetic generator's content model guarantees it):
    # then every own block is new when its request arrives, and the ids need no sort to count.
    distinct: bool = False

    def __post_init__(self) -> None:
        self.dense = self.own_ids is None or (len(self.own_ids) == 0 and self.distinct)
        if self.dense:
            self.own_ids = _NO_IDS
            self.distinct = True
        for name in ("parent", "shared", "own_off", "own_ids"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.int64))
        n = len(self.parent)
        n_own = int(self.own_off[-1]) if len(self.own_off) else -1
        if len(self.shared) != n or len(self.own_off) != n + 1 or (
                not self.dense and n_own != len(self.ids_stored())):
            raise ValueError("PrefixBlocks arrays disagree on the request count")
        idx = np.arange(n)
        if np.any(self.parent >= idx) or np.any((self.parent < 0) & (self.shared != 0)):
            raise ValueError("PrefixBlocks: a parent must be an earlier request (or -1 with shared == 0)")

    @classmethod
    def from_csr(cls, offsets: np.ndarray, ids: np.ndarray) -> PrefixBlocks:
        """The CSR form itself (no parents; own = the CSR arrays, not copied)."""
        n = len(offsets) - 1
        return cls(np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64), offsets, ids)

    @classmethod
    def compress(cls, offsets: np.ndarray, ids: np.ndarray, session_id: np.ndarray,
                 full_blocks: np.ndarray | None = None) -> PrefixBlocks:
        """Parent form of a CSR trace: each request extends its session's previous request.

        `full_blocks[i]`: how many of request i's blocks a later request may share (default all).
        """
        n = len(offsets) - 1
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        prev_of = np.full(n, -1, dtype=np.int64)
        sess = np.asarray(session_id, dtype=np.int64)
        known = np.flatnonzero(sess >= 0)
        if len(known):
            order = known[np.argsort(sess[known], kind="stable")]
            same = sess[order[1:]] == sess[order[:-1]]
            prev_of[order[1:][same]] = order[:-1][same]
        full = np.diff(offsets) if full_blocks is None else np.asarray(full_blocks, dtype=np.int64)
        parent, shared, own_len = _compress_rows(offsets, ids, prev_of, full)
        own_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(own_len, out=own_off[1:])
        # own slice of request i = its CSR row past the shared part
        rel = np.arange(own_off[-1], dtype=np.int64) - np.repeat(own_off[:-1], own_len)
        own_ids = ids[np.repeat(offsets[:-1] + shared, own_len) + rel]
        return cls(parent, shared, own_off, own_ids)

    def __len__(self) -> int:
        return len(self.parent)

    def ids_stored(self) -> np.ndarray:
        """The own ids as ``fill`` takes them (empty when dense)."""
        assert self.own_ids is not None  # set by __post_init__
        return self.own_ids

    def ids(self) -> np.ndarray:
        """The own ids, one per own block (made when dense: 0, 1, 2...)."""
        return np.arange(self.n_own(), dtype=np.int64) if self.dense else self.ids_stored()

    def n_own(self) -> int:
        """Own blocks of all requests (the ids the form holds, stored or not)."""
        return int(self.own_off[-1])

    def densified(self) -> tuple[PrefixBlocks, int]:
        """(the same lists with ids renumbered 0..U-1 in first-use order, U): for engines that index
        per-block arrays by id. Equal ids stay equal, different stay different."""
        if self.dense:  # own block k is k: already dense, in first-use order
            return self, self.n_own()
        ids, n = first_use_ids(self.ids_stored())
        return PrefixBlocks(self.parent, self.shared, self.own_off, ids, self.distinct), n

    def counts(self) -> np.ndarray:
        """Blocks per request."""
        return self.shared + np.diff(self.own_off)

    def row(self, i: int, buf: np.ndarray | None = None) -> np.ndarray:
        """Request i's block list (a new array unless `buf` is given)."""
        n = int(self.shared[i] + self.own_off[i + 1] - self.own_off[i])
        out = np.empty(n, dtype=np.int64) if buf is None else buf
        fill(self.parent, self.shared, self.own_off, self.ids_stored(), i, out)
        return out[:n]

    def to_csr(self, i0: int = 0, i1: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, ids) of requests i0..i1-1: the expanded form (tests, small traces, chunks)."""
        i1 = len(self) if i1 is None else i1
        offs = np.zeros(i1 - i0 + 1, dtype=np.int64)
        # the slice's counts only: a chunk costs its own requests, not the whole trace's
        np.cumsum(self.shared[i0:i1] + np.diff(self.own_off[i0:i1 + 1]), out=offs[1:])
        out = np.empty(int(offs[-1]), dtype=np.int64)
        if i1 > i0:
            _fill_range(self.parent, self.shared, self.own_off, self.ids_stored(), i0, i1, offs, out)
        return offs, out

    def rows_csr(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, ids) of requests `idx` in that order: a selection expanded, not the whole trace."""
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        offs = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(self.counts()[idx], out=offs[1:])
        out = np.empty(int(offs[-1]), dtype=np.int64)
        if len(idx):
            _fill_rows(self.parent, self.shared, self.own_off, self.ids_stored(), idx, offs, out)
        return offs, out

    def first_blocks(self) -> np.ndarray:
        """Each request's first block id (-1 when it has none), without expanding any list."""
        return _first_blocks(self.parent, self.shared, self.own_off, self.ids_stored())

    def head(self, k: int) -> PrefixBlocks:
        """The first k requests (parents are earlier, so the prefix is closed)."""
        ids = None if self.dense else self.ids_stored()[:int(self.own_off[k])]
        return PrefixBlocks(self.parent[:k], self.shared[:k], self.own_off[:k + 1], ids, self.distinct)

    def first_seen(self) -> np.ndarray:
        """Per request, how many of its blocks an earlier request already had."""
        seen = self.shared.copy()
        if self.n_own() and not self.distinct:  # one pass over a table of first positions, no sort
            seen += _seen_before(self.own_off, self.ids_stored(), _position_table(self.n_own()))
        return seen

    def n_unique(self) -> int:
        return self.n_own() if self.distinct else int(np.unique(self.ids_stored()).size)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.parent, self.shared, self.own_off, self.ids_stored()))


def row_reader(pb: PrefixBlocks) -> Callable[[int], np.ndarray]:
    """``pb.row`` with the form's arrays bound once: a call per request on the replays' hot paths
    (sim.modes.cluster, sim.modes.pd.simulator), each row a new array, nothing expanded ahead."""
    parent, shared, own_off, own = pb.parent, pb.shared, pb.own_off, pb.ids_stored()
    sh, off, empty = shared.item, own_off.item, np.empty

    def row(i: int) -> np.ndarray:
        out = empty(sh(i) + off(i + 1) - off(i), np.int64)
        fill(parent, shared, own_off, own, i, out)
        return out

    return row
