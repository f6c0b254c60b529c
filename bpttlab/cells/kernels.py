r"""Small Numba building blocks shared by the built-in cells' kernels (arrays and scalars only).

Each is compiled once and linked into the kernels that call it (LLVM still inlines the small ones where it
pays; forcing Numba to inline them everywhere multiplied compile time). The loops are written so that LLVM vectorises
them: contiguous inner loops, no reductions across SIMD lanes, and ``error_model="numpy"`` so that a
division does not carry a Python ``ZeroDivisionError`` branch. Products large enough to amortise a
call go to BLAS (``np.dot`` with an output array, through SciPy); small ones stay in plain loops, where a
BLAS call would cost more than the arithmetic.
"""
from __future__ import annotations

import math
import threading
import weakref

import numpy as np
from numba import njit
from numba.extending import overload

from ..activations import IDENTITY_CODE, RELU_CODE, TANH_CODE, act, dact, tanh

#: Multiply-adds, and rows, from which a matrix product goes to BLAS instead of plain loops.
BLAS_MIN_WORK = 4096
BLAS_MIN_ROWS = 8

#: Numba options of the kernels that use these blocks: no Python division checks (so loops vectorise)
#: and fused multiply-adds (one rounding instead of two; no reassociation, so results are reproducible).
KERNEL_OPTIONS = dict(cache=True, error_model="numpy", fastmath={"contract"})


@njit(cache=True, error_model="numpy")
def activate(code, A, t, Hs, t_out):
    """Hs[t_out] = f(A[t]) elementwise over (B, H) slabs of 3-D arrays; tanh, relu and identity in
    vectorised loops. Slabs are indexed in place (no views, so no reference counting per step)."""
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


@njit(cache=True, error_model="numpy")
def times_derivative(code, A, t, Hs, t_out, dA):
    """dA[t] *= f'(A[t]) elementwise over (B, H) slabs, given Hs[t_out] = f(A[t])."""
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


@njit(cache=True)
def step_times_add(X, t_in, M, out, t_out, tmp):
    r"""out[t_out] += X[t_in] M for 3-D X (., n, k), out (., n, m) and M (k, m); tmp (n, m) is scratch.

    One row is a matrix-vector product, done in loops that take the rows of M four at a time
    (:math:`o \mathrel{+}= x_j M_{j,:} + \dots + x_{j+3} M_{j+3,:}`: four multiply-adds per load and store
    of ``o``, a contiguous inner loop that vectorises) and index the slabs in place (no views, so no
    reference counting per step). From four rows and enough work on, BLAS is faster.
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
    that assembles a weight gradient from per-copy cotangents and inputs."""
    n, p = X.shape
    q = Y.shape[1]
    if n * p * q >= BLAS_MIN_WORK:
        np.dot(X.T, Y, out)
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
    """out = the sum of the rows of X."""
    out[:] = 0.0
    for r in range(X.shape[0]):
        for i in range(X.shape[1]):
            out[i] += X[r, i]


@njit(cache=True)
def sum_squares(a):
    """The sum of the squared entries of a contiguous array."""
    s = 0.0
    for v in a.ravel():
        s += v * v
    return s


@njit(cache=True)
def nonfinite_probe(a):
    """0.0 when every entry of a contiguous array is finite, NaN otherwise (x * 0 is NaN for inf, NaN)."""
    s = 0.0
    for v in a.ravel():
        s += v * 0.0
    return s


def loss_rows(Y, Out, scale, dO, E, losses):
    r"""Fill ``dO`` (T, B, O) with :math:`\partial E_t/\partial o_t`, ``E`` (T, B) with :math:`E_t` and
    ``losses`` (T,) with :math:`E_t` summed over the batch, all times ``scale``; return the first 0-based
    step whose outputs are not finite, or -1. The loss follows from the targets: float (T, B, O) is mse,
    integer classes (T, B) cross_entropy (both exactly as in :mod:`bpttlab.losses`). In Numba the branch
    is chosen at compile time."""
    return (_mse_rows if Y.ndim == 3 else _cross_entropy_rows)(Y, Out, scale, dO, E, losses)


@overload(loss_rows)
def _loss_rows(Y, Out, scale, dO, E, losses):
    if Y.ndim == 3:
        return _mse_rows
    return _cross_entropy_rows


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


class Scratch:
    """Work arrays reused from one kernel call to the next, so that large temporaries cost no fresh
    pages (a first touch of new memory costs more than the arithmetic done in it). Only for arrays that
    no result keeps; the kernels hold the GIL, so one call at a time uses them. Arrays under
    ``min_size`` numbers are simply fresh: the allocator serves them faster than the look-up."""

    def __init__(self, min_size: int = 1 << 14) -> None:
        self.min_size = min_size
        self._flat: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float64 array of this shape with undefined contents, backed by the buffer called ``name``."""
        n = math.prod(shape)
        if n < self.min_size:
            return np.empty(shape)
        flat = self._flat.get(name)
        if flat is None or flat.size < n:
            flat = self._flat[name] = np.empty(n)
        return flat[:n].reshape(shape)


_RECYCLERS: weakref.WeakSet = weakref.WeakSet()


def release_idle_memory() -> None:
    """Let every :class:`Recycler` return the memory blocks no result uses (e.g. before measuring the
    memory a computation needs, which recycled blocks would otherwise hide)."""
    for recycler in list(_RECYCLERS):
        recycler.clear()


class Recycler:
    """Result arrays carved out of buffers that are used again once no result refers to them.

    A large fresh array costs a page fault per 4 KiB page on first touch, which on a virtual machine is
    about as slow as the arithmetic done in it (a third of a full-BPTT call at T=200, B=32, H=64). The
    arrays a kernel returns (the forward trace) cannot come from :class:`Scratch`, since the caller
    keeps them; here they are views of one *lent* array, made afresh for each request over memory the
    recycler keeps. NumPy makes every view of a view refer to that lent array (it does not own its
    memory, and its base is not an array), so the lent array lives exactly as long as some view of it
    does; a :func:`weakref.finalize` on it marks the memory free again when it goes. Requests whose first
    array (put the largest first) has fewer than ``min_size`` numbers get fresh arrays: the allocator
    serves small ones from memory it already has, without faults. At most ``keep`` memory blocks are
    kept, none over ``max_size`` numbers (a larger request gets fresh memory): by default at most
    3 x 32 MiB stay allocated. :meth:`clear` lets every idle block go.
    """

    def __init__(self, min_size: int = 1 << 14, max_size: int = 1 << 22, keep: int = 3) -> None:
        self.min_size, self.max_size, self.keep = min_size, max_size, keep
        self._buffers: list[np.ndarray] = []
        self._busy: set[int] = set()  # ids of the blocks lent out now
        self._lock = threading.RLock()  # a finalizer may run while take() holds it
        _RECYCLERS.add(self)

    def take(self, *shapes: tuple[int, ...]) -> list[np.ndarray]:
        """Float64 arrays of these shapes with undefined contents, none sharing memory with another."""
        if math.prod(shapes[0]) < self.min_size:
            return [np.empty(s) for s in shapes]
        sizes = [math.prod(s) for s in shapes]
        total = sum(-(-n // 8) * 8 for n in sizes)  # each array starts 64 bytes after the one before
        with self._lock:
            block = self._block(total)
            kept = any(b is block for b in self._buffers)
            if kept:
                self._busy.add(id(block))
        lent = np.frombuffer(memoryview(block), dtype=np.float64, count=total)
        if kept:
            weakref.finalize(lent, self._release, id(block))
        out, start = [], 0
        for shape, n in zip(shapes, sizes):
            out.append(lent[start:start + n].reshape(shape))
            start += -(-n // 8) * 8
        return out

    def _release(self, key: int) -> None:
        with self._lock:
            self._busy.discard(key)

    def clear(self) -> None:
        """Let go of every block that is not lent out (they return to the allocator)."""
        with self._lock:
            self._buffers = [b for b in self._buffers if id(b) in self._busy]

    def _block(self, total: int) -> np.ndarray:
        """The smallest kept block of at least ``total`` numbers that is not lent out, or a new one, kept
        (in place of the smallest idle block when ``keep`` are kept already) if it may be."""
        idle = [i for i, b in enumerate(self._buffers) if id(b) not in self._busy]
        fits = [i for i in idle if self._buffers[i].size >= total]
        if fits:
            return self._buffers[min(fits, key=lambda i: self._buffers[i].size)]
        block = np.empty(total)
        if total > self.max_size:
            return block
        if len(self._buffers) >= self.keep and idle:
            del self._buffers[min(idle, key=lambda i: self._buffers[i].size)]
        if len(self._buffers) < self.keep:
            self._buffers.append(block)
        return block
