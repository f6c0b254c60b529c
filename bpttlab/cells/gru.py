r"""The gated recurrent unit (GRU), with the equations of PyTorch's nn.GRU.

.. math::

    r_t &= \sigma(U_r x_t + W_r h_{t-1} + b_r), \qquad z_t = \sigma(U_z x_t + W_z h_{t-1} + b_z), \\
    n_t &= \tanh\bigl(U_n x_t + b_n + r_t \odot (W_n h_{t-1} + b_{hn})\bigr), \\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}, \qquad o_t = V h_t + c .

The reset gate r multiplies :math:`W_n h_{t-1} + b_{hn}` *inside* the candidate, so :math:`b_{hn}` is a
separate bias (PyTorch's ``b_hn``); it is not redundant with :math:`b_n`.

Sites (pre-activations that the parameters enter linearly, see :mod:`bpttlab.cells.base`):
``a_r`` (U_r, W_r, b_r), ``a_z`` (U_z, W_z, b_z), ``a_nx`` :math:`= U_n x_t + b_n`,
``a_nh`` :math:`= W_n h_{t-1} + b_{hn}`, and the output ``o`` (V, c).

Backward (window form) from the last copy down, with :math:`\bar h_t` the cotangent of the state:

.. math::

    \bar h_t &= V^\top \bar o_t + \bigl(\text{from copy } t+1\bigr), \\
    \bar a_{nx,t} &= \bar h_t \odot (1 - z_t) \odot (1 - n_t^2), \qquad
    \bar a_{nh,t} = \bar a_{nx,t} \odot r_t, \\
    \bar a_{r,t} &= \bar a_{nx,t} \odot a_{nh,t} \odot r_t (1 - r_t), \qquad
    \bar a_{z,t} = \bar h_t \odot (h_{t-1} - n_t) \odot z_t (1 - z_t), \\
    \bar h_{t-1} &= \bar h_t \odot z_t + W_r^\top \bar a_{r,t} + W_z^\top \bar a_{z,t} + W_n^\top \bar a_{nh,t} .

The term :math:`\bar h_t \odot z_t` is the gated shortcut: where the update gate is near 1 the state is
copied forward and its cotangent is copied back with no matrix and no squashing derivative.

The kernels stack the three recurrent matrices as :math:`[W_r; W_z; W_n]` (3H, H), so the recurrent
product of a time step is one (B, H) x (H, 3H) product forward and one (B, 3H) x (3H, H) backward.
"""
from __future__ import annotations

import numpy as np

from .base import Cell, dense_grads
from ..lazy import LazyModule
from .gates import check_activation, check_symbolic_activation, gate
from .sites import CompiledKernels

sp = LazyModule("sympy")


_GATES = ("r", "z", "n")


class GRUCell(Cell):
    name = "gru"
    description = ("GRU (PyTorch nn.GRU): gates r, z; candidate n = tanh(U_n x + b_n + r*(W_n h + b_hn)); "
                   "h' = (1-z)*n + z*h")
    state_symbol = "h"
    recurrent = ("W_r", "W_z", "W_n")
    kernels = CompiledKernels("bpttlab.cells.gru_kernels", "GRUKernels")

    def param_shapes(self, n_in, n_hidden, n_out):
        H, D = n_hidden, n_in
        shapes = {}
        for gate in _GATES:
            shapes |= {f"U_{gate}": (H, D), f"W_{gate}": (H, H), f"b_{gate}": (H,)}
        return shapes | {"b_hn": (H,), "V": (n_out, H), "c": (n_out,)}

    def state_size(self, n_hidden, n_out):
        return n_hidden

    def check_activation(self, act):
        check_activation(self.name, "nn.GRU", act)

    def step(self, params, s_prev, x, act):
        h = s_prev
        r = gate(params, "r", x, h)
        z = gate(params, "z", x, h)
        nh = h @ params["W_n"].T + params["b_hn"]
        n = np.tanh(x @ params["U_n"].T + params["b_n"] + r * nh)
        return (1.0 - z) * n + z * h, (x, h, r, z, n, nh)

    def step_vjp(self, params, cache, ds, act):
        x, h, r, z, n, nh = cache
        d_nx = ds * (1.0 - z) * (1.0 - n * n)
        d_nh = d_nx * r
        d_r = d_nx * nh * r * (1.0 - r)
        d_z = ds * (h - n) * z * (1.0 - z)
        dh = ds * z + d_r @ params["W_r"] + d_z @ params["W_z"] + d_nh @ params["W_n"]
        return dh, (dense_grads(d_r, U_r=x, W_r=h, b_r=None) | dense_grads(d_z, U_z=x, W_z=h, b_z=None)
                    | dense_grads(d_nx, U_n=x, b_n=None) | dense_grads(d_nh, W_n=h, b_hn=None))

    def trace_arrays(self, cache):
        x, h, r, z, n, nh = cache
        return {"gates": np.concatenate([r, z, n], axis=1), "n_h": nh}

    def symbolic_step(self, P, s_prev, x, f):
        from .gate_symbol import sigmoid_gate

        check_symbolic_activation(self.name, f)
        h = s_prev
        r = (P["U_r"] * x + P["W_r"] * h + P["b_r"]).applyfunc(sigmoid_gate)
        z = (P["U_z"] * x + P["W_z"] * h + P["b_z"]).applyfunc(sigmoid_gate)
        n = (P["U_n"] * x + P["b_n"] + r.multiply_elementwise(P["W_n"] * h + P["b_hn"])).applyfunc(sp.tanh)
        h_next = (sp.ones(*z.shape) - z).multiply_elementwise(n) + z.multiply_elementwise(h)
        return h_next, P["V"] * h_next + P["c"]
