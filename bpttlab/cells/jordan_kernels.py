"""The Jordan cell's compiled tier, in Numba (the maths is in :mod:`bpttlab.cells.jordan`). Imported, and
Numba with it, only when the engine compiles the cell (:class:`bpttlab.cells.sites.CompiledKernels`):
``import bpttlab`` and the NumPy tier never load it."""
from __future__ import annotations

import numpy as np
from numba import njit

from .kernels import act as _act, clip_rows, dact as _dact, matvec_add, matvec_t_add
from .sites import SiteKernels


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
            for i in range(c.shape[0]):  # not on[:] = c (see elman._forward)
                on[i] = c[i]
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
