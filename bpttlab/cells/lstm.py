r"""The long short-term memory cell (LSTM), with the equations of PyTorch's nn.LSTM.

.. math::

    i_t &= \sigma(U_i x_t + W_i h_{t-1} + b_i), \qquad f_t = \sigma(U_f x_t + W_f h_{t-1} + b_f), \\
    g_t &= \tanh(U_g x_t + W_g h_{t-1} + b_g), \qquad o^{\text{gate}}_t = \sigma(U_o x_t + W_o h_{t-1} + b_o), \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o^{\text{gate}}_t \odot \tanh(c_t), \qquad
    o_t = V h_t + c .

The recurrent state is the stack :math:`s_t = [h_t; c_t]` (size 2H); the *cell state* :math:`c_t` is
part of it and has nothing to do with the output bias :math:`c`. :math:`h_0 = c_0 = 0` unless an
initial state (2H,) is given.

Sites: ``a_i``, ``a_f``, ``a_g``, ``a_o`` (the four gate pre-activations, each with its U, W, b) and the
output ``o`` (V, c).

Backward (window form) from the last copy down; the state cotangent is :math:`[\bar h_t; \bar c_t]`:

.. math::

    \bar h_t &= V^\top \bar o_t + (\text{from copy } t+1), \qquad
    \hat c_t = \bar c_t + \bar h_t \odot o^{\text{gate}}_t \odot (1 - \tanh^2 c_t), \\
    \bar a_{i,t} &= \hat c_t \odot g_t \odot i_t(1 - i_t), \qquad
    \bar a_{f,t} = \hat c_t \odot c_{t-1} \odot f_t(1 - f_t), \\
    \bar a_{g,t} &= \hat c_t \odot i_t \odot (1 - g_t^2), \qquad
    \bar a_{o,t} = \bar h_t \odot \tanh(c_t) \odot o^{\text{gate}}_t(1 - o^{\text{gate}}_t), \\
    \bar c_{t-1} &= \hat c_t \odot f_t, \qquad
    \bar h_{t-1} = W_i^\top \bar a_{i,t} + W_f^\top \bar a_{f,t} + W_g^\top \bar a_{g,t} + W_o^\top \bar a_{o,t} .

:math:`\bar c_{t-1} = \hat c_t \odot f_t` is the "constant error carousel" (Hochreiter and Schmidhuber
1997): through the cell state the cotangent is only multiplied by the forget gate, with no matrix and no
squashing derivative, so where :math:`f \approx 1` it survives many steps.

The kernels stack the recurrent matrices as :math:`[W_i; W_f; W_g; W_o]` (4H, H).
"""
from __future__ import annotations

import numpy as np

from .base import Cell, dense_grads
from ..lazy import LazyModule
from .gates import check_activation, check_symbolic_activation, gate
from .sites import CompiledKernels

sp = LazyModule("sympy")


_GATES = ("i", "f", "g", "o")
_SITES = tuple(f"a_{gate}" for gate in _GATES)


class LSTMCell(Cell):
    name = "lstm"
    description = ("LSTM (PyTorch nn.LSTM): gates i, f, o; candidate g; c' = f*c + i*g, h' = o*tanh(c'); "
                   "state [h; c]")
    state_symbol = "s"
    recurrent = ("W_i", "W_f", "W_g", "W_o")
    kernels = CompiledKernels("bpttlab.cells.lstm_kernels", "LSTMKernels")

    def param_shapes(self, n_in, n_hidden, n_out):
        H, D = n_hidden, n_in
        shapes = {}
        for gate in _GATES:
            shapes |= {f"U_{gate}": (H, D), f"W_{gate}": (H, H), f"b_{gate}": (H,)}
        return shapes | {"V": (n_out, H), "c": (n_out,)}

    def state_size(self, n_hidden, n_out):
        return 2 * n_hidden

    def check_activation(self, act):
        check_activation(self.name, "nn.LSTM", act)

    def step(self, params, s_prev, x, act):
        H = s_prev.shape[1] // 2
        h, c = s_prev[:, :H], s_prev[:, H:]
        i, f, o = gate(params, "i", x, h), gate(params, "f", x, h), gate(params, "o", x, h)
        g = np.tanh(x @ params["U_g"].T + h @ params["W_g"].T + params["b_g"])
        c_next = f * c + i * g
        tc = np.tanh(c_next)
        return np.concatenate([o * tc, c_next], axis=1), (x, h, c, i, f, g, o, tc)

    def step_vjp(self, params, cache, ds, act):
        x, h, c, i, f, g, o, tc = cache
        H = h.shape[1]
        dh, dc = ds[:, :H], ds[:, H:]
        carousel = dc + dh * o * (1.0 - tc * tc)
        da = {"i": carousel * g * i * (1.0 - i), "f": carousel * c * f * (1.0 - f),
              "g": carousel * i * (1.0 - g * g), "o": dh * tc * o * (1.0 - o)}
        grads = {}
        dh_prev = np.zeros_like(h)
        for name, d in da.items():
            dh_prev += d @ params[f"W_{name}"]
            grads |= dense_grads(d, **{f"U_{name}": x, f"W_{name}": h, f"b_{name}": None})
        return np.concatenate([dh_prev, carousel * f], axis=1), grads

    def state_parts(self, states):
        return {"c": states[:, :, states.shape[2] // 2:]}

    def trace_arrays(self, cache):
        x, h, c, i, f, g, o, tc = cache
        return {"gates": np.concatenate([i, f, g, o], axis=1)}

    def symbolic_step(self, P, s_prev, x, f):
        from .gate_symbol import sigmoid_gate

        check_symbolic_activation(self.name, f)
        H = s_prev.shape[0] // 2
        h, c = s_prev[:H, :], s_prev[H:, :]

        def pre(gate):
            return P[f"U_{gate}"] * x + P[f"W_{gate}"] * h + P[f"b_{gate}"]

        i = pre("i").applyfunc(sigmoid_gate)
        fg = pre("f").applyfunc(sigmoid_gate)
        g = pre("g").applyfunc(sp.tanh)
        og = pre("o").applyfunc(sigmoid_gate)
        c_next = fg.multiply_elementwise(c) + i.multiply_elementwise(g)
        h_next = og.multiply_elementwise(c_next.applyfunc(sp.tanh))
        return sp.Matrix.vstack(h_next, c_next), P["V"] * h_next + P["c"]
