r"""The Elman cell's compiled tier, in Numba (the maths is in :mod:`bpttlab.cells.elman`). Imported, and
Numba with it, only when the engine compiles the cell (:class:`bpttlab.cells.sites.CompiledKernels`):
``import bpttlab`` and the NumPy tier never load it.

The input and output layers are one product each over all T*B copies, and so are the weight gradients
(:math:`\partial E/\partial W = \sum_t \bar a_t h_{t-1}^\top` is one :math:`(H \times TB)(TB \times H)`
product); only the recurrence runs step by step. :func:`_full_bptt` does the whole of full BPTT with a
built-in loss (forward, loss, backward, gradients) in one kernel call, which is what ``bl.bptt`` uses
by default; :func:`_window` is the general backward pass for truncation, clipping and the per-loss chains.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .buffers import Recycler, Scratch
from .kernels import (KERNEL_OPTIONS, NO_CLASSES, NO_TARGETS, activate, add_rows, clip_rows, column_sums,
                      dact as _dact, loss_rows, matmul_nn, matmul_nt, matmul_tn, matvec_t_add, nonfinite_probe,
                      step_times_add, sum_squares, times_derivative)
from .sites import FullPass, SiteKernels


@njit(**KERNEL_OPTIONS)
def _forward(W, U, b, V, c, X, s0, code, A, Hs, Out):
    """The forward pass into A (T, B, H), Hs (T+1, B, H) and Out (T, B, O): the kernel of ``forward``,
    and the first part of :func:`_full_bptt` (one compiled function for both)."""
    T, B, D = X.shape
    H = W.shape[0]
    A2 = A.reshape(T * B, H)
    matmul_nt(X.reshape(T * B, D), U, A2)
    add_rows(A2, b)
    WT = np.ascontiguousarray(W.T)
    tmp = np.empty((B, H))
    for r in range(B):  # loops: an array assigned to a slice compiles Numba's shape-error formatting
        for i in range(H):
            Hs[0, r, i] = s0[r, i]
    for t in range(T):
        step_times_add(Hs, t, WT, A, t, tmp)
        activate(code, A, t, Hs, t + 1)
    Out2 = Out.reshape(T * B, V.shape[0])
    matmul_nt(Hs[1:].reshape(T * B, H), V, Out2)
    add_rows(Out2, c)


@njit(**KERNEL_OPTIONS)
def _full_bptt(W, U, b, V, c, X, Y, classes, s0, code, scale, A, Hs, Out, dO, dA, E, losses,
               gW, gU, gb, gV, gc):
    r"""Full BPTT with a built-in loss in one pass; returns (probe, first_bad, loss, squared norm).

    probe is NaN (and nothing else is computed) when an input is not finite; first_bad is the first
    0-based step with non-finite outputs, or -1. Backward, with :math:`\bar a_t` held in dA[t]:

    .. math::

        \bar a_t = f'(a_t) \odot \bigl(V^\top \bar o_t + W^\top \bar a_{t+1}\bigr), \qquad
        \frac{\partial E}{\partial W} = \sum_t \bar a_t h_{t-1}^\top, \quad
        \frac{\partial E}{\partial U} = \sum_t \bar a_t x_t^\top, \quad
        \frac{\partial E}{\partial V} = \sum_t \bar o_t h_t^\top .
    """
    probe = (nonfinite_probe(W) + nonfinite_probe(U) + nonfinite_probe(b) + nonfinite_probe(V)
             + nonfinite_probe(c) + nonfinite_probe(X) + nonfinite_probe(Y) + nonfinite_probe(s0))
    if probe != 0.0:
        return probe, -1, 0.0, 0.0
    _forward(W, U, b, V, c, X, s0, code, A, Hs, Out)
    first_bad = loss_rows(Y, classes, Out, scale, dO, E, losses)
    T, B, D = X.shape
    H = W.shape[0]
    O = V.shape[0]
    dA2 = dA.reshape(T * B, H)
    dO2 = dO.reshape(T * B, O)
    matmul_nn(dO2, V, dA2)
    tmp = np.empty((B, H))
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            step_times_add(dA, t + 1, W, dA, t, tmp)
        times_derivative(code, A, t, Hs, t + 1, dA)
    matmul_tn(dA2, Hs[:T].reshape(T * B, H), gW)
    matmul_tn(dA2, X.reshape(T * B, D), gU)
    column_sums(dA2, gb)
    matmul_tn(dO2, Hs[1:].reshape(T * B, H), gV)
    column_sums(dO2, gc)
    total = 0.0
    for t in range(T):
        total += losses[t]
    norm2 = sum_squares(gW) + sum_squares(gU) + sum_squares(gb) + sum_squares(gV) + sum_squares(gc)
    return 0.0, first_bad, total, norm2


@njit(cache=True)
def _window(W, A, Hs, G, code, loss_lo, t_hi, k_lo, carry, tau, dA):
    """Elman backward over copies t_hi-1..k_lo; G[t - loss_lo] = V^T dO[t] is the loss injection.

    carry (B, H) enters as dE/dh_{t_hi} and leaves as dE/dh_{k_lo} (the state entering copy k_lo).
    """
    B, H = carry.shape
    dh = np.empty(H)
    for t in range(t_hi - 1, k_lo - 1, -1):
        for bb in range(B):
            c = carry[bb]
            for i in range(H):
                dh[i] = c[i]
            if t >= loss_lo:
                g = G[t - loss_lo, bb]
                for i in range(H):
                    dh[i] += g[i]
            if tau > 0.0:
                clip_rows(dh, tau)
            da = dA[t, bb]
            a = A[t, bb]
            hn = Hs[t + 1, bb]
            for i in range(H):
                d = _dact(code, a[i], hn[i]) * dh[i]
                dh[i] = d
                da[i] += d
            c[:] = 0.0
            matvec_t_add(W, dh, c)


_SCRATCH = Scratch()
_RESULTS = Recycler()


class ElmanKernels(SiteKernels):
    """The Elman cell's compiled tier."""

    def site_sizes(self, n_in, n_hidden, n_out):
        return {"a": n_hidden, "o": n_out}

    def param_sites(self):
        return {"W": ("a", "h_prev"), "U": ("a", "x"), "b": ("a", None), "V": ("o", "h_next"), "c": ("o", None)}

    def forward(self, params, xs, s0, act):
        code = act.code
        T, B, _ = xs.shape
        H, O = params["W"].shape[0], params["V"].shape[0]
        A, Hs, Out = _RESULTS.take((T, B, H), (T + 1, B, H), (T, B, O))
        _forward(params["W"], params["U"], params["b"], params["V"], params["c"], xs, s0, code, A, Hs, Out)
        return {"states": Hs, "h": Hs, "a": A, "outputs": Out}

    def full_bptt(self, params, xs, y, s0, act, scale):
        T, B, _ = xs.shape
        W, V = params["W"], params["V"]
        H, O = W.shape[0], V.shape[0]
        A, Hs, Out, dO, E, losses = _RESULTS.take((T, B, H), (T + 1, B, H), (T, B, O), (T, B, O), (T, B), (T,))
        grads = {name: np.empty(params[name].shape) for name in ("W", "U", "b", "V", "c")}
        Y, classes = (y, NO_CLASSES) if y.ndim == 3 else (NO_TARGETS, y)  # y: int64 classes for cross_entropy
        probe, first_bad, loss, norm2 = _full_bptt(
            W, params["U"], params["b"], V, params["c"], xs, Y, classes, s0, act.code, scale, A, Hs, Out, dO,
            _SCRATCH.get("dA", (T, B, H)), E, losses, grads["W"], grads["U"], grads["b"], grads["V"], grads["c"])
        if probe != 0.0:
            return None
        return FullPass({"states": Hs, "h": Hs, "a": A, "outputs": Out}, dO, E, losses, loss, grads, norm2,
                        first_bad)

    def window(self, params, trace, dO, act, cots, loss_lo, t_hi, k_lo, carry, tau):
        carry = np.array(carry, dtype=np.float64, order="C")
        injection = np.ascontiguousarray(dO[loss_lo:t_hi] @ params["V"])  # only the window's losses
        _window(params["W"], trace["a"], trace["h"], injection, act.code, loss_lo, t_hi, k_lo, carry, tau, cots["a"])
        cots["o"][loss_lo:t_hi] += dO[loss_lo:t_hi]
        return carry

    def site_inputs(self, trace, xs):
        return {"h_prev": trace["h"][:-1], "x": xs, "h_next": trace["h"][1:]}
