r"""Small Numba building blocks shared by the built-in cells' kernels (arrays and scalars only).

Each is compiled once and linked into the kernels that call it (LLVM still inlines the small ones where it
pays; forcing Numba to inline them everywhere multiplied compile time). The three called once per time
step in the Elman kernels (:func:`step_times_add`, :func:`activate`, :func:`times_derivative`) are the
exception: inlined, a small step costs a third less, for one to two seconds more compiling. The loops are
written so that LLVM vectorises them: contiguous inner loops, no reductions across SIMD lanes, and
``error_model="numpy"`` so that a division does not carry a Python ``ZeroDivisionError`` branch. Products
large enough to amortise a call go to BLAS (``np.dot`` with an output array, through SciPy); small ones
stay in plain loops, where a BLAS call would cost more than the arithmetic.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..activations import IDENTITY_CODE, RELU_CODE, SIGMOID_CODE, TANH_CODE

# Cephes' rational approximation of tanh on |x| < 0.625 (relative error 2.5e-16).
_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
_P0, _P1, _P2 = _TANH_P
_Q0, _Q1, _Q2 = _TANH_Q
# ln 2 split so that k * _LN2_HI is exact for the k used here (Cody and Waite).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
# 1.5 * 2**52: y + _ROUND rounds y to an integer k and leaves k in the low bits of the result.
_ROUND = 6755399441055744.0
_ONE_BITS = 1023 << 52  # the bits of 1.0: adding k << 52 to them gives 2**k

@njit(cache=True, error_model="numpy")
def tanh(x):
    r"""tanh(x) to within 2 ulp, in branch-free arithmetic that LLVM vectorises.

    .. math::

        \tanh x = x + x^3 \frac{P(x^2)}{Q(x^2)} \quad (|x| < 0.625), \qquad
        \tanh x = \operatorname{sign}(x)\Bigl(1 - \frac{2}{e^{2|x|} + 1}\Bigr) \quad \text{otherwise},

    with :math:`e^{y} = 2^k e^{r}`, :math:`k = \operatorname{round}(y / \ln 2)`, :math:`|r| \le \ln 2 / 2`,
    :math:`e^r` by its Taylor polynomial of degree 13 (truncation error below 5e-18, evaluated by
    Estrin's scheme for a short dependency chain) and :math:`2^k` written straight into the exponent
    bits. ``y`` is capped at 40, where tanh is 1 in float64. Both branches are computed and one is
    selected, so a loop over an array has no branches; NaN stays NaN.
    """
    ax = abs(x)
    z = x * x
    small = x + x * z * (((_P0 * z + _P1) * z + _P2) / (((z + _Q0) * z + _Q1) * z + _Q2))
    y = 2.0 * ax
    y = y if y < 40.0 else 40.0
    kk = y * _INV_LN2 + _ROUND
    k = kk - _ROUND
    r = (y - k * _LN2_HI) - k * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    c01 = 1.0 + r
    c23 = 0.5 + r * (1.0 / 6.0)
    c45 = (1.0 / 24.0) + r * (1.0 / 120.0)
    c67 = (1.0 / 720.0) + r * (1.0 / 5040.0)
    c89 = (1.0 / 40320.0) + r * (1.0 / 362880.0)
    c1011 = (1.0 / 3628800.0) + r * (1.0 / 39916800.0)
    c1213 = (1.0 / 479001600.0) + r * (1.0 / 6227020800.0)
    p = ((c01 + c23 * r2) + (c45 + c67 * r2) * r4) + ((c89 + c1011 * r2) + c1213 * r4) * (r4 * r4)
    two_k = np.int64((np.float64(kk).view(np.int64) << 52) + _ONE_BITS).view(np.float64)
    big = 1.0 - 2.0 / (p * two_k + 1.0)
    big = big if x >= 0.0 else -big
    return big if ax >= 0.625 else small


@njit(cache=True)
def act(code: int, a: float) -> float:
    """f(a) for a built-in activation code."""
    if code == TANH_CODE:
        return tanh(a)
    if code == RELU_CODE:
        return a if a > 0.0 else 0.0
    if code == SIGMOID_CODE:
        if a >= 0.0:
            return 1.0 / (1.0 + math.exp(-a))
        e = math.exp(a)
        return e / (1.0 + e)
    return a


@njit(cache=True)
def dact(code: int, a: float, h: float) -> float:
    """f'(a) for a built-in activation code, given h = f(a)."""
    if code == TANH_CODE:
        return 1.0 - h * h
    if code == RELU_CODE:
        return 1.0 if a > 0.0 else 0.0
    if code == SIGMOID_CODE:
        return h * (1.0 - h)
    return 1.0


@njit(cache=True)
def sigmoid(a: float) -> float:
    """The logistic gate, overflow-free for either sign of a."""
    return act(SIGMOID_CODE, a)


#: Multiply-adds, and rows, from which a matrix product goes to BLAS instead of plain loops.
BLAS_MIN_WORK = 4096
BLAS_MIN_ROWS = 8

#: Numba options of the kernels that use these blocks: no Python division checks (so loops vectorise)
#: and fused multiply-adds (one rounding instead of two; no reassociation, so results are reproducible).
KERNEL_OPTIONS = dict(cache=True, error_model="numpy", fastmath={"contract"})


@njit(cache=True, error_model="numpy", inline="always")
def activate(code, A, t, Hs, t_out):
    """Hs[t_out] = f(A[t]) elementwise over (B, H) slabs of 3-D arrays; tanh, relu and identity in
    vectorised loops. Slabs are indexed in place (no views, so no reference counting per step); inlined
    into its callers, like :func:`step_times_add`."""
    B, H = A.shape[1], A.shape[2]
    if code == TANH_CODE:
        for r in range(B):
            for i in range(H):
                Hs[t_out, r, i] = tanh(A[t, r, i])
    elif code == RELU_CODE:
        for r in range(B):
            for i in range(H):
                a = A[t, r, i]
                Hs[t_out, r, i] = a if a > 0.0 else 0.0
    elif code == IDENTITY_CODE:
        for r in range(B):
            for i in range(H):
                Hs[t_out, r, i] = A[t, r, i]
    else:
        for r in range(B):
            for i in range(H):
                Hs[t_out, r, i] = act(code, A[t, r, i])


@njit(cache=True, error_model="numpy", inline="always")
def times_derivative(code, A, t, Hs, t_out, dA):
    """dA[t] *= f'(A[t]) elementwise over (B, H) slabs, given Hs[t_out] = f(A[t]); inlined into its
    callers, like :func:`step_times_add`."""
    B, H = A.shape[1], A.shape[2]
    if code == TANH_CODE:
        for r in range(B):
            for i in range(H):
                h = Hs[t_out, r, i]
                dA[t, r, i] *= 1.0 - h * h
    elif code == RELU_CODE:
        for r in range(B):
            for i in range(H):
                dA[t, r, i] *= 1.0 if A[t, r, i] > 0.0 else 0.0
    elif code != IDENTITY_CODE:
        for r in range(B):
            for i in range(H):
                dA[t, r, i] *= dact(code, A[t, r, i], Hs[t_out, r, i])


@njit(cache=True)
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


@njit(cache=True)
def matvec_t_add(M, v, out):
    """out += M^T v, walking M by rows so the inner loop is contiguous."""
    for j in range(M.shape[0]):
        d = v[j]
        if d != 0.0:
            row = M[j]
            for i in range(M.shape[1]):
                out[i] += row[i] * d


@njit(cache=True)
def matvec_add(M, v, out):
    """out += M v."""
    for i in range(M.shape[0]):
        s = 0.0
        row = M[i]
        for j in range(M.shape[1]):
            s += row[j] * v[j]
        out[i] += s


@njit(cache=True, inline="always")
def step_times_add(X, t_in, M, out, t_out, tmp):
    r"""out[t_out] += X[t_in] M for 3-D X (., n, k), out (., n, m) and M (k, m); tmp (n, m) is scratch.

    One row is a matrix-vector product, done in loops that take the rows of M four at a time
    (:math:`o \mathrel{+}= x_j M_{j,:} + \dots + x_{j+3} M_{j+3,:}`: four multiply-adds per load and store
    of ``o``, a contiguous inner loop that vectorises) and index the slabs in place (no views, so no
    reference counting per step). Rows narrower than a vector (m < 4) keep each entry in a register
    instead, adding the same terms in the same order. From four rows and enough work on, BLAS is faster.
    Inlined into its callers (``inline="always"``): called once per time step, the call itself cost more
    than a small step's arithmetic.
    """
    n, k = X.shape[1], X.shape[2]
    m = M.shape[1]
    if n >= 4 and n * k * m >= BLAS_MIN_WORK:
        np.dot(X[t_in], M, tmp)
        for r in range(n):
            for i in range(m):
                out[t_out, r, i] += tmp[r, i]
        return
    k4 = k - k % 4
    if m < 4:  # rows narrower than a vector: each entry's sum in a register, its terms in the same order
        for r in range(n):
            for i in range(m):
                o = out[t_out, r, i]
                for j in range(0, k4, 4):
                    o += ((M[j, i] * X[t_in, r, j] + M[j + 1, i] * X[t_in, r, j + 1])
                          + (M[j + 2, i] * X[t_in, r, j + 2] + M[j + 3, i] * X[t_in, r, j + 3]))
                for j in range(k4, k):
                    o += M[j, i] * X[t_in, r, j]
                out[t_out, r, i] = o
        return
    for r in range(n):
        for j in range(0, k4, 4):
            x0 = X[t_in, r, j]
            x1 = X[t_in, r, j + 1]
            x2 = X[t_in, r, j + 2]
            x3 = X[t_in, r, j + 3]
            for i in range(m):
                out[t_out, r, i] += (M[j, i] * x0 + M[j + 1, i] * x1) + (M[j + 2, i] * x2 + M[j + 3, i] * x3)
        for j in range(k4, k):
            xj = X[t_in, r, j]
            for i in range(m):
                out[t_out, r, i] += M[j, i] * xj


@njit(cache=True)
def matmul_nt(X, M, out):
    """out = X M^T for X (n, k), M (m, k)."""
    n, k = X.shape
    m = M.shape[0]
    if n * k * m >= BLAS_MIN_WORK:
        np.dot(X, M.T, out)
    else:
        for r in range(n):
            for i in range(m):
                s = 0.0
                for j in range(k):
                    s += M[i, j] * X[r, j]
                out[r, i] = s


@njit(cache=True)
def matmul_nn(X, M, out):
    """out = X M for X (n, k), M (k, m): plain loops (out_r += X_rj M_j, which vectorise) when the
    product is too small to pay for a BLAS call."""
    n, k = X.shape
    m = M.shape[1]
    if n >= BLAS_MIN_ROWS and n * k * m >= BLAS_MIN_WORK:
        np.dot(X, M, out)
    else:
        out[:] = 0.0
        for r in range(n):
            for j in range(k):
                d = X[r, j]
                for i in range(m):
                    out[r, i] += M[j, i] * d


@njit(cache=True)
def matmul_nn_add(X, M, out, tmp):
    """out += X M for X (n, k), M (k, m); tmp (n, m) is scratch for the BLAS path."""
    n, k = X.shape
    m = M.shape[1]
    if n >= BLAS_MIN_ROWS and n * k * m >= BLAS_MIN_WORK:
        np.dot(X, M, tmp)
        for r in range(n):
            for i in range(m):
                out[r, i] += tmp[r, i]
    else:
        for r in range(n):
            matvec_t_add(M, X[r], out[r])


@njit(cache=True)
def matmul_tn(X, Y, out):
    r"""out = X^T Y for X (n, p), Y (n, q): :math:`\sum_r X_{r,:}^\top Y_{r,:}`, the sum of outer products
    that assembles a weight gradient from per-copy cotangents and inputs. Each entry sums over r in
    ascending order whichever loop runs: rows narrower than a vector (q < 4) keep each entry's sum in a
    register, wider ones add a whole row at a time (a loop that vectorises over j)."""
    n, p = X.shape
    q = Y.shape[1]
    if n * p * q >= BLAS_MIN_WORK:
        np.dot(X.T, Y, out)
    elif q < 4:
        for i in range(p):
            for j in range(q):
                s = 0.0
                for r in range(n):
                    s += X[r, i] * Y[r, j]
                out[i, j] = s
    else:
        out[:] = 0.0
        for r in range(n):
            for i in range(p):
                d = X[r, i]
                for j in range(q):
                    out[i, j] += d * Y[r, j]


@njit(cache=True)
def add_rows(X, v):
    """X[r] += v for every row r."""
    for r in range(X.shape[0]):
        for i in range(X.shape[1]):
            X[r, i] += v[i]


@njit(cache=True)
def column_sums(X, out):
    """out = the sum of the rows of X, in row order: for fewer than four columns each sum in a register,
    for more a row at a time (a loop that vectorises over the columns)."""
    n, m = X.shape
    if m < 4:
        for i in range(m):
            s = 0.0
            for r in range(n):
                s += X[r, i]
            out[i] = s
        return
    out[:] = 0.0
    for r in range(n):
        for i in range(m):
            out[i] += X[r, i]


@njit(cache=True)
def sum_squares(a):
    """The sum of the squared entries of an array, in C order (``a.flat``: ``a.ravel()`` would cost a
    reshape, more than the sum at a few entries)."""
    s = 0.0
    for v in a.flat:
        s += v * v
    return s


@njit(cache=True)
def c_order(a):
    """Whether ``a``'s strides are those of C order for its shape (axes of length 1, and empty arrays,
    may have any). A kernel compiled for C-order arrays indexes by the shape alone; one called through its
    entry point (:mod:`bpttlab.cells.direct`), which Numba does not type-check, tests its arrays with
    this, since an array's strides can be changed in place."""
    if a.size == 0:
        return True
    step = a.itemsize
    for d in range(a.ndim - 1, -1, -1):
        if a.shape[d] > 1 and a.strides[d] != step:
            return False
        step *= a.shape[d]
    return True


@njit(cache=True)
def nonfinite_probe(a):
    """0.0 when every entry of an array is finite, NaN otherwise (x * 0 is NaN for inf, NaN)."""
    s = 0.0
    for v in a.flat:
        s += v * 0.0
    return s


#: What :func:`loss_rows` takes for the targets a loss does not use: float targets (T, B, O) for mse
#: with ``NO_CLASSES``, int64 classes (T, B) for cross_entropy with ``NO_TARGETS``. Both losses then call
#: a fused kernel with the same argument types, so it is compiled once (a second specialisation cost
#: seconds).
NO_TARGETS = np.empty((0, 0, 0))
NO_CLASSES = np.empty((0, 0), dtype=np.int64)


@njit(cache=True, error_model="numpy")
def loss_rows(Y, classes, Out, scale, dO, E, losses):
    r"""Fill ``dO`` (T, B, O) with :math:`\partial E_t/\partial o_t`, ``E`` (T, B) with :math:`E_t` and
    ``losses`` (T,) with :math:`E_t` summed over the batch, all times ``scale``; return the first 0-based
    step whose outputs are not finite, or -1. The loss follows from the targets (see ``NO_TARGETS``):
    float ``Y`` (T, B, O) is mse, integer ``classes`` (T, B) cross_entropy (both exactly as in
    :mod:`bpttlab.losses`); the unused one is empty."""
    if classes.shape[0] > 0:
        return _cross_entropy_rows(classes, Out, scale, dO, E, losses)
    return _mse_rows(Y, Out, scale, dO, E, losses)


@njit(cache=True, error_model="numpy")
def _mse_rows(Y, Out, scale, dO, E, losses):
    T, B, O = Out.shape
    first_bad = -1
    for t in range(T):
        total = 0.0
        bad = 0.0
        for bb in range(B):
            s = 0.0
            for i in range(O):
                o = Out[t, bb, i]
                d = o - Y[t, bb, i]
                s += d * d
                dO[t, bb, i] = d * scale
                bad += o * 0.0
            e = 0.5 * s * scale
            E[t, bb] = e
            total += e
        losses[t] = total
        if bad != 0.0 and first_bad < 0:
            first_bad = t
    return first_bad


@njit(cache=True, error_model="numpy")
def _cross_entropy_rows(Y, Out, scale, dO, E, losses):
    T, B, O = Out.shape
    first_bad = -1
    for t in range(T):
        total = 0.0
        bad = 0.0
        for bb in range(B):
            m = Out[t, bb, 0]
            for i in range(1, O):
                m = max(m, Out[t, bb, i])
            s = 0.0
            for i in range(O):
                s += math.exp(Out[t, bb, i] - m)
                bad += Out[t, bb, i] * 0.0
            log_s = math.log(s)
            for i in range(O):
                dO[t, bb, i] = math.exp((Out[t, bb, i] - m) - log_s)
            cls = Y[t, bb]
            dO[t, bb, cls] -= 1.0
            for i in range(O):
                dO[t, bb, i] *= scale
            e = -((Out[t, bb, cls] - m) - log_s) * scale
            E[t, bb] = e
            total += e
        losses[t] = total
        if bad != 0.0 and first_bad < 0:
            first_bad = t
    return first_bad
