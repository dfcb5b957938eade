"""Slots and intrusive lists, shared by the node engine and the cluster engine.

A slot is a record of int64 fields at address ``s`` of a flat array. Every
slot starts with the header KEY, POS, PREV, NEXT; each engine adds its own
fields after ``N_HEADER``. Free slots chain through NEXT from a head word.

Lists are intrusive and doubly linked through a pair of link fields at
``s + lk`` (previous) and ``s + lk + 1`` (next): PREV/NEXT, or a second pair
when a slot sits on two lists at once. A list's anchor is two words, head
(oldest) and tail (youngest), at ``anc`` of an array that may be the slot
array itself; callers that need a length keep it themselves. Every
function takes the arrays explicitly, so the same compiled code serves the
node engine's single array and the cluster engine's separate ones.
"""
from __future__ import annotations

import numpy as np
from numba import njit

KEY, POS, PREV, NEXT = range(4)
N_HEADER = 4

# Both engines pass a constant to a kernel that is not inlined as I64(...) / np.bool_(...), and start a
# counter passed to one as I64(0): numba types a bare constant (`0`, `True`, a module constant) as a
# literal and compiles the callee once per literal value, also for a counter whose type is still its
# first literal `0` while a loop is inferred (tests/engine/test_kernel_literals.py, docs/EXTENDING.md).
I64 = np.int64


@njit(cache=True, inline="always")
def take_free(S, A, at):
    """Pop the first free slot of the free list whose head word is A[at]."""
    s = A[at]
    if s < 0:
        raise RuntimeError("kvsim engine: slot pool exhausted (sizing bug)")
    A[at] = S[s + NEXT]
    return s


@njit(cache=True, inline="always")
def give_free(S, s, A, at):
    """Push slot s onto the free list whose head word is A[at]."""
    S[s + NEXT] = A[at]
    A[at] = s


@njit(cache=True, inline="always")
def link_back(S, s, A, anc, lk):
    """Append s at the young end of the list anchored at A[anc]."""
    tail = A[anc + 1]
    S[s + lk] = tail
    S[s + lk + 1] = -1
    if tail >= 0:
        S[tail + lk + 1] = s
    else:
        A[anc] = s
    A[anc + 1] = s


@njit(cache=True, inline="always")
def unlink(S, s, A, anc, lk):
    """Take s off the list anchored at A[anc]."""
    p, n = S[s + lk], S[s + lk + 1]
    if p >= 0:
        S[p + lk + 1] = n
    else:
        A[anc] = n
    if n >= 0:
        S[n + lk] = p
    else:
        A[anc + 1] = p


@njit(cache=True, inline="always")
def to_back(S, s, A, anc, lk):
    """Move s to the young end of its list (a recency touch)."""
    if A[anc + 1] != s:
        unlink(S, s, A, anc, lk)
        link_back(S, s, A, anc, lk)
