"""The parent form (trace.prefix) built while a hashed trace file is read: memory follows the unique blocks.

The Collector (trace.collector) hands over its accepted rows in batches. Each row is compared with its
session's previous accepted row (rebuilt from the parent form kept so far, ``fill``-style) and only its
own blocks are kept: the part past the common prefix, capped at the previous row's length, exactly as
``PrefixBlocks.compress`` (with ``full_blocks`` = all blocks) cuts the whole CSR. Rows without a session
keep all their blocks.

The prefix-identity check of ``trace.blockids.ensure_prefix_ids`` (every occurrence of an id follows
the same parent id, or none) is made on the fly. A shared block occurs at the same position after the
same parent as in the row it is shared from, so the (id, parent) pairs of the own blocks are all the
pairs of the trace; each own id is looked up in an open-addressing table whose entries are positions
in the kept own ids (8 bytes per entry, the key read back from the own ids), and the parent of the
first occurrence is recovered from the parent form when an id comes again.

When some id follows two parents, every block is re-keyed by its whole prefix (``rekey``), on the
parent form itself: two rows share a re-keyed prefix exactly when they share the original one, so the
parents and shared counts do not change, and the new ids are numbered in the order the CSR would meet
their keys (a shared block's key was met in the row it is shared from). Same ids as the CSR path.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from trace.prefix import PrefixBlocks
from trace.prefix import mix64 as _mix

# An id table entry whose id was already counted as conflicting has this bit set. The table is int32
# (4 bytes a slot) while own positions stay below 2**30, int64 beyond.
_FLAG32 = 1 << 30
_FLAG64 = 1 << 62
_MAX_LOAD = 0.6


@njit(cache=True)
def _block_at(parent, shared, own_off, own_ids, q, k):
    """Block k of request q's list (walking up the parents while k lies in a shared part)."""
    while k < shared[q]:
        q = parent[q]
    return own_ids[own_off[q] + k - shared[q]]


@njit(cache=True)
def _fill_head(parent, shared, own_off, own_ids, i, buf, need):
    """buf[0:need] = the first `need` blocks of request i (trace.prefix.fill, stopped at `need`)."""
    cur = i
    while need > 0 and cur >= 0:
        s = shared[cur]
        lo = own_off[cur]
        hi = min(s + own_off[cur + 1] - lo, need)
        for k in range(s, hi):
            buf[k] = own_ids[lo + k - s]
        if s < need:
            need = s
        cur = parent[cur]


@njit(cache=True)
def owner_row(own_off, last, pos):
    """The request (<= last) whose own slice holds own position `pos`: the largest r with own_off[r] <= pos
    (the empty slices before it share its offset and come first)."""
    lo, hi = 0, last
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if own_off[mid] <= pos:
            lo = mid
        else:
            hi = mid - 1
    return lo


@njit(cache=True)
def _first_parent(parent, shared, own_off, own_ids, last_row, pos):
    """(has a parent, parent id) of the block at own position `pos` (a row <= last_row owns it)."""
    r = owner_row(own_off, last_row, pos)
    if pos > own_off[r]:
        return True, own_ids[pos - 1]
    if shared[r] > 0:
        return True, _block_at(parent, shared, own_off, own_ids, parent[r], shared[r] - 1)
    return False, np.int64(0)


@njit(cache=True)
def _absorb(b_offs, b_ids, b_sess, n0, nown0, parent, shared, own_off, own_ids, skeys, svals, itab, flag, buf,
            counts):
    """Append a batch of rows to the parent form; counts = [sessions, distinct ids, conflicting ids].
    Returns (own blocks now, the scratch buffer)."""
    smask = len(svals) - 1
    imask = len(itab) - 1
    nown = nown0
    for b in range(len(b_offs) - 1):
        i = n0 + b
        lo = b_offs[b]
        n_i = b_offs[b + 1] - lo
        p = -1
        s = b_sess[b]
        if s >= 0:
            h = _mix(s) & smask
            while True:
                if svals[h] == -1:
                    skeys[h] = s
                    svals[h] = i
                    counts[0] += 1
                    break
                if skeys[h] == s:
                    p = svals[h]
                    svals[h] = i
                    break
                h = (h + 1) & smask
        m = 0
        if p >= 0:
            cap = min(n_i, shared[p] + own_off[p + 1] - own_off[p])
            if cap > 0:
                if len(buf) < cap:
                    buf = np.empty(max(cap, 2 * len(buf)), dtype=np.int64)
                _fill_head(parent, shared, own_off, own_ids, p, buf, cap)
                while m < cap and b_ids[lo + m] == buf[m]:
                    m += 1
        own_off[i] = nown
        parent[i] = p if m > 0 else -1
        shared[i] = m
        for k in range(m, n_i):
            x = b_ids[lo + k]
            own_ids[nown] = x
            has = k > 0
            pv = b_ids[lo + k - 1] if has else np.int64(0)
            h = _mix(x) & imask
            while True:
                v = np.int64(itab[h])
                if v == -1:
                    itab[h] = nown
                    counts[1] += 1
                    break
                pos = v & ~flag
                if own_ids[pos] == x:
                    if (v & flag) == 0:
                        has0, pv0 = _first_parent(parent, shared, own_off, own_ids, i, pos)
                        if has0 != has or (has and pv0 != pv):
                            itab[h] = v | flag
                            counts[2] += 1
                    break
                h = (h + 1) & imask
            nown += 1
        own_off[i + 1] = nown
    return nown, buf


@njit(cache=True)
def _rehash_ids(itab, flag, own_ids, out, out_flag):
    """Every entry of `itab` into the empty table `out` (flags moved from bit `flag` to `out_flag`)."""
    mask = len(out) - 1
    for j in range(len(itab)):
        v = np.int64(itab[j])
        if v != -1:
            pos = v & ~flag
            h = _mix(own_ids[pos]) & mask
            while out[h] != -1:
                h = (h + 1) & mask
            out[h] = pos | out_flag if v & flag else pos


@njit(cache=True)
def _rehash_sessions(skeys, svals, size):
    keys = np.zeros(size, dtype=np.int64)
    vals = np.full(size, -1, dtype=np.int64)
    mask = size - 1
    for j in range(len(svals)):
        if svals[j] != -1:
            h = _mix(skeys[j]) & mask
            while vals[h] != -1:
                h = (h + 1) & mask
            keys[h] = skeys[j]
            vals[h] = svals[j]
    return keys, vals


@njit(cache=True)
def _rekey(parent, shared, own_off, own_ids):
    """New own ids: each block keyed by (new id of the block before it or -1, old id), numbered in
    first-seen order (trace.blockids.ensure_prefix_ids's numbering, met in the same order)."""
    n = len(parent)
    n_own = len(own_ids)
    new = np.empty(n_own, dtype=np.int64)
    size = 4
    while size < 2 * max(1, n_own):
        size *= 2
    mask = size - 1
    tab = np.full(size, -1, dtype=np.int64)
    kp = np.empty(n_own, dtype=np.int64)
    ko = np.empty(n_own, dtype=np.int64)
    cnt = 0
    for i in range(n):
        lo = own_off[i]
        hi = own_off[i + 1]
        if hi == lo:
            continue
        s = shared[i]
        prev = _block_at(parent, shared, own_off, new, parent[i], s - 1) if s > 0 else np.int64(-1)
        for j in range(lo, hi):
            x = own_ids[j]
            h = _mix(x ^ _mix(prev)) & mask
            while True:
                v = tab[h]
                if v == -1:
                    tab[h] = cnt
                    kp[cnt] = prev
                    ko[cnt] = x
                    nid = cnt
                    cnt += 1
                    break
                if kp[v] == prev and ko[v] == x:
                    nid = v
                    break
                h = (h + 1) & mask
            new[j] = nid
            prev = nid
    return new


def _grown(a: np.ndarray, need: int) -> np.ndarray:
    """`a` itself when it holds `need` values, else grown in place to 1.25x that: ``ndarray.resize``
    reallocs, which for large arrays remaps the pages instead of holding a copy beside the old ones
    (the new tail is zeroed). No view of these private arrays outlives a call, so refcheck is off."""
    if len(a) >= need:
        return a
    a.resize(max(need, len(a) + len(a) // 4), refcheck=False)
    return a


def _pow2_for(n: int) -> int:
    size = 1024
    while size * _MAX_LOAD < n:
        size *= 2
    return size


class PrefixStream:
    """The parent form of the rows absorbed so far, and the prefix-identity check (module doc)."""

    def __init__(self) -> None:
        self.n = 0
        self.n_own = 0
        self.n_blocks = 0  # block accesses absorbed (the CSR's length)
        self.parent = np.empty(1024, dtype=np.int64)
        self.shared = np.empty(1024, dtype=np.int64)
        self.own_off = np.zeros(1025, dtype=np.int64)
        self.own_ids = np.empty(4096, dtype=np.int64)
        self.skeys = np.zeros(1024, dtype=np.int64)
        self.svals = np.full(1024, -1, dtype=np.int64)
        self.itab: np.ndarray = np.full(1024, -1, dtype=np.int32)
        self.flag = _FLAG32
        self.counts = np.zeros(3, dtype=np.int64)  # sessions, distinct ids, conflicting ids
        self.buf = np.empty(1024, dtype=np.int64)

    def absorb(self, counts: np.ndarray, ids: np.ndarray, sess: np.ndarray) -> None:
        """Append rows: their block counts, their block ids back to back, their session ids (-1: none)."""
        rows, total = len(counts), len(ids)
        if not rows:
            return
        offs = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(counts, out=offs[1:])
        n1 = self.n + rows
        self.parent = _grown(self.parent, n1)
        self.shared = _grown(self.shared, n1)
        self.own_off = _grown(self.own_off, n1 + 1)
        self.own_ids = _grown(self.own_ids, self.n_own + total)
        if self.counts[0] + rows > len(self.svals) * _MAX_LOAD:
            self.skeys, self.svals = _rehash_sessions(self.skeys, self.svals, _pow2_for(self.counts[0] + rows))
        wide = self.n_own + total >= _FLAG32
        if self.counts[1] + total > len(self.itab) * _MAX_LOAD or (wide and self.flag == _FLAG32):
            flag = _FLAG64 if wide else _FLAG32
            out = np.full(_pow2_for(self.counts[1] + total), -1, dtype=np.int64 if wide else np.int32)
            _rehash_ids(self.itab, self.flag, self.own_ids, out, flag)
            self.itab, self.flag = out, flag
        self.n_own, self.buf = _absorb(
            offs, np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(sess, dtype=np.int64),
            self.n, self.n_own, self.parent, self.shared, self.own_off, self.own_ids,
            self.skeys, self.svals, self.itab, self.flag, self.buf, self.counts)
        self.n = n1
        self.n_blocks += total

    def finish(self) -> tuple[PrefixBlocks, int]:
        """(the parent form, how many ids follow different parents); re-keyed when that is not 0.
        The tables are dropped."""
        n_bad = int(self.counts[2])
        self.itab = self.svals = self.skeys = self.buf = np.zeros(0, dtype=np.int64)
        n = self.n
        parent, shared, own_off = self.parent[:n], self.shared[:n], self.own_off[:n + 1]
        own = self.own_ids[:self.n_own]
        if n_bad:
            own = _rekey(parent, shared, own_off, own)
        return PrefixBlocks(parent, shared, own_off, own), n_bad
