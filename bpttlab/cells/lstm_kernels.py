"""The LSTM cell's compiled tier, in Numba (the maths is in :mod:`bpttlab.cells.lstm`). Imported, and Numba
with it, only when the engine compiles the cell (:class:`bpttlab.cells.sites.CompiledKernels`): ``import
bpttlab`` and the NumPy tier never load it."""
from __future__ import annotations

import numpy as np
from numba import njit

from .gates import stacked
from .kernels import clip_rows, matmul_nn, matmul_nn_add, matvec_t_add, sigmoid, tanh
from .lstm import _GATES, _SITES
from .sites import SiteKernels


@njit(cache=True, error_model="numpy")
def _recur(WT, G, S, h, wh):
    """The recurrence, in place.

    G[t] holds U x_t + b for the gates [i, f, g, o] on entry and their values on exit; S[t+1] = [h_t; c_t].
    WT = [W_i; W_f; W_g; W_o]^T (H, 4H); h (B, H) and wh (B, 4H) are scratch.
    """
    T, B, H4 = G.shape
    H = H4 // 4
    for t in range(T):
        for bb in range(B):  # not h[:] = S[t, :, :H] (see elman._forward)
            for k in range(H):
                h[bb, k] = S[t, bb, k]
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
            c = carry[bb]
            for k in range(H2):  # not d[:] = c (see elman._forward)
                d[k] = c[k]
            if t >= loss_lo:
                matvec_t_add(V, dO[t, bb], d[:H])
            if tau > 0.0:
                clip_rows(d, tau)
            g = G[t, bb]
            sp_ = S[t, bb]
            sn = S[t + 1, bb]
            a = da[bb]
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
