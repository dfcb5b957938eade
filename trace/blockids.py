"""Block ids of a Workload: synthesized for token-count-only traces, and made
prefix-identifying when a trace's own hash ids are not."""
from __future__ import annotations

import numpy as np


def synthetic_block_ids(
    input_tokens: np.ndarray, session_id: np.ndarray, block_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic, prefix-identifying block ids for token-count-only traces.

    Request i gets ceil(input_i / block_tokens) blocks. In a session (id >= 0)
    full block k has the id (session, k), so two turns of one session share
    exactly their common full blocks, i.e. up to the shorter prompt. A partial
    last block, and every block of a request without a session, get fresh ids:
    no prefix sharing the trace does not hold is invented. Ids are a dense
    counter (session ranges first, in session-id order, then fresh ids in
    request order), so they never collide.
    """
    inp = np.asarray(input_tokens, dtype=np.int64)
    sess = np.asarray(session_id, dtype=np.int64)
    n = len(inp)
    bt = int(block_tokens)
    full = inp // bt
    nblk = full + (inp % bt > 0)
    has_s = sess >= 0
    shared = np.where(has_s, full, 0)
    req_base = np.zeros(n, dtype=np.int64)
    next_id = 0
    if has_s.any():
        uniq, inv = np.unique(sess[has_s], return_inverse=True)
        maxfull = np.zeros(len(uniq), dtype=np.int64)
        np.maximum.at(maxfull, inv, full[has_s])
        base = np.zeros(len(uniq), dtype=np.int64)
        np.cumsum(maxfull[:-1], out=base[1:])
        req_base[has_s] = base[inv]
        next_id = int(maxfull.sum())
    fresh = nblk - shared
    fresh_start = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(fresh[:-1], out=fresh_start[1:])
    fresh_start += next_id
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nblk, out=offsets[1:])
    total = int(offsets[-1])
    rel = np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1], nblk)
    rep_shared = np.repeat(shared, nblk)
    ids = np.where(
        rel < rep_shared,
        np.repeat(req_base, nblk) + rel,
        np.repeat(fresh_start, nblk) + (rel - rep_shared),
    )
    return offsets, ids.astype(np.int64, copy=False)


def ensure_prefix_ids(offsets: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Make block ids prefix-identifying; return (ids, number of conflicting ids).

    An id is prefix-identifying when every occurrence follows the same parent
    id (the previous block of its request, or nothing for block 0). This is
    checked with one sort; only if some id violates it are all blocks re-keyed
    by (new parent id, old id), with new ids from a counter in first-seen order.
    """
    if len(ids) == 0:
        return ids, 0
    counts = np.diff(offsets)
    parent = np.empty_like(ids)
    parent[1:] = ids[:-1]
    starts = offsets[:-1][counts > 0]
    # A sentinel no real id can equal: a first block has "no parent".
    parent_valid = np.ones(len(ids), dtype=bool)
    parent_valid[starts] = False
    parent[starts] = 0
    order = np.lexsort((parent, parent_valid, ids))
    si, sv, sp = ids[order], parent_valid[order], parent[order]
    same = si[1:] == si[:-1]
    diff = (sv[1:] != sv[:-1]) | (sp[1:] != sp[:-1])
    bad = same & diff
    n_bad = int(len(np.unique(si[1:][bad]))) if bad.any() else 0
    if not n_bad:
        return ids, 0
    new = np.empty(len(ids), dtype=np.int64)
    table: dict[tuple[int, int], int] = {}
    flat = ids.tolist()
    offs = offsets.tolist()
    for i in range(len(offs) - 1):
        prev = -1
        for j in range(offs[i], offs[i + 1]):
            key = (prev, flat[j])
            nid = table.get(key)
            if nid is None:
                nid = len(table)
                table[key] = nid
            new[j] = nid
            prev = nid
    return new, n_bad
