"""The Belady-method bounds of a distinct parent-form workload, in memory that follows the unique blocks.

``sim.oracle.access`` builds six arrays per block access (about 137 bytes an access with their sorts),
so 1M multi-turn requests (238M accesses) need about 32 GB. A distinct parent-form workload
(``trace.prefix.PrefixBlocks.distinct``: the synthetic generator's) needs none of them for
``--method belady``:

* content: an access repeats iff it is inherited, so request i's content hits are its ``shared[i]``
  leading blocks;
* relaxed / strict-prefix: Belady with bypass (the same decisions as ``replays._belady``) keyed by block
  instead of by access position, with next uses from ``trace.next_use`` and an indexed heap of at most
  `capacity` residents; a request's strict hits are its leading run of Belady hits;
* LRU: ``replays._lru_prefix`` keyed by (dense) block id.

Each walks the requests once, one block list at a time (``trace.prefix.fill``). A block's token weight
is ``clip(input_tokens - depth * block_tokens, 0, block_tokens)`` (sim.oracle.access), so the tokens of a
leading run of h blocks are ``min(h * block_tokens, input_tokens)``. ``tests/oracle/test_compact_bounds.py``
checks every figure against ``compute_bounds`` on the expanded arrays.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from sim.oracle.access import NEVER
from sim.oracle.bounds import Bounds
from trace.next_use import NextUseSteps, next_use_steps
from trace.prefix import PrefixBlocks, fill
from trace.workload import Workload


@dataclass
class CompactAccesses:
    """What the Belady-method bounds read of a distinct workload (module doc)."""

    pb: PrefixBlocks  # dense ids 0..n_ids-1
    n_ids: int
    starts: np.ndarray  # int64 [n]: each request's first access position
    input_tokens: np.ndarray
    block_tokens: int
    steps: NextUseSteps
    width: int  # the most blocks one request has
    n: int  # block accesses
    prefix_consistent: bool = True  # a distinct parent form is prefix-consistent by construction

    @property
    def n_requests(self) -> int:
        return len(self.starts)

    def total_tokens(self) -> int:
        return int(self.input_tokens.sum())


def compact_ok(w: Workload) -> bool:
    """Can `w` be bounded without per-access arrays? (a distinct parent form)"""
    return w.prefix is not None and w.prefix.distinct


def compact_accesses(w: Workload) -> CompactAccesses:
    pb, n_ids = w.prefix_blocks().densified()
    counts = pb.counts()
    return CompactAccesses(pb=pb, n_ids=n_ids, starts=np.ascontiguousarray(w.block_offsets[:-1], dtype=np.int64),
                           input_tokens=np.asarray(w.input_tokens, dtype=np.int64), block_tokens=int(w.block_tokens),
                           steps=next_use_steps(pb), width=int(counts.max()) if len(counts) else 0,
                           n=int(w.total_blocks))


@njit(cache=True)
def _run_tokens(h, inp, bt):
    return min(h * bt, inp)


@njit(cache=True)
def _heap_up(hv, hb, hidx, i):
    v, b = hv[i], hb[i]
    while i > 0:
        p = (i - 1) >> 1
        if hv[p] >= v:
            break
        hv[i], hb[i] = hv[p], hb[p]
        hidx[hb[i]] = i
        i = p
    hv[i], hb[i] = v, b
    hidx[b] = i


@njit(cache=True)
def _heap_down(hv, hb, hidx, i, size):
    v, b = hv[i], hb[i]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and hv[c + 1] > hv[c]:
            c += 1
        if hv[c] <= v:
            break
        hv[i], hb[i] = hv[c], hb[c]
        hidx[hb[i]] = i
        i = c
    hv[i], hb[i] = v, b
    hidx[b] = i


@njit(cache=True)
def _heap_remove(hv, hb, hidx, i, size):
    """Remove entry i of a heap of `size`; returns the new size."""
    hidx[hb[i]] = -1
    size -= 1
    if i < size:
        moved = hb[size]
        hv[i], hb[i] = hv[size], moved
        hidx[moved] = i
        _heap_down(hv, hb, hidx, i, size)
        _heap_up(hv, hb, hidx, hidx[moved])
    return size


@njit(cache=True)
def _belady(parent, shared, own_off, own_ids, starts, ends, sd, sk, n_ids, width, capacity, inp, bt, never):
    """(hit blocks, strict-run tokens, strict-run blocks) of Belady with bypass at `capacity` blocks."""
    n = len(parent)
    cap = min(capacity, n_ids)
    hv = np.empty(max(1, cap), np.int64)  # max-heap of the residents' next uses
    hb = np.empty(max(1, cap), np.int64)  # ... and their blocks
    hidx = np.full(n_ids, -1, np.int64)  # a block's heap entry, -1: not resident
    buf = np.empty(max(1, width), np.int64)
    size = 0
    hits = 0
    run_tok = 0
    run_blocks = 0
    for i in range(n):
        nb = fill(parent, shared, own_off, own_ids, i, buf)
        j, hi = ends[i + 1], ends[i]
        lead = True
        h = 0
        for d in range(nb):
            while j + 1 < hi and sd[j + 1] <= d:
                j += 1
            k = sk[j]
            nu = never if k < 0 else starts[k] + d
            b = buf[d]
            e = hidx[b]
            if e >= 0:  # resident: its next use is this access
                hits += 1
                if lead:
                    h += 1
                if nu == never:
                    size = _heap_remove(hv, hb, hidx, e, size)
                else:
                    hv[e] = nu  # later than before: towards the top of the max-heap
                    _heap_up(hv, hb, hidx, e)
                continue
            lead = False
            if nu == never or cap <= 0:
                continue
            if size >= cap:
                if hv[0] < nu:
                    continue  # the incoming block is the farthest: bypass it
                size = _heap_remove(hv, hb, hidx, 0, size)
            hv[size], hb[size] = nu, b
            size += 1
            _heap_up(hv, hb, hidx, size - 1)
        run_tok += _run_tokens(h, inp[i], bt)
        run_blocks += h
    return hits, run_tok, run_blocks


@njit(cache=True)
def _lru_prefix(parent, shared, own_off, own_ids, n_ids, width, capacity, inp, bt):
    """(hit tokens, hit blocks) of strict-prefix LRU at `capacity` blocks (replays._lru_prefix by block).

    The list is written out here as in replays._lru_prefix: a shared inlined helper made that loop 3.5x
    slower (Mooncake, five capacities: 58 vs 17 ms; numba counts references on each inlined call)."""
    n = len(parent)
    older = np.full(n_ids, -1, np.int64)
    newer = np.full(n_ids, -1, np.int64)
    inside = np.zeros(n_ids, np.bool_)
    buf = np.empty(max(1, width), np.int64)
    lru = -1
    mru = -1
    size = 0
    tok = 0
    blocks = 0
    for i in range(n):
        nb = fill(parent, shared, own_off, own_ids, i, buf)
        h = 0
        while h < nb and inside[buf[h]]:
            h += 1
        tok += _run_tokens(h, inp[i], bt)
        blocks += h
        for d in range(nb):
            k = buf[d]
            if inside[k]:
                if k == mru:
                    continue
                a, b = older[k], newer[k]
                if a != -1:
                    newer[a] = b
                else:
                    lru = b
                older[b] = a
            else:
                inside[k] = True
                size += 1
            older[k] = mru
            newer[k] = -1
            if mru != -1:
                newer[mru] = k
            else:
                lru = k
            mru = k
            if size > capacity:
                v = lru
                lru = newer[v]
                older[lru] = -1
                inside[v] = False
                size -= 1
    return tok, blocks


def _content(c: CompactAccesses) -> tuple[int, int]:
    """(tokens, blocks) of the content bound: the inherited blocks, a leading run of each request."""
    pb = c.pb
    return int(np.minimum(pb.shared * c.block_tokens, c.input_tokens).sum()), int(pb.shared.sum())


def _belady_run(c: CompactAccesses, capacity: int) -> tuple[int, int, int]:
    """(hit blocks, strict-run tokens, strict-run blocks) of Belady with bypass."""
    if capacity <= 0 or not c.n:
        return 0, 0, 0
    pb = c.pb
    return _belady(pb.parent, pb.shared, pb.own_off, pb.ids_stored(), c.starts, c.steps.ends, c.steps.depth,
                   c.steps.request, c.n_ids, c.width, int(capacity), c.input_tokens, c.block_tokens, NEVER)


def _lru_run(c: CompactAccesses, capacity: int) -> tuple[int, int]:
    """(hit tokens, hit blocks) of strict-prefix LRU."""
    if capacity <= 0 or not c.n:
        return 0, 0
    pb = c.pb
    return _lru_prefix(pb.parent, pb.shared, pb.own_off, pb.ids_stored(), c.n_ids, c.width, int(capacity),
                       c.input_tokens, c.block_tokens)


def compact_bound_tokens(c: CompactAccesses, capacity: int, bound: str) -> float:
    """``single_bound_tokens(accesses(w), capacity, bound, "belady")`` (planning evaluates many capacities)."""
    if bound == "content":
        return float(_content(c)[0])
    if bound == "lru":
        return float(_lru_run(c, capacity)[0])
    if bound == "relaxed":
        return float(min(_content(c)[0], c.block_tokens * _belady_run(c, capacity)[0]))
    if bound == "strict_prefix":
        return float(_belady_run(c, capacity)[1])
    raise ValueError(f"unknown bound {bound!r}")


def compact_bounds(c: CompactAccesses, capacity: int) -> Bounds:
    """``compute_bounds(accesses(w), capacity, "belady")`` of the workload `c` was made from."""
    bt = c.block_tokens
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    cont_tokens, cont_blocks = _content(c)
    t["content"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bel_blocks, strict_tok, strict_blocks = _belady_run(c, capacity)
    t["belady"] = time.perf_counter() - t0
    t["optimum"] = 0.0  # the Belady method has no LP
    t0 = time.perf_counter()
    lru_tok, lru_blocks = _lru_run(c, capacity)
    t["lru"] = time.perf_counter() - t0
    notes = []
    if strict_blocks != bel_blocks:
        notes.append("Belady hits do not form prefixes (trace not prefix-consistent): "
                     "block-weighted strict-prefix figure is a lower bound")
    relaxed_ub = float(min(cont_tokens, bt * bel_blocks))
    tokens: dict[str, float] = {"content": cont_tokens, "relaxed": relaxed_ub, "strict_prefix": int(strict_tok),
                                "lru": int(lru_tok)}
    blocks = {"content": cont_blocks, "relaxed": int(bel_blocks), "strict_prefix": int(strict_blocks),
              "lru": int(lru_blocks)}
    proven = strict_tok >= relaxed_ub - 1e-9
    if tokens["lru"] > tokens["strict_prefix"]:
        tokens["strict_prefix"] = tokens["lru"]
    return Bounds(
        capacity_blocks=int(capacity), requests=c.n_requests, input_tokens=c.total_tokens(), blocks=c.n,
        tokens=tokens, block_hits=blocks, proven_optimal=bool(proven),
        method="belady (block-optimal schedule; tokens are a lower bound, relaxed = block_tokens x hits bound)",
        notes=notes, timings_s=t, certificate={"lower_bound": int(strict_tok), "upper_bound": relaxed_ub},
    )


# ----------------------------------------------------------------- calibration (sim.oracle.calibrate)
@njit(cache=True)
def _request_counts(parent, shared, own_off, own_ids, n_ids, width):
    """Per block: how many requests hold it (its accesses: no request holds a block twice)."""
    cnt = np.zeros(n_ids, np.int64)
    buf = np.empty(max(1, width), np.int64)
    for i in range(len(parent)):
        nb = fill(parent, shared, own_off, own_ids, i, buf)
        for d in range(nb):
            cnt[buf[d]] += 1
    return cnt


@njit(cache=True)
def _popular_run_tokens(parent, shared, own_off, own_ids, cnt, threshold, width, inp, bt):
    """Tokens of each request's leading run of blocks held by >= threshold requests, summed."""
    buf = np.empty(max(1, width), np.int64)
    tot = 0
    for i in range(len(parent)):
        nb = fill(parent, shared, own_off, own_ids, i, buf)
        h = 0
        while h < nb and cnt[buf[h]] >= threshold:
            h += 1
        tot += _run_tokens(h, inp[i], bt)
    return tot


def popular_run_tokens(c: CompactAccesses, threshold: int) -> int:
    """``acc.weight[leading_run(popular, acc)].sum()`` with popular = blocks of >= threshold accesses."""
    pb = c.pb
    args = (pb.parent, pb.shared, pb.own_off, pb.ids_stored())
    cnt = _request_counts(*args, c.n_ids, c.width)
    return int(_popular_run_tokens(*args, cnt, int(threshold), c.width, c.input_tokens, c.block_tokens))


def content_tokens(c: CompactAccesses) -> int:
    return _content(c)[0]


def peak_reuse_load(c: CompactAccesses) -> int:
    """``interval_loads(acc, acc.prev >= 0).max()``: the most reuse intervals (a block's access to its next,
    counted in the states between their requests) live at once, from the next-use steps."""
    s, n = c.steps, c.n_requests
    per = s.ends[:-1] - s.ends[1:]  # steps of request i
    req = np.repeat(np.arange(n - 1, -1, -1, dtype=np.int64), per[::-1])  # stored from the last request back
    nxt = np.empty(len(s.depth), dtype=np.int64)  # the depth where each step ends
    nxt[:-1] = s.depth[1:]
    last = np.ones(len(s.depth), dtype=bool)
    last[:-1] = req[1:] != req[:-1]
    nxt[last] = c.pb.counts()[req[last]]
    length = nxt - s.depth
    has = s.request >= 0
    diff = np.zeros(n + 2, dtype=np.int64)
    np.add.at(diff, req[has] + 1, length[has])
    np.add.at(diff, s.request[has] + 1, -length[has])
    return int(np.cumsum(diff)[: n + 1].max()) if n else 0
