"""Calling one compiled version of a kernel without Numba's per-call dispatch.

A call through a Numba dispatcher first works out the Numba type of every argument to pick the compiled
version that fits (and compiles a new one if none does). At the smallest sizes that look-up costs as much
as a good part of the arithmetic, and the engine's hot path already knows the types: its arguments are
checked float64 (or int64) arrays of known dimensions. The entry point of one compiled signature skips
the look-up and only converts the arguments.

It trusts its caller: each argument must have the dtype and the number of dimensions of the signature
(Numba does not check them: another dtype is misread, another number of dimensions misplaces the shape
and strides it copies). Arrays must also be in C order, which their strides say and which can change in
place, so a kernel called this way tests its arrays with :func:`bpttlab.cells.kernels.c_order` and
declines arrays that are not. Read-only arrays may be passed where the kernel only reads them (through
the dispatcher they would be typed apart, and compiled for anew).
"""
from __future__ import annotations

from numba import types


def c_array(dtype, ndim: int) -> types.Array:
    """The Numba type of a writable, aligned C-order ndarray of ``dtype`` (a Numba scalar type)."""
    return types.Array(dtype, ndim, "C")


def entry_point(kernel, signature: tuple):
    """The compiled entry point of ``kernel`` (an ``@njit`` dispatcher) for ``signature`` (a tuple of Numba
    types), or the dispatcher itself where that signature is not compiled (or loaded) in this process yet."""
    overload = kernel.overloads.get(tuple(signature))
    return kernel if overload is None else overload.entry_point
