"""``c_order``, what a kernel called through its entry point uses to decline arrays that are not in C
order, against NumPy's own flag on arrays of every kind of layout."""
from __future__ import annotations

import numpy as np
import pytest

from bpttlab.cells.kernels import c_order

BASE = np.arange(120.0).reshape(4, 5, 6)

ARRAYS = {
    "C order": BASE,
    "transposed": BASE.T,
    "axes swapped": BASE.swapaxes(1, 2),
    "every other row": BASE[::2],
    "every other column": BASE[:, :, ::2],
    "reversed": BASE[::-1],
    "a leading block": BASE[:2],
    "an inner block": BASE[:, 1:3],
    "one row of a 2-D array": BASE[0, :1, :],
    "a column": BASE[0, :, :1],
    "length-1 axes with odd strides": np.lib.stride_tricks.as_strided(BASE, (1, 5, 1), (8, 48, 999 * 8)),
    "empty": BASE[:0],
    "Fortran order": np.asfortranarray(BASE),
    "1-D strided": BASE.ravel()[::3],
    "1-D": BASE.ravel(),
}


@pytest.mark.parametrize("name", ARRAYS)
def test_c_order_agrees_with_numpy(name):
    a = ARRAYS[name]
    assert c_order(a) == a.flags.c_contiguous, (a.shape, a.strides)
