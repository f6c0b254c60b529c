r"""A third-party cell plugin: the leaky-integrator Elman cell, in plain NumPy.

.. math::

    a_t = W h_{t-1} + U x_t + b, \qquad h_t = (1 - \alpha)\, h_{t-1} + \alpha f(a_t), \qquad o_t = V h_t + c.

Backward (window form), from the last copy down:

.. math::

    \bar h_t = V^\top \bar o_t + (1 - \alpha)\, \bar h_{t+1} + W^\top \bar a_{t+1}, \qquad
    \bar a_t = \alpha f'(a_t) \odot \bar h_t .

It uses only the public Cell interface: the engine assembles the parameter gradients from the site
cotangents, and the base class supplies truncation and per-loss chains through :meth:`window`.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from bpttlab.cells.base import Cell


class LeakyCell(Cell):
    name = "leaky"
    description = "leaky Elman cell: h_t = (1 - alpha) h_{t-1} + alpha f(W h_{t-1} + U x_t + b)"
    state_symbol = "h"
    recurrent = ("W",)

    def __init__(self, alpha: float = 0.5):
        self.alpha = alpha

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
        W, U, b, V, c = (params[k] for k in "WUbVc")
        T, B, _ = xs.shape
        H = W.shape[0]
        A, F = np.empty((T, B, H)), np.empty((T, B, H))
        Hs = np.empty((T + 1, B, H))
        Hs[0] = s0
        for t in range(T):
            A[t] = Hs[t] @ W.T + xs[t] @ U.T + b
            F[t] = act.f(A[t])
            Hs[t + 1] = (1 - self.alpha) * Hs[t] + self.alpha * F[t]
        return {"states": Hs, "h": Hs, "a": A, "f": F, "outputs": Hs[1:] @ V.T + c}

    def window(self, params, trace, dO, act, cots, loss_lo, t_hi, k_lo, carry, tau):
        W, V = params["W"], params["V"]
        dh_next = np.array(carry, dtype=float)
        for t in range(t_hi - 1, k_lo - 1, -1):
            dh = dh_next.copy()
            if t >= loss_lo:
                dh += dO[t] @ V
                cots["o"][t] += dO[t]
            if tau > 0:
                n = np.linalg.norm(dh, axis=1, keepdims=True)
                dh = np.where(n > tau, dh * tau / np.maximum(n, tau), dh)
            da = self.alpha * act.df(trace["a"][t], trace["f"][t]) * dh
            cots["a"][t] += da
            dh_next = (1 - self.alpha) * dh + da @ W
        return dh_next

    def site_inputs(self, trace, xs):
        return {"h_prev": trace["h"][:-1], "x": xs, "h_next": trace["h"][1:]}

    def symbolic_step(self, P, s_prev, x, f):
        alpha = sp.nsimplify(self.alpha)
        a = P["W"] * s_prev + P["U"] * x + P["b"]
        h = (1 - alpha) * s_prev + alpha * a.applyfunc(f)
        return h, P["V"] * h + P["c"]
