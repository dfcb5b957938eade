"""A view of an engine array that the compiled code does not reference-count.

Numba passes arrays between compiled functions with an atomic reference count on each call (``NRT_incref``
/ ``NRT_decref``, a locked instruction each). The engine's kernels are many small functions that take the
node array ``M`` on every block operation, so those atomics took about 70 % of a hit-rate-only replay
(perf, 300k requests). An array rebuilt from the raw pointer (``numba.carray``) has no owner record, so
the counts become a test of a null pointer. The caller must keep the original array alive for the view's
whole use: the entry points below hold it as an argument.
"""
from __future__ import annotations

from numba import carray, njit, types
from numba.extending import intrinsic


@intrinsic
def _i64_ptr(typingctx, addr):
    """An int64* from an integer address."""
    sig = types.CPointer(types.int64)(addr)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.int64)))

    return sig, codegen


@njit(cache=True, inline="always")
def unowned(a):
    """The same int64 vector as `a`, without an owner (see module doc); `a` must outlive it."""
    return carray(_i64_ptr(a.ctypes.data), a.shape[0])  # type: ignore[call-arg]  # intrinsic: typingctx is implicit
