r"""The Elman (vanilla) cell.

.. math::

    a_t = W h_{t-1} + U x_t + b, \qquad h_t = f(a_t), \qquad o_t = V h_t + c.

Backward (window form, see :meth:`bpttlab.cells.base.Cell.window`), from the last copy down:

.. math::

    \bar h_t = \underbrace{V^\top \bar o_t}_{\text{loss } E_t} + \underbrace{W^\top \bar a_{t+1}}_{\text{later copies}},
    \qquad \bar a_t = f'(a_t) \odot \bar h_t .

Sites: ``a`` (W with input h_{t-1}, U with x_t, bias b) and ``o`` (V with h_t, bias c). V and c reach
only the output of their own copy, so their implicit part is zero.

The input and output layers are one BLAS product each over all copies; only the recurrence runs in the
Numba kernels, with the transposed W kept contiguous so the inner loops vectorise.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..activations import act as _act, dact as _dact
from .base import Cell
from .kernels import clip_rows, matvec_t_add, require_code


@njit(cache=True)
def _recur(WT, A, Hs, code):
    """A[t] holds U x_t + b on entry and a_t on exit; Hs[t+1] = f(a_t). WT = W^T, contiguous."""
    T, B, H = A.shape
    for t in range(T):
        for bb in range(B):
            a = A[t, bb]
            hp = Hs[t, bb]
            for j in range(H):
                hj = hp[j]
                if hj != 0.0:
                    w = WT[j]
                    for i in range(H):
                        a[i] += w[i] * hj
            hn = Hs[t + 1, bb]
            for i in range(H):
                hn[i] = _act(code, a[i])


@njit(cache=True)
def _window(W, A, Hs, G, code, loss_lo, t_hi, k_lo, carry, tau, dA):
    """Elman backward over copies t_hi-1..k_lo; G[t] = V^T dO[t] is the loss injection.

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
                g = G[t, bb]
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


@njit(cache=True)
def _chains(W, A, Hs, G, code, t_lo, t_hi, k2, tau, dA_tab, carry):
    """Each loss E_t alone (t_lo <= t < t_hi), back-propagated k2 copies, into dA_tab[t - t_lo]."""
    for t in range(t_lo, t_hi):
        carry[:] = 0.0
        _window(W, A, Hs, G, code, t, t + 1, max(0, t - k2 + 1), carry, tau, dA_tab[t - t_lo])


@njit(cache=True)
def _truncated(W, A, Hs, G, code, k2, tau, dA, carry):
    """Sum over losses of the k2-truncated chains, into dA."""
    for t in range(A.shape[0]):
        carry[:] = 0.0
        _window(W, A, Hs, G, code, t, t + 1, max(0, t - k2 + 1), carry, tau, dA)


class ElmanCell(Cell):
    name = "elman"
    description = "Elman (vanilla) RNN: h_t = f(W h_{t-1} + U x_t + b), o_t = V h_t + c"
    state_symbol = "h"
    recurrent = ("W",)

    def param_shapes(self, n_in, n_hidden, n_out):
        return {"W": (n_hidden, n_hidden), "U": (n_hidden, n_in), "b": (n_hidden,),
                "V": (n_out, n_hidden), "c": (n_out,)}

    def state_size(self, n_hidden, n_out):
        return n_hidden

    def site_sizes(self, n_in, n_hidden, n_out):
        return {"a": n_hidden, "o": n_out}

    def param_sites(self):
        return {"W": ("a", "h_prev"), "U": ("a", "x"), "b": ("a", None), "V": ("o", "h_next"), "c": ("o", None)}

    def forward(self, params, xs, s0, act):
        code = require_code(act, self.name)
        T, B, _ = xs.shape
        H = params["W"].shape[0]
        A = np.ascontiguousarray(xs @ params["U"].T + params["b"])
        Hs = np.empty((T + 1, B, H))
        Hs[0] = s0
        _recur(np.ascontiguousarray(params["W"].T), A, Hs, code)
        outputs = Hs[1:] @ params["V"].T + params["c"]
        return {"states": Hs, "h": Hs, "a": A, "outputs": outputs}

    def _injection(self, params, dO):
        return np.ascontiguousarray(dO @ params["V"])

    def window(self, params, trace, dO, act, cots, loss_lo, t_hi, k_lo, carry, tau):
        carry = np.array(carry, dtype=np.float64, order="C")
        _window(params["W"], trace["a"], trace["h"], self._injection(params, dO), act.code,
                loss_lo, t_hi, k_lo, carry, tau, cots["a"])
        cots["o"][loss_lo:t_hi] += dO[loss_lo:t_hi]
        return carry

    def truncated(self, params, trace, dO, act, cots, k2, tau):
        B, H = trace["a"].shape[1:]
        _truncated(params["W"], trace["a"], trace["h"], self._injection(params, dO), act.code, k2, tau,
                   cots["a"], np.zeros((B, H)))
        cots["o"] += dO

    def chains(self, params, trace, dO, act, tables, t_lo, t_hi, k2, tau):
        B, H = trace["a"].shape[1:]
        _chains(params["W"], trace["a"], trace["h"], self._injection(params, dO), act.code,
                t_lo, t_hi, k2, tau, tables["a"], np.zeros((B, H)))
        for t in range(t_lo, t_hi):
            tables["o"][t - t_lo, t] += dO[t]

    def site_inputs(self, trace, xs):
        return {"h_prev": trace["h"][:-1], "x": xs, "h_next": trace["h"][1:]}

    def symbolic_step(self, P, s_prev, x, f):
        a = P["W"] * s_prev + P["U"] * x + P["b"]
        h = a.applyfunc(f)
        return h, P["V"] * h + P["c"]
