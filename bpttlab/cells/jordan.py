r"""The Jordan cell: the *output* is fed back instead of the hidden state.

.. math::

    a_t = W o_{t-1} + U x_t + b, \qquad h_t = f(a_t), \qquad o_t = V h_t + c, \qquad o_0 = 0 .

The recurrent state is :math:`s_t = o_t` (W has shape (H, O)). Backward from the last copy down:

.. math::

    \bar o_t = \underbrace{\partial E_t/\partial o_t}_{\text{loss } E_t} + W^\top \bar a_{t+1}, \qquad
    \bar h_t = V^\top \bar o_t, \qquad \bar a_t = f'(a_t) \odot \bar h_t .

Because o_{t-1} feeds h_t, V and c now reach later losses too: unlike Elman, they have implicit parts.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..activations import act as _act, dact as _dact
from .base import Cell, dense_grads
from .elman import hidden_layer
from .sites import SiteKernels
from .kernels import clip_rows, matvec_add, matvec_t_add


@njit(cache=True)
def _recur(W, V, c, A, Hs, Os, code):
    """A[t] holds U x_t + b on entry and a_t on exit; Hs[t+1] = f(a_t); Os[t+1] = V h + c."""
    T, B, H = A.shape
    for t in range(T):
        for bb in range(B):
            a = A[t, bb]
            matvec_add(W, Os[t, bb], a)
            hn = Hs[t + 1, bb]
            for i in range(H):
                hn[i] = _act(code, a[i])
            on = Os[t + 1, bb]
            on[:] = c
            matvec_add(V, hn, on)


@njit(cache=True)
def _window(W, V, A, Hs, dO, code, loss_lo, t_hi, k_lo, carry, tau, dA, dOs):
    """Jordan backward over copies t_hi-1..k_lo; carry (B, O) is dE/do arriving from later copies."""
    B, O = carry.shape
    H = A.shape[2]
    do = np.empty(O)
    dh = np.empty(H)
    for t in range(t_hi - 1, k_lo - 1, -1):
        for bb in range(B):
            c = carry[bb]
            for i in range(O):
                do[i] = c[i]
            if t >= loss_lo:
                g = dO[t, bb]
                for i in range(O):
                    do[i] += g[i]
            if tau > 0.0:
                clip_rows(do, tau)
            dos = dOs[t, bb]
            for i in range(O):
                dos[i] += do[i]
            dh[:] = 0.0
            matvec_t_add(V, do, dh)
            da = dA[t, bb]
            a = A[t, bb]
            hn = Hs[t + 1, bb]
            for i in range(H):
                d = _dact(code, a[i], hn[i]) * dh[i]
                dh[i] = d
                da[i] += d
            c[:] = 0.0
            matvec_t_add(W, dh, c)


class JordanKernels(SiteKernels):
    """The Jordan cell's compiled tier."""

    def site_sizes(self, n_in, n_hidden, n_out):
        return {"a": n_hidden, "o": n_out}

    def param_sites(self):
        return {"W": ("a", "o_prev"), "U": ("a", "x"), "b": ("a", None), "V": ("o", "h_next"), "c": ("o", None)}

    def forward(self, params, xs, s0, act):
        code = act.code
        T, B, _ = xs.shape
        H, O = params["W"].shape
        A = np.ascontiguousarray(xs @ params["U"].T + params["b"])
        Hs = np.zeros((T + 1, B, H))
        Os = np.empty((T + 1, B, O))
        Os[0] = s0
        _recur(params["W"], params["V"], params["c"], A, Hs, Os, code)
        return {"states": Os, "h": Hs, "a": A, "outputs": Os[1:]}

    def window(self, params, trace, dO, act, cots, loss_lo, t_hi, k_lo, carry, tau):
        carry = np.array(carry, dtype=np.float64, order="C")
        _window(params["W"], params["V"], trace["a"], trace["h"], dO, act.code, loss_lo, t_hi, k_lo,
                carry, tau, cots["a"], cots["o"])
        return carry

    def site_inputs(self, trace, xs):
        return {"o_prev": trace["states"][:-1], "x": xs, "h_next": trace["h"][1:]}


class JordanCell(Cell):
    name = "jordan"
    description = "Jordan RNN: h_t = f(W o_{t-1} + U x_t + b), o_t = V h_t + c (the output is fed back)"
    state_symbol = "o"
    recurrent = ("W",)
    kernels = JordanKernels()

    def param_shapes(self, n_in, n_hidden, n_out):
        return {"W": (n_hidden, n_out), "U": (n_hidden, n_in), "b": (n_hidden,),
                "V": (n_out, n_hidden), "c": (n_out,)}

    def state_size(self, n_hidden, n_out):
        return n_out

    def step(self, params, s_prev, x, act):
        a, h = hidden_layer(params, s_prev, x, act)
        return h @ params["V"].T + params["c"], (s_prev, x, a, h)

    def step_vjp(self, params, cache, ds, act):
        o_prev, x, a, h = cache
        da = (ds @ params["V"]) * act.df(a, h)
        return da @ params["W"], dense_grads(da, W=o_prev, U=x, b=None) | dense_grads(ds, V=h, c=None)

    def readout(self, params, s):
        """The state is the output (s_t = o_t)."""
        return s

    def readout_vjp(self, params, s, do):
        """The state is the output, so dE_t/ds_t = dE_t/do_t, and the readout has no parameters."""
        return np.array(do, dtype=np.float64), {}

    def hidden(self, params, s, cache):
        return np.zeros((s.shape[0], params["W"].shape[0])) if cache is None else cache[3]

    def trace_arrays(self, cache):
        return {"a": cache[2]}

    def symbolic_step(self, P, s_prev, x, f):
        h = (P["W"] * s_prev + P["U"] * x + P["b"]).applyfunc(f)
        o = P["V"] * h + P["c"]
        return o, o
