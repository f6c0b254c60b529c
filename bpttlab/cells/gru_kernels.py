"""The GRU cell's compiled tier, in Numba (the maths is in :mod:`bpttlab.cells.gru`). Imported, and Numba
with it, only when the engine compiles the cell (:class:`bpttlab.cells.sites.CompiledKernels`): ``import
bpttlab`` and the NumPy tier never load it."""
from __future__ import annotations

import numpy as np
from numba import njit

from .gates import stacked
from .gru import _GATES
from .kernels import clip_rows, matmul_nn, matmul_nn_add, matvec_t_add, sigmoid, tanh
from .sites import SiteKernels


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
            c = carry[bb]
            for i in range(H):  # not d[:] = c (see elman._forward)
                d[i] = c[i]
            if t >= loss_lo:
                matvec_t_add(V, dO[t, bb], d)
            if tau > 0.0:
                clip_rows(d, tau)
            g = G[t, bb]
            nh = NH[t, bb]
            hp = Hs[t, bb]
            a = da[bb]
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
