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

from functools import lru_cache

import numpy as np
from numba import njit, types

from .buffers import Recycler, Scratch
from .direct import c_array, entry_point
from .kernels import (KERNEL_OPTIONS, NO_CLASSES, NO_TARGETS, activate, add_rows, c_order, clip_rows,
                      column_sums, dact as _dact, loss_rows, matmul_nn, matmul_nt, matmul_tn, matvec_t_add,
                      nonfinite_probe, step_times_add, sum_squares, times_derivative)
from .sites import Layout, SiteKernels


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
def _copy_into(source, out, at):
    """out[at:at + source.size] = source, flattened (a loop: an array assigned to a slice compiles Numba's
    shape-error formatting); returns 0.0 when every entry is finite, NaN otherwise (as ``nonfinite_probe``,
    in the same pass)."""
    probe = 0.0
    i = at
    for v in source.flat:
        out[i] = v
        probe += v * 0.0
        i += 1
    return probe


@njit(cache=True)
def _fits(W, U, b, V, c, X, Y, classes, s0):
    """Whether the arrays are in C order and of the shapes that go together: W (H, H), U (H, D), b (H,),
    V (O, H), c (O,), X (T, B, D), Y (T, B, O) or empty, classes (T, B) or empty, s0 (B, H). Per call the
    engine checks only that the parameters are the same arrays, of the same dtype and number of dimensions
    (:class:`bpttlab.engine.core.CheckedParams`); shapes and strides can change in place, and a square W
    of the same size pins H, so D and O, to what the buffers were laid out for."""
    T, B, D = X.shape
    H, O = W.shape[0], V.shape[0]
    shapes = (W.shape[1] == H and U.shape[0] == H and U.shape[1] == D and b.shape[0] == H and V.shape[1] == H
              and c.shape[0] == O and s0.shape[0] == B and s0.shape[1] == H
              and (Y.size == 0 or (Y.shape[0] == T and Y.shape[1] == B and Y.shape[2] == O))
              and (classes.size == 0 or (classes.shape[0] == T and classes.shape[1] == B)))
    return shapes and c_order(W) and c_order(U) and c_order(b) and c_order(V) and c_order(c) and c_order(X) \
        and c_order(Y) and c_order(classes) and c_order(s0)


@njit(**KERNEL_OPTIONS)
def _full_bptt(W, U, b, V, c, X, Y, classes, s0, code, scale, at, trace, small, dA):
    r"""Full BPTT with a built-in loss in one pass; returns (probe, first_bad, loss, squared norm).

    probe is NaN when the kernel declines, and then nothing else it returns means anything: when the arrays
    do not fit (:func:`_fits`: it is called through its entry point, which checks nothing) or an input is not
    finite (the inputs, targets and initial state are probed first and nothing is computed if they fail;
    the parameters are probed while they are copied, at the end); first_bad is the first 0-based step with
    non-finite outputs, or -1. Backward, with :math:`\bar a_t` held in dA[t]:

    .. math::

        \bar a_t = f'(a_t) \odot \bigl(V^\top \bar o_t + W^\top \bar a_{t+1}\bigr), \qquad
        \frac{\partial E}{\partial W} = \sum_t \bar a_t h_{t-1}^\top, \quad
        \frac{\partial E}{\partial U} = \sum_t \bar a_t x_t^\top, \quad
        \frac{\partial E}{\partial V} = \sum_t \bar o_t h_t^\top .

    The arrays are carved out of two flat buffers (the :class:`~bpttlab.cells.sites.Layout` of
    :func:`_packing`, whose starts ``at`` lists): ``trace`` holds a, h, outputs, dO and E, ``small`` the
    losses and, for W, U, b, V, c in turn, the gradients, a copy of them and a copy of the parameters (at
    small sizes both are one buffer, passed twice, with the starts counted from its beginning). A
    Numba call costs per argument it unboxes (about 50 ns), so 15 arguments instead of 23 matter at small
    sizes. dA is scratch of at least T*B*H numbers, or smaller, and then made here.
    """
    if not _fits(W, U, b, V, c, X, Y, classes, s0):
        return np.nan, -1, 0.0, 0.0
    probe = nonfinite_probe(X) + nonfinite_probe(Y) + nonfinite_probe(s0)  # the parameters': when copied
    if probe != 0.0:
        return probe, -1, 0.0, 0.0
    T, B, D = X.shape
    H = W.shape[0]
    O = V.shape[0]
    n = T * B
    A = trace[at[0]:at[0] + n * H].reshape((T, B, H))
    Hs = trace[at[1]:at[1] + (n + B) * H].reshape((T + 1, B, H))
    Out = trace[at[2]:at[2] + n * O].reshape((T, B, O))
    dO = trace[at[3]:at[3] + n * O].reshape((T, B, O))
    E = trace[at[4]:at[4] + n].reshape((T, B))
    losses = small[at[5]:at[5] + T]
    gW = small[at[6]:at[6] + H * H].reshape((H, H))
    gU = small[at[7]:at[7] + H * D].reshape((H, D))
    gb = small[at[8]:at[8] + H]
    gV = small[at[9]:at[9] + O * H].reshape((O, H))
    gc = small[at[10]:at[10] + O]
    if dA.size < n * H:
        dA = np.empty(n * H)
    dA2 = dA[:n * H].reshape((n, H))
    dA3 = dA2.reshape((T, B, H))
    _forward(W, U, b, V, c, X, s0, code, A, Hs, Out)
    first_bad = loss_rows(Y, classes, Out, scale, dO, E, losses)
    dO2 = dO.reshape(n, O)
    matmul_nn(dO2, V, dA2)
    tmp = np.empty((B, H))
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            step_times_add(dA3, t + 1, W, dA3, t, tmp)
        times_derivative(code, A, t, Hs, t + 1, dA3)
    matmul_tn(dA2, Hs[:T].reshape(n, H), gW)
    matmul_tn(dA2, X.reshape(n, D), gU)
    column_sums(dA2, gb)
    matmul_tn(dO2, Hs[1:].reshape(n, H), gV)
    column_sums(dO2, gc)
    total = 0.0
    for t in range(T):
        total += losses[t]
    norm2 = sum_squares(gW) + sum_squares(gU) + sum_squares(gb) + sum_squares(gV) + sum_squares(gc)
    for i in range(at[11] - at[6]):  # the raw gradients: a copy of the five gradients, laid out alike
        small[at[11] + i] = small[at[6] + i]
    probe = (_copy_into(W, small, at[16]) + _copy_into(U, small, at[17]) + _copy_into(b, small, at[18])
             + _copy_into(V, small, at[19]) + _copy_into(c, small, at[20]))
    return probe, first_bad, total, norm2


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


_F64, _I64 = np.dtype(np.float64), np.dtype(np.int64)
_SCRATCH = Scratch()
_RESULTS = Recycler()
_NO_SCRATCH = np.empty(0)
_PARAMS = ("W", "U", "b", "V", "c")
_F1, _F2, _F3 = (c_array(types.float64, n) for n in (1, 2, 3))
#: The one signature :func:`_full_bptt` is called with (:func:`bpttlab.engine.tiers.exercise` compiles it).
_FULL_BPTT_TYPES = (_F2, _F2, _F1, _F2, _F1, _F3, _F3, c_array(types.int64, 2), _F2, types.int64, types.float64,
                    c_array(types.int64, 1), _F1, _F1, _F1)


@lru_cache(maxsize=64)
def _packing(T: int, B: int, D: int, H: int, O: int) -> Layout:
    """Where :func:`_full_bptt` puts each array of a pass of this size."""
    shapes = {"W": (H, H), "U": (H, D), "b": (H,), "V": (O, H), "c": (O,)}
    trace = (("a", (T, B, H)), ("h", (T + 1, B, H)), ("outputs", (T, B, O)), ("dO", (T, B, O)), ("E", (T, B)))
    small = (("losses", (T,)),) + tuple((f"{kind} {name}", shapes[name]) for kind in ("grad", "raw", "param")
                                        for name in _PARAMS)
    trace_names = {"states": "h", "h": "h", "a": "a", "outputs": "outputs"}
    layout = Layout((trace, small), trace_names, _PARAMS)
    if layout.sizes[0] < _RESULTS.min_size:  # a fresh trace buffer: one for both (one allocation fewer)
        layout = Layout((trace + small,), trace_names, _PARAMS)
    return layout


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
        return self.prepared_full_bptt(params, T, B, act)(xs, y, s0, scale)

    def prepared_full_bptt(self, params, T, B, act):
        W, U, b, V, c = params["W"], params["U"], params["b"], params["V"], params["c"]
        H, D, O = W.shape[0], U.shape[1], V.shape[0]
        layout = _packing(T, B, D, H, O)
        starts, code = layout.starts, act.code
        sizes = layout.sizes  # (trace, small) or, at small sizes, (both,): see _packing
        n = T * B * H
        scratch = n >= _SCRATCH.min_size
        single = len(sizes) == 1
        kernel = entry_point(_full_bptt, _FULL_BPTT_TYPES)  # the engine's arrays are of these types

        def run(xs, y, s0, scale):
            if single:
                trace = small = np.empty(sizes[0])
                buffers = (trace,)
            else:
                trace, small = _RESULTS.take((sizes[0],))[0], np.empty(sizes[1])
                buffers = (trace, small)
            dA = _SCRATCH.get("dA", (n,)) if scratch else _NO_SCRATCH
            if y.dtype is _F64:
                Y, classes = y, NO_CLASSES
            elif y.dtype is _I64:  # classes, for cross_entropy
                Y, classes = NO_TARGETS, y
            else:  # the entry point would read them as the wrong type
                return None
            probe, first_bad, loss, norm2 = kernel(W, U, b, V, c, xs, Y, classes, s0, code, scale, starts,
                                                   trace, small, dA)
            if probe != 0.0:
                return None
            return loss, norm2, first_bad, buffers, layout

        return run

    def window(self, params, trace, dO, act, cots, loss_lo, t_hi, k_lo, carry, tau):
        carry = np.array(carry, dtype=np.float64, order="C")
        injection = np.ascontiguousarray(dO[loss_lo:t_hi] @ params["V"])  # only the window's losses
        _window(params["W"], trace["a"], trace["h"], injection, act.code, loss_lo, t_hi, k_lo, carry, tau, cots["a"])
        cots["o"][loss_lo:t_hi] += dO[loss_lo:t_hi]
        return carry

    def site_inputs(self, trace, xs):
        return {"h_prev": trace["h"][:-1], "x": xs, "h_next": trace["h"][1:]}
