"""Re-parenting: the distinct parent form of a trace whose requests share prefixes across sessions.

A loaded trace's session parent form (trace.prefix_stream, ``PrefixBlocks.compress``) is not distinct:
a system prompt shared by many sessions is an own block of each session's first turn. Belady's next-use
steps (trace.next_use) and the oracle on the parent form (sim.oracle.compact) need a distinct form, where
every own block is new when its request arrives.

With prefix-identifying ids (trace.blockids.ensure_prefix_ids: an id fixes its whole prefix) the blocks
of request i that an earlier request held form a prefix L[:k] of its list L: the deepest of them, L[k-1],
was first held by some request r at depth k-1, and r's list starts with L[:k]. So i can be re-parented to
r with shared = k, and its own blocks are L[k:], all never seen before: the form is distinct.

One pass over the requests in order, with one table from block id to where it was first kept (a position
in the new own ids, 4 bytes a slot below 2**31 ids; the key is read back from the own ids). Memory follows
the distinct blocks: the new own ids, the table, three words per request and two row buffers. Nothing is
trusted: k is found by binary search over the table (sound only when seen blocks form a prefix), then
r's first k blocks are compared with L[:k] and every block of L[k:] must be absent from the table (and
from the rest of L[k:]). If any check fails the trace cannot be made distinct this way and the caller
keeps the form it had. Block lists are unchanged, ids too (only which request holds which block as own).

``subset`` (``Workload.select``: a pod of ``run --pods``) keeps a selection of requests in parent form: a
distinct form's selection is re-parented the same way within the selection (``distinct_subset``, dense
ids), any other is kept when it holds its requests' parents. ``scoped`` (the oracle's session scope)
re-parents the same way with blocks keyed per session.

Partial last blocks need no rule here: the simulators compare ids only, and a child may inherit any
prefix of its parent's list (``shared`` <= the parent's length), so a block is shared exactly when its
id is.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine import hashtab
from trace.prefix import PrefixBlocks, _grown, _position_table, fill, mix64
from trace.prefix_stream import _fill_head, owner_row


@njit(cache=True)
def _probe(tab, out, x):
    """Position in `out` where id x was first kept, or -1."""
    mask = len(tab) - 1
    h = mix64(x) & mask
    while True:
        v = tab[h]
        if v == -1 or out[v] == x:
            return np.int64(v)
        h = (h + 1) & mask


@njit(cache=True)
def _reparent(parent, shared, own_off, own_ids, width, tab, out, max_own):
    """(ok, parent, shared, own_off) of the distinct form (module doc), its own ids written to `out` (which
    holds at least the input's own blocks, or is `own_ids` itself); ok False when the lists do not allow
    it or it would hold more than `max_own` own blocks. `tab` grows here. Not dense input."""
    n = len(parent)
    npar = np.full(n, -1, dtype=np.int64)
    nsh = np.zeros(n, dtype=np.int64)
    noff = np.zeros(n + 1, dtype=np.int64)
    buf = np.empty(max(1, width), dtype=np.int64)
    head = np.empty(max(1, width), dtype=np.int64)
    nown = 0
    for i in range(n):
        # request i's list: its input parent's (already in the new form) then its own input slice, which
        # starts at or after `nown`, so `out` may be `own_ids` itself (in place: nothing is read back)
        s = shared[i]
        if s > 0:
            _fill_head(npar, nsh, noff, out, parent[i], buf, s)
        lo_i = own_off[i]
        m = s + own_off[i + 1] - lo_i
        for j in range(s, m):
            buf[j] = own_ids[lo_i + j - s]
        # k = the seen blocks, a prefix when ids are prefix-identifying: the first unseen by binary search
        lo, hi = 0, m
        while lo < hi:
            mid = (lo + hi) // 2
            if _probe(tab, out, buf[mid]) >= 0:
                lo = mid + 1
            else:
                hi = mid
        k = lo
        noff[i] = nown
        if k > 0:
            pos = _probe(tab, out, buf[k - 1])
            r = owner_row(noff, i - 1, pos)
            if nsh[r] + pos - noff[r] != k - 1:  # first held at another depth
                return False, npar, nsh, noff
            _fill_head(npar, nsh, noff, out, r, head, k)
            for j in range(k):
                if head[j] != buf[j]:
                    return False, npar, nsh, noff
            npar[i] = r
            nsh[i] = k
        for j in range(k, m):
            x = buf[j]
            if _probe(tab, out, x) >= 0 or nown >= max_own:  # seen before (not a prefix) or twice here
                return False, npar, nsh, noff
            if 10 * (nown + 1) > 6 * len(tab):
                tab = _grown(tab, out)
            mask = len(tab) - 1
            h = mix64(x) & mask
            while tab[h] != -1:
                h = (h + 1) & mask
            out[nown] = x
            tab[h] = nown
            nown += 1
        noff[i + 1] = nown
    return True, npar, nsh, noff


def distinct_form(pb: PrefixBlocks, max_own: int | None = None) -> PrefixBlocks | None:
    """The same block lists in distinct parent form (module doc), `pb` itself when it is already
    distinct, or None when its ids do not allow it (an id seen before but not in a shared prefix) or
    when it would hold more than `max_own` own blocks (trace.prefix.worth_compacting's bound: the pass
    stops there, so a trace that shares little costs no table of all its ids)."""
    if pb.distinct or len(pb) == 0:
        return pb
    # Only the first U entries are written: the untouched pages of a large np.empty are never mapped
    # in, and `resize` below gives them back (realloc shrinks in place).
    out = np.empty(max(1, pb.n_own()), dtype=np.int64)
    got = _run(pb, out, pb.n_own() if max_own is None else max_own)
    if got is None:
        return None
    out.resize(int(got[2][-1]), refcheck=False)
    return PrefixBlocks(*got, out, distinct=True)


def distinct_in_place(pb: PrefixBlocks, own: np.ndarray, n_ids: int = 0) -> PrefixBlocks:
    """The distinct form of `pb`, whose own ids are the first entries of `own` (an array the caller owns
    and gives up: the new own ids overwrite it from the start, then it shrinks to them). For a form the
    ids allow (prefix-identifying: trace.prefix_stream's output without conflicts) and worth building;
    raises when the checks fail (`own` is then spoiled). `n_ids`: the distinct ids when known (the table
    is then made at its final size instead of doubling up to it)."""
    if len(pb) == 0:
        return PrefixBlocks(pb.parent, pb.shared, pb.own_off, own[:0], distinct=True)
    got = _run(pb, own, pb.n_own(), n_ids)
    if got is None:
        raise ValueError("distinct_in_place: the ids are not prefix-identifying")
    own.resize(int(got[2][-1]), refcheck=False)
    return PrefixBlocks(*got, own, distinct=True)


def _run(pb: PrefixBlocks, out: np.ndarray, max_own: int,
         n_ids: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The kernel's (parent, shared, own offsets) with the own ids written to `out`, or None."""
    tab = _position_table(pb.n_own())
    size = len(tab)
    while 6 * size < 10 * (n_ids + 1):  # the kernel's 60 % load bound
        size *= 2
    if size > len(tab):
        tab = np.full(size, -1, dtype=tab.dtype)
    ok, par, sh, off = _reparent(pb.parent, pb.shared, pb.own_off, pb.ids_stored(), int(pb.counts().max()),
                                 tab, out, max_own)
    return (par, sh, off) if ok else None


# ----------------------------------------------------------------- a selection of a distinct form (pods)
@njit(cache=True)
def _reparent_rows(parent, shared, own_off, own_ids, idx, buf, table, group, n_groups):
    """subset of a distinct form: per selected request (new parent, shared, own length).

    `table` (``sim.engine.hashtab`` layout, grown here by doubling) maps each block the selection holds so
    far to its first selected holder. In a distinct form an id fixes its whole prefix, so the blocks of a
    request already held form a prefix of its list (found by binary search), and the first holder of the
    deepest of them holds that whole prefix at the same depths: it is the new parent. A block is keyed by
    (id, the request's group): id * n_groups + group (`scoped`; one group 0 for a plain selection)."""
    n = len(idx)
    new_parent = np.full(n, -1, dtype=np.int64)
    new_shared = np.zeros(n, dtype=np.int64)
    own_len = np.zeros(n, dtype=np.int64)
    mask = len(table) // 2 - 1
    held = 0
    for k in range(n):
        m = fill(parent, shared, own_off, own_ids, idx[k], buf)
        g = group[k]
        for d in range(m):
            buf[d] = buf[d] * n_groups + g
        lo, hi = 0, m
        while lo < hi:
            mid = (lo + hi) >> 1
            if hashtab.find(table, 0, mask, buf[mid]) >= 0:
                lo = mid + 1
            else:
                hi = mid
        if lo > 0:
            new_parent[k] = hashtab.find(table, 0, mask, buf[lo - 1])
            new_shared[k] = lo
        own_len[k] = m - lo
        if 2 * (held + m - lo) > mask + 1:  # keep the load <= 0.5: double the table
            size = mask + 1
            while 2 * (held + m - lo) > size:
                size *= 2
            grown = np.full(2 * size, -1, dtype=np.int64)
            for e in range(mask + 1):
                if table[2 * e + 1] >= 0:
                    hashtab.insert(grown, 0, size - 1, table[2 * e], table[2 * e + 1])
            table = grown
            mask = size - 1
        for d in range(lo, m):
            hashtab.insert(table, 0, mask, buf[d], k)
        held += m - lo
    return new_parent, new_shared, own_len


def distinct_subset(pb: PrefixBlocks, idx: np.ndarray, group: np.ndarray | None = None,
                    n_groups: int = 1) -> PrefixBlocks:
    """Requests `idx` (increasing) of the distinct form `pb` as a distinct form of their own, dense (ids
    renumbered in first-use order: ids are only ever compared). The same re-parenting as ``distinct_form``
    (the first selected holder of a request's deepest held block), trusted without checks because a
    distinct form's ids are prefix-identifying by construction; the lists come from `pb` itself (``fill``),
    so a request whose parent is not selected needs nothing expanded. With `group` (per selected request,
    0..n_groups-1; `pb`'s ids below 2**62 / n_groups) a block is held per group (``scoped``)."""
    n = len(idx)
    own_len = np.diff(pb.own_off)[idx]
    buf = np.empty(int(pb.counts()[idx].max()) if n else 0, dtype=np.int64)
    table = np.full(2 * hashtab.table_size(int(own_len.sum())), -1, dtype=np.int64)
    group = np.zeros(n, dtype=np.int64) if group is None else group
    parent, shared, own_len = _reparent_rows(pb.parent, pb.shared, pb.own_off, pb.ids_stored(), idx, buf, table,
                                             group, n_groups)
    own_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(own_len, out=own_off[1:])
    return PrefixBlocks(parent, shared, own_off, None, True)


def scoped(pb: PrefixBlocks, group: np.ndarray) -> PrefixBlocks | None:
    """The distinct form `pb` with every block id namespaced by its request's `group` (an int64 per
    request; the oracle's ``--scope session``: the session, or the request itself when unknown): a block
    is shared only within a group. Re-parented as ``distinct_subset`` with the block key (id, group), so a
    first turn whose prompt another session holds gets it as own blocks, once per session. None when `pb`
    is not distinct (the caller keys the expanded lists)."""
    if not pb.distinct:
        return None
    dense, n_ids = pb.densified()
    _, g = np.unique(group, return_inverse=True)
    n_groups = int(g.max()) + 1 if len(g) else 1
    if n_ids * n_groups >= 1 << 62:
        return None
    return distinct_subset(dense, np.arange(len(pb), dtype=np.int64), g.astype(np.int64).reshape(-1), n_groups)


def subset(pb: PrefixBlocks, idx: np.ndarray) -> PrefixBlocks | None:
    """Requests `idx` (increasing) in parent form, or None when it cannot be kept (the caller expands).

    A distinct form always can: each selected request is re-parented to the first selected request
    holding its deepest block already held by the selection (``_reparent_rows``), so a pod of sessions
    whose first turns share a system prompt with another pod's request keeps it once, as own blocks of
    its first holder; ids are renumbered dense (ids are only ever compared). Any other form is kept
    when the selection holds every selected request's parent, with its stored ids."""
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    n = len(idx)
    if n and np.any(np.diff(idx) <= 0):
        return None
    if pb.distinct:
        return distinct_subset(pb, idx)
    own_len = np.diff(pb.own_off)[idx]
    rank = np.full(len(pb), -1, dtype=np.int64)
    rank[idx] = np.arange(n, dtype=np.int64)
    par = pb.parent[idx]
    has = par >= 0
    new_parent = np.full(n, -1, dtype=np.int64)
    new_parent[has] = rank[par[has]]
    if np.any(new_parent[has] < 0):
        return None
    own_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(own_len, out=own_off[1:])
    rel = np.arange(own_off[-1], dtype=np.int64) - np.repeat(own_off[:-1], own_len)
    ids = pb.ids_stored()[np.repeat(pb.own_off[idx], own_len) + rel]
    return PrefixBlocks(new_parent, pb.shared[idx], own_off, ids, False)
