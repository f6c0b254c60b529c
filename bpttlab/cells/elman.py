r"""The Elman (vanilla) cell.

.. math::

    a_t = W h_{t-1} + U x_t + b, \qquad h_t = f(a_t), \qquad o_t = V h_t + c.

Backward (window form, see :meth:`bpttlab.cells.sites.SiteKernels.window`), from the last copy down:

.. math::

    \bar h_t = \underbrace{V^\top \bar o_t}_{\text{loss } E_t} + \underbrace{W^\top \bar a_{t+1}}_{\text{later copies}},
    \qquad \bar a_t = f'(a_t) \odot \bar h_t .

Sites: ``a`` (W with input h_{t-1}, U with x_t, bias b) and ``o`` (V with h_t, bias c). V and c reach
only the output of their own copy, so their implicit part is zero.

Its compiled tier is :mod:`bpttlab.cells.elman_kernels`.
"""
from __future__ import annotations

import numpy as np

from .base import Cell, dense_grads
from .sites import CompiledKernels


def hidden_layer(params, s_prev, x, act):
    """The pre-activation a = s_prev W^T + x U^T + b (B, H) of a batch and h = f(a): Elman's step, and
    the first half of Jordan's (whose s_prev is the previous output)."""
    a = s_prev @ params["W"].T + x @ params["U"].T + params["b"]
    return a, act.f(a)


class ElmanCell(Cell):
    name = "elman"
    description = "Elman (vanilla) RNN: h_t = f(W h_{t-1} + U x_t + b), o_t = V h_t + c"
    state_symbol = "h"
    recurrent = ("W",)
    kernels = CompiledKernels("bpttlab.cells.elman_kernels", "ElmanKernels")

    def param_shapes(self, n_in, n_hidden, n_out):
        return {"W": (n_hidden, n_hidden), "U": (n_hidden, n_in), "b": (n_hidden,),
                "V": (n_out, n_hidden), "c": (n_out,)}

    def state_size(self, n_hidden, n_out):
        return n_hidden

    def step(self, params, s_prev, x, act):
        a, h = hidden_layer(params, s_prev, x, act)
        return h, (s_prev, x, a, h)

    def step_vjp(self, params, cache, ds, act):
        h_prev, x, a, h = cache
        da = ds * act.df(a, h)
        return da @ params["W"], dense_grads(da, W=h_prev, U=x, b=None)

    def trace_arrays(self, cache):
        return {"a": cache[2]}

    def symbolic_step(self, P, s_prev, x, f):
        a = P["W"] * s_prev + P["U"] * x + P["b"]
        h = a.applyfunc(f)
        return h, P["V"] * h + P["c"]
