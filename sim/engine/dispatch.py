"""Which kernel serves which policy: the code table and the five tier calls.

``KERNELS`` maps a registered policy name (sim.policies) to its code; a
policy that is not listed (``learned``, a user's own) runs on the Python
reference path. The code is a node-wide constant (``M[POLICY]``), so the
branch is perfectly predicted.
"""
from __future__ import annotations

from numba import njit

from sim.engine.arc_kernel import arc_admit, arc_insert, arc_touch, arc_victim
from sim.engine.belady_kernel import belady_insert, belady_remove, belady_touch, belady_victim
from sim.engine.layout import POLICY
from sim.engine.lfu_kernel import lfu_insert, lfu_remove, lfu_touch, lfu_victim
from sim.engine.lru_kernel import list_remove, lru_insert, lru_victim, sw_admit, sw_touch
from sim.engine.s3fifo_kernel import s3_insert, s3_touch, s3_victim
from sim.engine.tier_slots import move_to_back

LRU, FIFO, SESSION_PREFETCH, SELECTIVE_WRITE, ARC, S3FIFO, LFU, BELADY = range(8)

KERNELS: dict[str, int] = {
    "lru": LRU,
    "fifo": FIFO,
    "session_prefetch": SESSION_PREFETCH,
    "selective_write": SELECTIVE_WRITE,
    "arc": ARC,
    "s3fifo": S3FIFO,
    "lfu": LFU,
    "belady": BELADY,
}


@njit(cache=True)
def pol_touch(M, t, s, pos):
    code = M[POLICY]
    if code == LRU or code == SESSION_PREFETCH:
        move_to_back(M, t, s)
    elif code == FIFO:
        pass
    elif code == SELECTIVE_WRITE:
        sw_touch(M, t, s)
    elif code == ARC:
        arc_touch(M, t, s)
    elif code == S3FIFO:
        s3_touch(M, t, s)
    elif code == LFU:
        lfu_touch(M, t, s)
    else:
        belady_touch(M, t, s, pos)


@njit(cache=True)
def pol_insert(M, t, key, pos):
    code = M[POLICY]
    if code <= SELECTIVE_WRITE:
        lru_insert(M, t, key, pos)
    elif code == ARC:
        arc_insert(M, t, key, pos)
    elif code == S3FIFO:
        s3_insert(M, t, key, pos)
    elif code == LFU:
        lfu_insert(M, t, key, pos)
    else:
        belady_insert(M, t, key, pos)


@njit(cache=True)
def pol_victim(M, t):
    code = M[POLICY]
    if code <= SELECTIVE_WRITE:
        return lru_victim(M, t)
    if code == ARC:
        return arc_victim(M, t)
    if code == S3FIFO:
        return s3_victim(M, t)
    if code == LFU:
        return lfu_victim(M, t)
    return belady_victim(M, t)


@njit(cache=True)
def pol_remove(M, t, s):
    code = M[POLICY]
    if code == LFU:
        lfu_remove(M, t, s)
    elif code == BELADY:
        belady_remove(M, t, s)
    else:
        list_remove(M, t, s)


@njit(cache=True)
def pol_filters(M):
    """Does the policy override admit() (the tier then asks it on every admission)?"""
    code = M[POLICY]
    return code == SELECTIVE_WRITE or code == ARC


@njit(cache=True)
def pol_admit(M, t, key, pos):
    code = M[POLICY]
    if code == SELECTIVE_WRITE:
        return sw_admit(M, t, key, pos)
    if code == ARC:
        return arc_admit(M, t, key, pos)
    return True
