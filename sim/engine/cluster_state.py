"""State of the compiled cluster cache and its bookkeeping, on the shared core.

The compiled twin of ``sim.cache.cluster.ClusterCache`` (``sim.engine.cluster_kernels``
runs its rules, ``sim.engine.cluster_queries`` answers the routers) keeps
its state in flat arrays (``U`` distinct blocks, dense ids 0..U-1; S and B int32
while every slot address fits, int64 beyond; T, G, H int64):

* ``S``: slots of ``S_COLS`` words (address ``s``), one per resident (tier
  instance, block): the shared header of ``sim.engine.slots`` (KEY = block,
  PREV/NEXT = the instance's queue, oldest first) whose POS word holds INST
  (no rule here reads a block's access position: LRU and FIFO order is the
  queue's), then BPREV/BNEXT: the block's list of EIC-pool copies for an
  EIC slot, its holder list (``hbm_holders``: the workers whose HBM holds
  it, insertion-ordered) for an HBM slot. Free slots chain through NEXT.
* ``T``: a record of ``T_COLS`` per instance: the queue anchor HEAD/TAIL,
  SIZE, CAP, CREATED, REC (a hit moves the block to the back: LRU) and the
  ``TierStats`` counters. Instances: HBM per worker, DRAM per node, EIC per
  rack, the remote SSD.
* ``H``: the shared hash table (``sim.engine.hashtab``, the locality-keeping
  home ``find_near``: consecutive blocks of one instance share cache lines)
  with key = instance x U + block, for the HBM, DRAM and EIC slots: sized by
  what those tiers hold (their capacity at most), not by the run's blocks.
  The remote SSD pool's slots are found through their block's record.
  The same table counts each node's HBM copies of a block (key = (instances
  + node) x U + block, value = how many of the node's workers hold it), so
  "does a peer on w's node hold b" is one probe, not one per peer.
* ``B``: a record of ``B_COLS`` per block: the anchors of its holder list
  and of its EIC-copy list (the racks whose pool holds it: ``eic_racks``),
  and its slot in the remote SSD pool (just a flag when the pool can hold
  every distinct block: it never evicts, so it keeps no queue).
* ``G``: sizes, flags, free-list head, counters (hits per location, moves).

Transfers are recorded as (src kind, src index, dst kind, dst index, blocks)
rows aggregated per (src, dst) in first-recorded order (dict order in Python).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine import hashtab, slots
from sim.engine.slots import KEY, N_HEADER, PREV
from sim.engine.slots import POS as INST  # the header's position word holds the instance

# S fields after the shared header
BPREV, BNEXT = range(N_HEADER, N_HEADER + 2)
S_COLS = N_HEADER + 2
UNLISTED = -2  # BPREV/BNEXT of an HBM slot that is on no holder list
SSD_FLAG = 0  # B[SSDS] of a block in a remote SSD pool that never fills (G[SSD_ALL]): found, no slot
# T fields: the queue, then TierStats in sim.cache.tier field order
HEAD, TAIL, SIZE, CAP, CREATED, REC = range(6)
HITS, INSERTS, DEM_IN, PROM_OUT, EVICTIONS, TAKEN, DROPPED, REJECTED = range(6, 14)
T_COLS = 14
STAT_NAMES = ("hits", "inserts", "demotions_in", "promotions_out", "evictions", "taken", "dropped", "rejected")
# B fields: anchors of the block's holder list (its HBM slots) and EIC-copy list (its EIC slots), both
# through BPREV/BNEXT, and SSDS: the block's slot in the remote SSD pool, or -1
HHEAD, HTAIL, EHEAD, ETAIL, SSDS = range(5)
B_COLS = 5
# G entries
(U_, NW, NN, NR, WPN, WPR, NPR, DBASE, EBASE, SSD_T, NKEYS, EVICT_TO_EIC, CROSS, WT, EIC_CAP_POS,
 FREE, NFREE, MASK, NHOLD, NEIC, NCR, NMV, SSD_ALL, HITS0) = range(24)
MOVED0 = HITS0 + 6
G_LEN = MOVED0 + 7
MOVE_NAMES = ("hbm_to_eic", "hbm_to_dram", "eic_to_ssd", "write_through_dram", "dram_to_eic", "dram_to_ssd",
              "hbm_to_ssd")
M_HBM_EIC, M_HBM_DRAM, M_EIC_SSD, M_WT_DRAM, M_DRAM_EIC, M_DRAM_SSD, M_HBM_SSD = range(7)
# endpoint kinds of transfer rows
EP_GPU, EP_DRAM, EP_EIC, EP_SSD = range(4)


# ----------------------------------------------------------------- index
@njit(cache=True)
def rehash(S, G, H):
    """Index every live slot outside the SSD pool into the (new, empty) table H."""
    mask = G[MASK]
    u = G[U_]
    ssd = G[SSD_T]
    for s in range(0, S.shape[0], S_COLS):
        t = S[s + INST]
        if t >= 0 and t != ssd:
            hashtab.insert_near(H, mask, t * u + S[s + KEY], s)
            if t < G[NW]:
                hashtab.add_near(H, mask, node_key(G, t // G[WPN], S[s + KEY]), np.int64(1))


@njit(cache=True, inline="always")
def node_key(G, node, b):
    """Key of the count of node's HBM copies of block b: past every instance key."""
    return (G[NW] + G[NN] + G[NR] + 1 + node) * G[U_] + b


@njit(cache=True, inline="always")
def node_copies(G, H, node, b):
    """How many HBM instances of `node` hold block b (0 when none)."""
    return max(0, hashtab.find_near(H, G[MASK], node_key(G, node, b)))


@njit(cache=True, inline="always")
def find_in(G, H, t, b):
    """Slot of block b in instance t, or -1."""
    return hashtab.find_near(H, G[MASK], t * G[U_] + b)


@njit(cache=True, inline="always")
def find_ssd(B, b):
    """Slot of block b in the remote SSD pool, or -1: read from the block's record, so the pool (which
    may end up holding every distinct block of the run) costs no index entries."""
    return B[b * B_COLS + SSDS]


@njit(cache=True, inline="always")
def alloc(S, G, H, B, inst, b):
    s = slots.take_free(S, G, FREE)
    G[NFREE] -= 1
    S[s + KEY] = b
    S[s + INST] = inst
    if inst == G[SSD_T]:
        B[b * B_COLS + SSDS] = s
    else:
        hashtab.insert_near(H, G[MASK], inst * G[U_] + b, s)
        G[NKEYS] += 1
        if inst < G[NW]:  # np.int64(1), not 1: one compile of add_near (cluster_kernels.I64)
            G[NKEYS] += hashtab.add_near(H, G[MASK], node_key(G, inst // G[WPN], b), np.int64(1))
    return s


@njit(cache=True, inline="always")
def release(S, G, H, B, s):
    t = S[s + INST]
    if t == G[SSD_T]:
        B[S[s + KEY] * B_COLS + SSDS] = -1
    else:
        hashtab.delete_near(H, G[MASK], t * G[U_] + S[s + KEY])
        G[NKEYS] -= 1
        if t < G[NW]:
            G[NKEYS] += hashtab.add_near(H, G[MASK], node_key(G, t // G[WPN], S[s + KEY]), np.int64(-1))
    S[s + INST] = -1
    slots.give_free(S, s, G, FREE)
    G[NFREE] += 1


# ----------------------------------------------------------------- tier instances
# The per-block operations are inlined (numba IR, ``inline="always"``): a call passes the five state
# arrays, each costing a reference-count call both ways even unowned (``sim.engine.unowned``), and
# the demotion chain makes several per block. -25 % of acquire on a 30k-request replay at 102,400 GPUs;
# the price is compile time (acquire + store ~20 s -> ~50 s once, then cached).
@njit(cache=True, inline="always")
def touch(S, T, t, s):
    a = t * T_COLS
    if T[a + REC]:
        slots.to_back(S, s, T, a + HEAD, PREV)


@njit(cache=True, inline="always")
def is_eic(G, t):
    return G[EBASE] <= t < G[EBASE] + G[NR]


@njit(cache=True, inline="always")
def remove(S, T, G, H, B, t, s):
    """Slot s leaves instance t (victim or taken): off its queue, its block's EIC-copy or holder list,
    the index."""
    a = t * T_COLS
    slots.unlink(S, s, T, a + HEAD, PREV)
    T[a + SIZE] -= 1
    if t < G[NW]:
        holder_drop(S, G, B, s)
    elif is_eic(G, t):
        slots.unlink(S, s, B, S[s + KEY] * B_COLS + EHEAD, BPREV)
        G[NEIC] -= 1
    release(S, G, H, B, s)


@njit(cache=True, inline="always")
def holder_drop(S, G, B, s):
    """HBM slot s leaves its block's holder list (if still on it: UNLISTED marks one that left early)."""
    if S[s + BNEXT] != UNLISTED:
        slots.unlink(S, s, B, S[s + KEY] * B_COLS + HHEAD, BPREV)
        S[s + BPREV] = S[s + BNEXT] = UNLISTED
        G[NHOLD] -= 1


@njit(cache=True, inline="always")
def put_new(S, T, G, H, B, t, b, out, k):
    """Insert b (not resident) into t; a victim's block goes to out[k]. Returns 1 on a victim.
    An HBM slot joins its block's holder list (``hbm_holders``) here and leaves it in ``remove``, so a
    victim's holder entry goes with it (nothing reads the holders while a victim waits for demotion)."""
    a = t * T_COLS
    if t == G[SSD_T] and G[SSD_ALL]:
        # A pool that can hold every distinct block never evicts and nothing takes from it, so its
        # order is never read: a block's membership is its record's flag, with no slot at all.
        B[b * B_COLS + SSDS] = SSD_FLAG
        T[a + SIZE] += 1
        T[a + INSERTS] += 1
        return 0
    vict = 0
    if T[a + SIZE] >= T[a + CAP]:
        h = T[a + HEAD]
        out[k] = S[h + KEY]
        remove(S, T, G, H, B, t, h)
        T[a + EVICTIONS] += 1
        vict = 1
    s = alloc(S, G, H, B, t, b)
    slots.link_back(S, s, T, a + HEAD, PREV)
    T[a + SIZE] += 1
    T[a + INSERTS] += 1
    if t < G[NW]:
        slots.link_back(S, s, B, b * B_COLS + HHEAD, BPREV)
        G[NHOLD] += 1
    elif is_eic(G, t):
        slots.link_back(S, s, B, b * B_COLS + EHEAD, BPREV)
        G[NEIC] += 1
    return vict


@njit(cache=True, inline="always")
def ensure(T, t):
    """The lazily created instance t, or -1 when its kind has no capacity."""
    if T[t * T_COLS + CAP] <= 0:
        return -1
    T[t * T_COLS + CREATED] = 1
    return t


@njit(cache=True, inline="always")
def existing(T, t):
    return t if T[t * T_COLS + CREATED] else -1


# ----------------------------------------------------------------- transfer rows
@njit(cache=True)
def record_move(G, MV, sk, si, dk, di, n):
    m = G[NMV]
    for i in range(m):
        if MV[i, 0] == sk and MV[i, 1] == si and MV[i, 2] == dk and MV[i, 3] == di:
            MV[i, 4] += n
            return
    MV[m, 0] = sk
    MV[m, 1] = si
    MV[m, 2] = dk
    MV[m, 3] = di
    MV[m, 4] = n
    G[NMV] = m + 1


@njit(cache=True)
def record_critical(G, CR, sk, si):
    m = G[NCR]
    for i in range(m):
        if CR[i, 0] == sk and CR[i, 1] == si:
            CR[i, 2] += 1
            return
    CR[m, 0] = sk
    CR[m, 1] = si
    CR[m, 2] = 1
    G[NCR] = m + 1
