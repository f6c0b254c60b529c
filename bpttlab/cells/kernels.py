"""Small Numba building blocks shared by the built-in cells' kernels (arrays and scalars only)."""
from __future__ import annotations

import math

from numba import njit


@njit(cache=True, inline="always")
def clip_rows(v, tau):
    """Rescale the vector v in place to norm tau if its norm is larger ("step" clipping)."""
    s = 0.0
    for i in range(v.shape[0]):
        s += v[i] * v[i]
    n = math.sqrt(s)
    if n > tau:
        r = tau / n
        for i in range(v.shape[0]):
            v[i] *= r


@njit(cache=True, inline="always")
def matvec_t_add(M, v, out):
    """out += M^T v, walking M by rows so the inner loop is contiguous."""
    for j in range(M.shape[0]):
        d = v[j]
        if d != 0.0:
            row = M[j]
            for i in range(M.shape[1]):
                out[i] += row[i] * d


@njit(cache=True, inline="always")
def matvec_add(M, v, out):
    """out += M v."""
    for i in range(M.shape[0]):
        s = 0.0
        row = M[i]
        for j in range(M.shape[1]):
            s += row[j] * v[j]
        out[i] += s


def require_code(act, cell_name: str) -> int:
    """The Numba branch of a built-in activation, or a clear error for a NumPy-only plugin activation."""
    if act.code is None:
        raise ValueError(f"activation {act.name!r} has no Numba kernel, so the built-in cell {cell_name!r} "
                         "cannot use it; use tanh, relu, sigmoid or identity, or a cell plugin written for it")
    return act.code
