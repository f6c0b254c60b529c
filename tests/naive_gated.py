r"""Slow, obviously-right NumPy references for the gated cells (GRU, LSTM), one sequence at a time.

Each cell is written as a step and its vector-Jacobian product, straight from the equations of
PyTorch's nn.GRU / nn.LSTM, with no stacking of gates and no kernels. :func:`naive_bptt` runs them for an
mse loss :math:`E = \sum_t \tfrac12 \lVert V h_t + c - y_t \rVert^2`: full BPTT as the textbook backward
recursion (optionally with "step" clipping of each :math:`\partial E/\partial s_t`), truncated BPTT and the
table :math:`C[t][k]` as one separate chain per loss.
"""
from __future__ import annotations

import numpy as np

GRU_GATES = ("r", "z", "n")
LSTM_GATES = ("i", "f", "g", "o")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def gru_step(P, h, x):
    """One GRU copy: returns (h', what the vjp needs)."""
    r = sigmoid(P["U_r"] @ x + P["W_r"] @ h + P["b_r"])
    z = sigmoid(P["U_z"] @ x + P["W_z"] @ h + P["b_z"])
    a_nh = P["W_n"] @ h + P["b_hn"]
    n = np.tanh(P["U_n"] @ x + P["b_n"] + r * a_nh)
    h_next = (1 - z) * n + z * h
    return h_next, (h, x, r, z, n, a_nh)


def gru_step_vjp(P, cache, dh_next):
    """dE/dh and dE/dtheta of one GRU copy, given dE/dh'."""
    h, x, r, z, n, a_nh = cache
    dn = dh_next * (1 - z)
    dz = dh_next * (h - n)
    dh = dh_next * z
    da_n = dn * (1 - n ** 2)
    dr = da_n * a_nh
    da_nh = da_n * r
    da_r = dr * r * (1 - r)
    da_z = dz * z * (1 - z)
    dh = dh + P["W_r"].T @ da_r + P["W_z"].T @ da_z + P["W_n"].T @ da_nh
    g = {"U_r": np.outer(da_r, x), "W_r": np.outer(da_r, h), "b_r": da_r,
         "U_z": np.outer(da_z, x), "W_z": np.outer(da_z, h), "b_z": da_z,
         "U_n": np.outer(da_n, x), "W_n": np.outer(da_nh, h), "b_n": da_n, "b_hn": da_nh}
    return dh, g


def lstm_step(P, s, x):
    """One LSTM copy on the state s = [h; c]: returns (s', what the vjp needs)."""
    H = s.shape[0] // 2
    h, c = s[:H], s[H:]
    i = sigmoid(P["U_i"] @ x + P["W_i"] @ h + P["b_i"])
    f = sigmoid(P["U_f"] @ x + P["W_f"] @ h + P["b_f"])
    g = np.tanh(P["U_g"] @ x + P["W_g"] @ h + P["b_g"])
    o = sigmoid(P["U_o"] @ x + P["W_o"] @ h + P["b_o"])
    c_next = f * c + i * g
    h_next = o * np.tanh(c_next)
    return np.concatenate([h_next, c_next]), (h, c, x, i, f, g, o, c_next)


def lstm_step_vjp(P, cache, ds_next):
    """dE/ds and dE/dtheta of one LSTM copy, given dE/ds' = [dE/dh'; dE/dc']."""
    h, c, x, i, f, g, o, c_next = cache
    H = h.shape[0]
    dh_next, dc_next = ds_next[:H], ds_next[H:]
    tc = np.tanh(c_next)
    do = dh_next * tc
    dc = dc_next + dh_next * o * (1 - tc ** 2)
    di, df, dg = dc * g, dc * c, dc * i
    da = {"i": di * i * (1 - i), "f": df * f * (1 - f), "g": dg * (1 - g ** 2), "o": do * o * (1 - o)}
    dh = sum(P[f"W_{k}"].T @ da[k] for k in LSTM_GATES)
    grads = {}
    for k in LSTM_GATES:
        grads |= {f"U_{k}": np.outer(da[k], x), f"W_{k}": np.outer(da[k], h), f"b_{k}": da[k]}
    return np.concatenate([dh, dc * f]), grads


CELLS = {"gru": (gru_step, gru_step_vjp, lambda s: s),
         "lstm": (lstm_step, lstm_step_vjp, lambda s: s[: s.shape[0] // 2])}


def naive_forward(cell, P, xs, s0):
    """States s_0..s_T and outputs o_1..o_T of one sequence xs (T, D)."""
    step, _, hidden = CELLS[cell]
    states, caches, outputs = [s0], [], []
    for x in xs:
        s, cache = step(P, states[-1], x)
        states.append(s)
        caches.append(cache)
        outputs.append(P["V"] @ hidden(s) + P["c"])
    return np.array(states), caches, np.array(outputs)


def _clip(v, tau):
    n = np.linalg.norm(v)
    return v * (tau / n) if tau and n > tau else v


def _inject(cell, P, dO_t, S):
    """dE_t/ds_t from dE_t/do_t (the output reads the h part of the state)."""
    ds = np.zeros(S)
    H = P["V"].shape[1]
    ds[:H] = P["V"].T @ dO_t
    return ds


def naive_bptt(cell, P, xs, ys, s0, k2=None, tau=0.0):
    """dE/dtheta for one sequence and E = sum_t 0.5 ||o_t - y_t||^2.

    k2=None: the backward recursion (``tau`` clips each summed dE/ds_t). Otherwise each E_t is
    back-propagated on its own through its last k2 copies (``tau`` clips each chain's dE_t/ds_k).
    """
    _, vjp, hidden = CELLS[cell]
    states, caches, outputs = naive_forward(cell, P, xs, s0)
    T, S = len(xs), s0.shape[0]
    dO = outputs - ys
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    for t in range(T):
        grads["V"] += np.outer(dO[t], hidden(states[t + 1]))
        grads["c"] += dO[t]
    if k2 is None:
        ds = np.zeros(S)
        for t in range(T - 1, -1, -1):
            ds = _clip(ds + _inject(cell, P, dO[t], S), tau)
            ds, g = vjp(P, caches[t], ds)
            for k, v in g.items():
                grads[k] += v
    else:
        for t in range(T):
            ds = _inject(cell, P, dO[t], S)
            for k in range(t, max(0, t - k2 + 1) - 1, -1):
                ds, g = vjp(P, caches[k], _clip(ds, tau))
                for name, v in g.items():
                    grads[name] += v
    return grads


def naive_contributions(cell, P, xs, ys, s0, wrt):
    """C[t-1][k-1] = dE_t/dtheta_k (T, T, *shape) for one sequence, one chain per loss."""
    _, vjp, hidden = CELLS[cell]
    states, caches, outputs = naive_forward(cell, P, xs, s0)
    T, S = len(xs), s0.shape[0]
    dO = outputs - ys
    C = np.zeros((T, T) + P[wrt].shape)
    for t in range(T):
        if wrt == "V":
            C[t, t] = np.outer(dO[t], hidden(states[t + 1]))
        elif wrt == "c":
            C[t, t] = dO[t]
        else:
            ds = _inject(cell, P, dO[t], S)
            for k in range(t, -1, -1):
                ds, g = vjp(P, caches[k], ds)
                C[t, k] = g[wrt]
    return C
