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
import sympy as sp
from numba import njit

from .base import Cell, dense_grads
from .sites import SiteKernels
from .kernels import clip_rows, matmul_nn, matmul_nn_add, matvec_t_add
from ..activations import tanh
from .gates import check_activation, check_symbolic_activation, gate, sigmoid, sigmoid_gate, stacked


@njit(cache=True, error_model="numpy")
def _recur(WT, G, S, h, wh):
    """The recurrence, in place.

    G[t] holds U x_t + b for the gates [i, f, g, o] on entry and their values on exit; S[t+1] = [h_t; c_t].
    WT = [W_i; W_f; W_g; W_o]^T (H, 4H); h (B, H) and wh (B, 4H) are scratch.
    """
    T, B, H4 = G.shape
    H = H4 // 4
    for t in range(T):
        h[:] = S[t, :, :H]
        matmul_nn(h, WT, wh)
        for bb in range(B):
            g = G[t, bb]
            w = wh[bb]
            sp_ = S[t, bb]
            sn = S[t + 1, bb]
            for k in range(H):
                ig = sigmoid(g[k] + w[k])
                fg = sigmoid(g[H + k] + w[H + k])
                gg = tanh(g[2 * H + k] + w[2 * H + k])
                og = sigmoid(g[3 * H + k] + w[3 * H + k])
                g[k] = ig
                g[H + k] = fg
                g[2 * H + k] = gg
                g[3 * H + k] = og
                c = fg * sp_[H + k] + ig * gg
                sn[H + k] = c
                sn[k] = og * tanh(c)


@njit(cache=True, error_model="numpy")
def _window(W, V, G, S, dO, loss_lo, t_hi, k_lo, carry, tau, dI, dF, dG, dOg, ds, da, tmp):
    """LSTM backward over copies t_hi-1..k_lo, adding site cotangents into dI, dF, dG, dOg.

    W = [W_i; W_f; W_g; W_o] (4H, H). carry (B, 2H) = [dE/dh; dE/dc] enters at t_hi and leaves at k_lo;
    "step" clipping rescales that whole state cotangent. ds (B, 2H), da (B, 4H), tmp (B, H) are scratch.
    """
    B, H2 = carry.shape
    H = H2 // 2
    for t in range(t_hi - 1, k_lo - 1, -1):
        for bb in range(B):
            d = ds[bb]
            d[:] = carry[bb]
            if t >= loss_lo:
                matvec_t_add(V, dO[t, bb], d[:H])
            if tau > 0.0:
                clip_rows(d, tau)
            g = G[t, bb]
            sp_ = S[t, bb]
            sn = S[t + 1, bb]
            a = da[bb]
            c = carry[bb]
            i_, f_, g_, o_ = dI[t, bb], dF[t, bb], dG[t, bb], dOg[t, bb]
            for k in range(H):
                ig = g[k]
                fg = g[H + k]
                gg = g[2 * H + k]
                og = g[3 * H + k]
                tc = tanh(sn[H + k])
                dh = d[k]
                dc = d[H + k] + dh * og * (1.0 - tc * tc)
                ai = dc * gg * ig * (1.0 - ig)
                af = dc * sp_[H + k] * fg * (1.0 - fg)
                ag = dc * ig * (1.0 - gg * gg)
                ao = dh * tc * og * (1.0 - og)
                a[k] = ai
                a[H + k] = af
                a[2 * H + k] = ag
                a[3 * H + k] = ao
                i_[k] += ai
                f_[k] += af
                g_[k] += ag
                o_[k] += ao
                c[k] = 0.0
                c[H + k] = dc * fg
        matmul_nn_add(da, W, carry[:, :H], tmp)


_GATES = ("i", "f", "g", "o")
_SITES = tuple(f"a_{gate}" for gate in _GATES)


class LSTMKernels(SiteKernels):
    """The LSTM cell's compiled tier."""

    def site_sizes(self, n_in, n_hidden, n_out):
        return {site: n_hidden for site in _SITES} | {"o": n_out}

    def param_sites(self):
        sites = {}
        for gate in _GATES:
            sites |= {f"U_{gate}": (f"a_{gate}", "x"), f"W_{gate}": (f"a_{gate}", "h_prev"),
                      f"b_{gate}": (f"a_{gate}", None)}
        return sites | {"V": ("o", "h_next"), "c": ("o", None)}

    def forward(self, params, xs, s0, act):
        T, B, _ = xs.shape
        H = params["W_i"].shape[0]
        G = np.ascontiguousarray(xs @ stacked(params, "U", _GATES).T + stacked(params, "b", _GATES))
        S = np.empty((T + 1, B, 2 * H))
        S[0] = s0
        _recur(np.ascontiguousarray(stacked(params, "W", _GATES).T), G, S, np.empty((B, H)), np.empty((B, 4 * H)))
        outputs = S[1:, :, :H] @ params["V"].T + params["c"]
        return {"states": S, "h": S[:, :, :H], "c": S[:, :, H:], "gates": G, "outputs": outputs}

    def _args(self, params, trace):
        return stacked(params, "W", _GATES), params["V"], trace["gates"], trace["states"]

    @staticmethod
    def _scratch(B, H):
        return np.empty((B, 2 * H)), np.empty((B, 4 * H)), np.empty((B, H))

    def window(self, params, trace, dO, act, cots, loss_lo, t_hi, k_lo, carry, tau):
        carry = np.array(carry, dtype=np.float64, order="C")
        B, S = carry.shape
        _window(*self._args(params, trace), dO, loss_lo, t_hi, k_lo, carry, tau,
                *(cots[s] for s in _SITES), *self._scratch(B, S // 2))
        cots["o"][loss_lo:t_hi] += dO[loss_lo:t_hi]
        return carry

    def site_inputs(self, trace, xs):
        h = trace["h"]
        return {"x": xs, "h_prev": np.ascontiguousarray(h[:-1]), "h_next": np.ascontiguousarray(h[1:])}


class LSTMCell(Cell):
    name = "lstm"
    description = ("LSTM (PyTorch nn.LSTM): gates i, f, o; candidate g; c' = f*c + i*g, h' = o*tanh(c'); "
                   "state [h; c]")
    state_symbol = "s"
    recurrent = ("W_i", "W_f", "W_g", "W_o")
    kernels = LSTMKernels()

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
