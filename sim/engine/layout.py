"""The engine's memory: one int64 array ``M`` holds a whole node.

Why one array: every compiled call that takes an array pays reference
counting on it, and the tier calls run several times per block; passing one
array instead of eight made the replay about twice as fast.

Layout of ``M`` (all offsets are absolute indices into ``M``):

* node header ``M[0:N_NODE_FIELDS]``: workers, policy code, write-through,
  link traffic totals, and where the per-access arrays start;
* one record of ``N_TIER_FIELDS`` per tier at ``tier_at(t)``: workers' HBM
  0..NW-1, DRAM = NW, SSD = NW + 1, and the selective-write reuse history as
  the pseudo-tier NW + 2;
* slots, ``N_SLOT_FIELDS`` words each (the shared header of ``sim.engine.slots``,
  then LIST, FREQ, HIDX); a slot is named by its address ``s``
  and its fields are ``M[s + KEY]`` etc. A slot is a resident block or a
  ghost key;
* each tier's hash table (``sim.engine.hashtab``: key, slot pairs) and auxiliary region
  (LFU's frequency buckets, Belady's heap);
* for Belady the workload's ``next_use`` per access, or in a distinct
  workload its steps (``trace.next_use``: a few per request); for
  selective_write and Belady's steps each request's first access position
  (a block's depth is its position minus its request's start: 8 bytes a
  request, not a block access), or a given per-access ``depth``; empty for
  the other policies;
* scratch buffers for the victims a call evicts at each level (HBM -> DRAM
  -> SSD -> out), so the hot path never allocates.

Floats (ARC's adaptive target p) are stored in tier fields through a
float64 view of the same memory.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.hashtab import table_size
from sim.engine.slots import N_HEADER, NEXT
from sim.policies.base import NEVER  # not accessed again (the policies' own sentinel)

# --- slot fields after the shared header (sim.engine.slots: KEY, POS, PREV, NEXT)
LIST, FREQ, HIDX = range(N_HEADER, N_HEADER + 3)
N_SLOT_FIELDS = N_HEADER + 3

# --- node header
NW = 0  # workers
POLICY = 1
WRITE_THROUGH = 2
TR_DRAM_TO_HBM = 3
TR_SSD_TO_HBM = 4
TR_HBM_TO_DRAM = 5
TR_DRAM_TO_SSD = 6
PREFETCHED = 7
NU_BASE = 8  # next_use[pos] is M[M[NU_BASE] + pos], or NU_REQS > 0: next-use steps (trace.next_use)
DP_BASE = 9  # request starts (DP_STARTS of them, ascending), or depth[pos] at M[M[DP_BASE] + pos] if 0
SCRATCH = 10  # victim buffers: 3 levels x (keys, positions), SCRATCH_N words each
SCRATCH_N = 11  # the most blocks one request has
DP_STARTS = 12
NU_REQS = 13  # requests of the next-use steps (NextUseSteps.packed at NU_BASE), 0: per-access next_use
NU_STEPS = 14
N_NODE_FIELDS = 15

# --- tier fields
CAP = 0  # capacity in blocks
NSLOTS = 1
HBASE = 2  # first hash-table entry
HMASK = 3  # hash-table size - 1 (a power of two minus one)
FREE = 4  # first free slot (linked through NEXT), -1 none
LEN = 5  # resident blocks
HEAPBASE = 6  # the tier's auxiliary region (LFU buckets, Belady heap)
HEAPLEN = 7
HEAD = 8  # list l, l in 0..3: anchor (oldest, youngest slot) at HEAD + 2l
SIZE = 16  # SIZE + l: length of list l
PENDING_SLOT = 20  # ARC: the pending key's ghost slot, -1 none
PENDING = 21  # ARC: key announced by admit
HAS_PENDING = 22
PARAM_A = 23  # s3fifo small target | selective_write history
PARAM_B = 24  # s3fifo ghost size
PARAM_C = 25  # s3fifo move-to-main threshold | selective_write depth threshold
ARC_P = 26  # float64 bits
ARC_PENDING_P = 27  # float64 bits
ST_HITS = 28  # TierStats, same names and order as STAT_FIELDS
N_STATS = 8
N_TIER_FIELDS = ST_HITS + N_STATS
STAT_FIELDS = ("hits", "inserts", "demotions_in", "promotions_out", "evictions", "taken", "dropped", "rejected")
ST_INSERTS, ST_DEMOTIONS_IN, ST_PROMOTIONS_OUT, ST_EVICTIONS, ST_TAKEN, ST_DROPPED, ST_REJECTED = range(
    ST_HITS + 1, ST_HITS + N_STATS
)

# --- lists: 0 and 1 hold resident blocks, 2 and 3 ghosts (keys only)
RESIDENT_LISTS = 2


@njit(cache=True)
def _request_of(M, pos):
    """The last request whose start is <= pos (a start repeats for requests without blocks)."""
    base = M[DP_BASE]
    lo, hi = 0, M[DP_STARTS]
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if M[base + mid] <= pos:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True)
def depth_at(M, pos):
    """The depth of access `pos` within its request (selective_write)."""
    if M[DP_STARTS] == 0:
        return M[M[DP_BASE] + pos]
    return pos - M[M[DP_BASE] + _request_of(M, pos)]


@njit(cache=True)
def next_use_at(M, pos):
    """The position of the next access to the block of access `pos`, NEVER if none (Belady)."""
    n = M[NU_REQS]
    if n == 0:
        return M[M[NU_BASE] + pos]
    r = _request_of(M, pos)
    starts = M[DP_BASE]
    d = pos - M[starts + r]
    e = M[NU_BASE]
    sd = e + n + 1
    sk = sd + M[NU_STEPS]
    j = M[e + r + 1]
    hi = M[e + r]
    while j + 1 < hi and M[sd + j + 1] <= d:  # a few steps a request: a scan
        j += 1
    k = M[sk + j]
    return NEVER if k < 0 else M[starts + k] + d


@njit(cache=True)
def tier_at(t):
    return N_NODE_FIELDS + t * N_TIER_FIELDS


def allocate(capacities: list[int], nslots: list[int], aux: list[int], policy_code: int, n_workers: int,
             write_through: bool, params: list[tuple[int, int, int]], next_use: np.ndarray,
             depth: np.ndarray, max_blocks: int, starts: bool = False, nu_steps: tuple[int, int] = (0, 0),
             ) -> np.ndarray:
    """``M`` for tiers with `capacities` (blocks), `nslots` slots and `aux` words of policy
    structures (LFU buckets, Belady's heap) each; `params[t]` = PARAM_A..C. `next_use` and `depth`
    are empty unless the policy reads them; `depth` is per block access, or with `starts` each
    request's first access position (ascending); `next_use` is per block access, or with `nu_steps`
    = (requests, steps) ``NextUseSteps.packed()`` (then `depth` must be the starts); `max_blocks`: the
    most blocks one request has."""
    n_t = len(capacities)
    sizes = [table_size(n) for n in nslots]
    total_slots = int(sum(nslots))
    slots0 = N_NODE_FIELDS + n_t * N_TIER_FIELDS
    ht0 = slots0 + total_slots * N_SLOT_FIELDS
    hp0 = ht0 + 2 * sum(sizes)
    nu0 = hp0 + int(sum(aux))
    dp0 = nu0 + len(next_use)
    sc0 = dp0 + len(depth)
    scratch_n = max(1, int(max_blocks))
    M = np.empty(sc0 + 6 * scratch_n, dtype=np.int64)
    M[:N_NODE_FIELDS] = 0
    M[NW], M[POLICY], M[WRITE_THROUGH] = n_workers, policy_code, int(write_through)
    M[NU_BASE], M[DP_BASE] = nu0, dp0
    M[DP_STARTS] = len(depth) if starts else 0
    M[NU_REQS], M[NU_STEPS] = nu_steps
    if nu_steps[0] and not starts:
        raise ValueError("next-use steps need the request starts")
    M[SCRATCH], M[SCRATCH_N] = sc0, scratch_n
    M[slots0:hp0] = -1  # slot fields and hash tables (empty entries)
    M[hp0:nu0] = -1
    M[nu0:dp0] = next_use
    M[dp0:sc0] = depth
    F = M.view(np.float64)
    s, h, p = slots0, ht0, hp0
    for t in range(n_t):
        a = N_NODE_FIELDS + t * N_TIER_FIELDS
        n = int(nslots[t])
        M[a:a + N_TIER_FIELDS] = 0
        M[a + CAP], M[a + NSLOTS] = capacities[t], n
        M[a + HBASE], M[a + HMASK] = h, sizes[t] - 1
        M[a + HEAPBASE] = p
        M[a + HEAD:a + SIZE] = -1  # heads and tails
        M[a + PENDING] = -1
        M[a + PARAM_A], M[a + PARAM_B], M[a + PARAM_C] = params[t]
        F[a + ARC_P] = F[a + ARC_PENDING_P] = 0.0
        if n:
            addrs = s + N_SLOT_FIELDS * np.arange(n, dtype=np.int64)
            M[addrs[:-1] + NEXT] = addrs[1:]  # free list in address order
            M[a + FREE] = s
        else:
            M[a + FREE] = -1
        s += n * N_SLOT_FIELDS
        h += 2 * sizes[t]
        p += int(aux[t])
    return M
