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

from .base import Cell, dense_grads
from .elman import hidden_layer
from .sites import CompiledKernels


class JordanCell(Cell):
    name = "jordan"
    description = "Jordan RNN: h_t = f(W o_{t-1} + U x_t + b), o_t = V h_t + c (the output is fed back)"
    state_symbol = "o"
    recurrent = ("W",)
    kernels = CompiledKernels("bpttlab.cells.jordan_kernels", "JordanKernels")

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
