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
import sympy as sp
from numba import njit

from .base import Cell, dense_grads
from .sites import SiteKernels
from .kernels import clip_rows, matmul_nn, matmul_nn_add, matvec_t_add
from ..activations import tanh
from .gates import check_activation, check_symbolic_activation, gate, sigmoid, sigmoid_gate, stacked


@njit(cache=True, error_model="numpy")
def _recur(WT, bhn, G, NH, Hs, wh):
    """The recurrence, in place.

    G[t] holds [U_r x + b_r, U_z x + b_z, U_n x + b_n] on entry and [r_t, z_t, n_t] on exit;
    NH[t] = W_n h_{t-1} + b_hn; Hs[t+1] = h_t. WT = [W_r; W_z; W_n]^T (H, 3H); wh (B, 3H) is scratch.
    """
    T, B, H3 = G.shape
    H = H3 // 3
    for t in range(T):
        matmul_nn(Hs[t], WT, wh)
        for bb in range(B):
            g = G[t, bb]
            w = wh[bb]
            hp = Hs[t, bb]
            hn = Hs[t + 1, bb]
            nh = NH[t, bb]
            for i in range(H):
                r = sigmoid(g[i] + w[i])
                z = sigmoid(g[H + i] + w[H + i])
                a = w[2 * H + i] + bhn[i]
                n = tanh(g[2 * H + i] + r * a)
                g[i] = r
                g[H + i] = z
                g[2 * H + i] = n
                nh[i] = a
                hn[i] = (1.0 - z) * n + z * hp[i]


@njit(cache=True, error_model="numpy")
def _window(W, V, G, NH, Hs, dO, loss_lo, t_hi, k_lo, carry, tau, dR, dZ, dNX, dNH, dh, da, tmp):
    """GRU backward over copies t_hi-1..k_lo, adding site cotangents into dR, dZ, dNX, dNH.

    W = [W_r; W_z; W_n] (3H, H). carry (B, H) enters as dE/dh_{t_hi} and leaves as dE/dh_{k_lo}.
    dh (B, H), da (B, 3H) and tmp (B, H) are scratch.
    """
    B, H = carry.shape
    for t in range(t_hi - 1, k_lo - 1, -1):
        for bb in range(B):
            d = dh[bb]
            d[:] = carry[bb]
            if t >= loss_lo:
                matvec_t_add(V, dO[t, bb], d)
            if tau > 0.0:
                clip_rows(d, tau)
            g = G[t, bb]
            nh = NH[t, bb]
            hp = Hs[t, bb]
            a = da[bb]
            c = carry[bb]
            r_, z_, nx_, nh_ = dR[t, bb], dZ[t, bb], dNX[t, bb], dNH[t, bb]
            for i in range(H):
                r = g[i]
                z = g[H + i]
                n = g[2 * H + i]
                dn = d[i] * (1.0 - z) * (1.0 - n * n)
                dr = dn * nh[i] * r * (1.0 - r)
                dz = d[i] * (hp[i] - n) * z * (1.0 - z)
                a[i] = dr
                a[H + i] = dz
                a[2 * H + i] = dn * r
                r_[i] += dr
                z_[i] += dz
                nx_[i] += dn
                nh_[i] += dn * r
                c[i] = d[i] * z
        matmul_nn_add(da, W, carry, tmp)


_GATES = ("r", "z", "n")


class GRUKernels(SiteKernels):
    """The GRU cell's compiled tier."""

    def site_sizes(self, n_in, n_hidden, n_out):
        return {"a_r": n_hidden, "a_z": n_hidden, "a_nx": n_hidden, "a_nh": n_hidden, "o": n_out}

    def param_sites(self):
        return {"U_r": ("a_r", "x"), "W_r": ("a_r", "h_prev"), "b_r": ("a_r", None),
                "U_z": ("a_z", "x"), "W_z": ("a_z", "h_prev"), "b_z": ("a_z", None),
                "U_n": ("a_nx", "x"), "W_n": ("a_nh", "h_prev"), "b_n": ("a_nx", None), "b_hn": ("a_nh", None),
                "V": ("o", "h_next"), "c": ("o", None)}

    def forward(self, params, xs, s0, act):
        T, B, _ = xs.shape
        H = params["W_r"].shape[0]
        G = np.ascontiguousarray(xs @ stacked(params, "U", _GATES).T + stacked(params, "b", _GATES))
        NH = np.empty((T, B, H))
        Hs = np.empty((T + 1, B, H))
        Hs[0] = s0
        _recur(np.ascontiguousarray(stacked(params, "W", _GATES).T), params["b_hn"], G, NH, Hs,
               np.empty((B, 3 * H)))
        outputs = Hs[1:] @ params["V"].T + params["c"]
        return {"states": Hs, "h": Hs, "gates": G, "n_h": NH, "outputs": outputs}

    def _args(self, params, trace):
        return stacked(params, "W", _GATES), params["V"], trace["gates"], trace["n_h"], trace["h"]

    @staticmethod
    def _scratch(B, H):
        return np.empty((B, H)), np.empty((B, 3 * H)), np.empty((B, H))

    def window(self, params, trace, dO, act, cots, loss_lo, t_hi, k_lo, carry, tau):
        carry = np.array(carry, dtype=np.float64, order="C")
        _window(*self._args(params, trace), dO, loss_lo, t_hi, k_lo, carry, tau,
                cots["a_r"], cots["a_z"], cots["a_nx"], cots["a_nh"], *self._scratch(*carry.shape))
        cots["o"][loss_lo:t_hi] += dO[loss_lo:t_hi]
        return carry

    def site_inputs(self, trace, xs):
        return {"x": xs, "h_prev": trace["h"][:-1], "h_next": trace["h"][1:]}


class GRUCell(Cell):
    name = "gru"
    description = ("GRU (PyTorch nn.GRU): gates r, z; candidate n = tanh(U_n x + b_n + r*(W_n h + b_hn)); "
                   "h' = (1-z)*n + z*h")
    state_symbol = "h"
    recurrent = ("W_r", "W_z", "W_n")
    kernels = GRUKernels()

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
        check_symbolic_activation(self.name, f)
        h = s_prev
        r = (P["U_r"] * x + P["W_r"] * h + P["b_r"]).applyfunc(sigmoid_gate)
        z = (P["U_z"] * x + P["W_z"] * h + P["b_z"]).applyfunc(sigmoid_gate)
        n = (P["U_n"] * x + P["b_n"] + r.multiply_elementwise(P["W_n"] * h + P["b_hn"])).applyfunc(sp.tanh)
        h_next = (sp.ones(*z.shape) - z).multiply_elementwise(n) + z.multiply_elementwise(h)
        return h_next, P["V"] * h_next + P["c"]
