"""A view of an engine array that the compiled code does not reference-count.

Numba passes arrays between compiled functions with an atomic reference count on each call (``NRT_incref``
/ ``NRT_decref``, a locked instruction each). The engines' kernels are many small functions that take
their state arrays on every block operation, so those atomics took about 70 % of a hit-rate-only replay
(perf, 300k requests). An array rebuilt from its data pointer (``numba.carray``) has no owner record, so
the counts become a test of a null pointer. The caller must keep the original array alive for the view's
whole use: the entry points below hold it as an argument.
"""
from __future__ import annotations

from numba import carray, njit, types
from numba.extending import intrinsic


@intrinsic
def _data_ptr(typingctx, arr):
    """The data pointer of a C-contiguous array, typed by its dtype."""
    sig = types.CPointer(arr.dtype)(arr)

    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, args[0]).data

    return sig, codegen


@njit(cache=True, inline="always")
def unowned(a):
    """The same C-contiguous array as `a` (any dtype, any rank), without an owner (see module doc);
    `a` must outlive it."""
    return carray(_data_ptr(a), a.shape)  # type: ignore[call-arg]  # intrinsic: typingctx is implicit
