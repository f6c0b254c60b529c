"""Answers to the core exercises written the way students write them: NumPy loops, one step at a time.

``CORRECT[exercise id]`` is a right answer. ``MISTAKES`` lists (exercise id, function, the catalogue key
the grader must diagnose): each function makes one mistake of the catalogue by the kind of slip a
student makes (a missing ``+=``, ``y - o``, ``W @`` for ``W.T @``, a loop bound off by one), not by
transforming the right answer. Nothing here imports bpttlab.
"""
from __future__ import annotations

import numpy as np


def _states(W, U, b, xs):
    """[h_0, h_1, ..., h_T]."""
    hs = [np.zeros(len(b))]
    for x in xs:
        hs.append(np.tanh(W @ hs[-1] + U @ x + b))
    return hs


# -- forward pass -------------------------------------------------------------------------------------


def rnn_forward(W, U, b, xs):
    h = np.zeros(len(b))
    out = []
    for x in xs:
        h = np.tanh(W @ h + U @ x + b)
        out.append(h)
    return np.array(out)


def rnn_forward_collects_before_update(W, U, b, xs):
    h = np.zeros(len(b))
    out = []
    for x in xs:
        out.append(h)
        h = np.tanh(W @ h + U @ x + b)
    return np.array(out)


def rnn_forward_transposed(W, U, b, xs):
    h = np.zeros(len(b))
    out = []
    for x in xs:
        h = np.tanh(W.T @ h + U @ x + b)
        out.append(h)
    return np.array(out)


def rnn_forward_elementwise(W, U, b, xs):
    h = np.zeros(len(b))
    out = []
    for x in xs:
        h = np.tanh(W * h + U @ x + b)
        out.append(h)
    return np.array(out)


# -- total loss ---------------------------------------------------------------------------------------


def total_loss(W, U, b, V, c, xs, targets):
    h = np.zeros(len(b))
    E = 0.0
    for x, y in zip(xs, targets):
        h = np.tanh(W @ h + U @ x + b)
        E += 0.5 * np.sum((V @ h + c - y) ** 2)
    return E


def total_loss_mean(W, U, b, V, c, xs, targets):
    h = np.zeros(len(b))
    losses = []
    for x, y in zip(xs, targets):
        h = np.tanh(W @ h + U @ x + b)
        losses.append(0.5 * np.sum((V @ h + c - y) ** 2))
    return np.mean(losses)


def total_loss_overwritten(W, U, b, V, c, xs, targets):
    h = np.zeros(len(b))
    for x, y in zip(xs, targets):
        h = np.tanh(W @ h + U @ x + b)
        E = 0.5 * np.sum((V @ h + c - y) ** 2)
    return E


def total_loss_output_before_update(W, U, b, V, c, xs, targets):
    h = np.zeros(len(b))
    E = 0.0
    for x, y in zip(xs, targets):
        o = V @ h + c
        h = np.tanh(W @ h + U @ x + b)
        E += 0.5 * np.sum((o - y) ** 2)
    return E


# -- dE/dV --------------------------------------------------------------------------------------------


def grad_V(W, U, b, V, c, xs, targets):
    hs = _states(W, U, b, xs)
    g = np.zeros_like(V)
    for t in range(len(xs)):
        g += np.outer(V @ hs[t + 1] + c - targets[t], hs[t + 1])
    return g


def grad_V_y_minus_o(W, U, b, V, c, xs, targets):
    hs = _states(W, U, b, xs)
    g = np.zeros_like(V)
    for t in range(len(xs)):
        g += np.outer(targets[t] - (V @ hs[t + 1] + c), hs[t + 1])
    return g


def grad_V_outer_swapped(W, U, b, V, c, xs, targets):
    hs = _states(W, U, b, xs)
    g = np.zeros((len(b), len(c)))
    for t in range(len(xs)):
        g += np.outer(hs[t + 1], V @ hs[t + 1] + c - targets[t])
    return g


def grad_V_previous_state(W, U, b, V, c, xs, targets):
    hs = _states(W, U, b, xs)
    g = np.zeros_like(V)
    for t in range(len(xs)):
        g += np.outer(V @ hs[t + 1] + c - targets[t], hs[t])
    return g


def grad_V_overwritten(W, U, b, V, c, xs, targets):
    hs = _states(W, U, b, xs)
    for t in range(len(xs)):
        g = np.outer(V @ hs[t + 1] + c - targets[t], hs[t + 1])
    return g


def grad_V_mean(W, U, b, V, c, xs, targets):
    return grad_V(W, U, b, V, c, xs, targets) / len(xs)


# -- the backward pass, with switches for the slips students make ------------------------------------------


def _backward(W, U, b, V, c, xs, targets, *, implicit=True, derivative="tanh", recurrent="W.T", sign=1.0,
              state_offset=0, outer=True, accumulate=True, scale=1.0, only_loss=None):
    """Student BPTT: returns (dE/dW, dE/dU, [dE/dh_t]).

    The keyword arguments are how each mistaken student below writes their loop.
    """
    hs = _states(W, U, b, xs)
    T, H = len(xs), len(b)
    dW = np.zeros((H, H)) if outer else np.zeros(H)
    dU = np.zeros_like(U)
    dhs = [None] * T
    dh_next = np.zeros(H)
    for t in range(T - 1, -1, -1):
        err = V @ hs[t + 1] + c - targets[t]
        if only_loss is not None and t != only_loss - 1:
            err = np.zeros_like(err)
        dh = sign * (V.T @ err) + (dh_next if implicit else 0.0)
        dhs[t] = dh
        a = W @ hs[t] + U @ xs[t] + b
        if derivative == "tanh":
            da = (1 - hs[t + 1] ** 2) * dh
        elif derivative == "none":
            da = dh
        elif derivative == "pre-activation":
            da = (1 - a ** 2) * dh
        else:
            da = hs[t + 1] * (1 - hs[t + 1]) * dh
        h_in = hs[t + 1] if state_offset else hs[t]
        term_W = np.outer(da, h_in) if outer else da * h_in
        if accumulate:
            dW += term_W
            dU += np.outer(da, xs[t])
        else:
            dW = term_W
            dU = np.outer(da, xs[t])
        dh_next = (W.T @ da) if recurrent == "W.T" else (W @ da)
    return dW * scale, dU * scale, np.array(dhs)


# -- dE/dh_t ------------------------------------------------------------------------------------------


def grad_hidden(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets)[2]


def grad_hidden_no_future(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, implicit=False)[2]


def grad_hidden_no_derivative(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, derivative="none")[2]


def grad_hidden_derivative_of_a(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, derivative="pre-activation")[2]


def grad_hidden_W_not_transposed(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, recurrent="W")[2]


def grad_hidden_y_minus_o(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, sign=-1.0)[2]


def grad_hidden_shifted(W, U, b, V, c, xs, targets):
    """Indexes the gradients like the list of states (h_0 first) and returns the first T of them."""
    hs = _states(W, U, b, xs)
    T = len(xs)
    dhs = np.zeros((T + 1, len(b)))
    dh_next = np.zeros(len(b))
    for t in range(T, 0, -1):
        dhs[t] = V.T @ (V @ hs[t] + c - targets[t - 1]) + dh_next
        dh_next = W.T @ ((1 - hs[t] ** 2) * dhs[t])
    dhs[0] = dh_next
    return dhs[:T]


# -- explicit dh_t/dW ----------------------------------------------------------------------------------


def explicit_dh_dW(W, U, b, xs, t):
    hs = _states(W, U, b, xs)
    H = len(b)
    J = np.zeros((H, H, H))
    for i in range(H):
        J[i, i, :] = (1 - hs[t][i] ** 2) * hs[t - 1]
    return J


def explicit_dh_dW_no_derivative(W, U, b, xs, t):
    hs = _states(W, U, b, xs)
    H = len(b)
    J = np.zeros((H, H, H))
    for i in range(H):
        J[i, i, :] = hs[t - 1]
    return J


def explicit_dh_dW_sigmoid_derivative(W, U, b, xs, t):
    hs = _states(W, U, b, xs)
    H = len(b)
    J = np.zeros((H, H, H))
    for i in range(H):
        J[i, i, :] = hs[t][i] * (1 - hs[t][i]) * hs[t - 1]
    return J


def explicit_dh_dW_current_state(W, U, b, xs, t):
    hs = _states(W, U, b, xs)
    H = len(b)
    J = np.zeros((H, H, H))
    for i in range(H):
        J[i, i, :] = (1 - hs[t][i] ** 2) * hs[t]
    return J


def explicit_dh_dW_transposed(W, U, b, xs, t):
    hs = _states(W, U, b, xs)
    H = len(b)
    J = np.zeros((H, H, H))
    for i in range(H):
        J[i, :, i] = (1 - hs[t][i] ** 2) * hs[t - 1]
    return J


# -- dE_t/dW -------------------------------------------------------------------------------------------


def grad_Et_W(W, U, b, V, c, xs, targets, t):
    return _backward(W, U, b, V, c, xs[:t], targets[:t], only_loss=t)[0]


def grad_Et_W_explicit_only(W, U, b, V, c, xs, targets, t):
    hs = _states(W, U, b, xs)
    da = (1 - hs[t] ** 2) * (V.T @ (V @ hs[t] + c - targets[t - 1]))
    return np.outer(da, hs[t - 1])


def grad_Et_W_elementwise(W, U, b, V, c, xs, targets, t):
    return _backward(W, U, b, V, c, xs[:t], targets[:t], only_loss=t, outer=False)[0]


def grad_Et_W_no_derivative(W, U, b, V, c, xs, targets, t):
    return _backward(W, U, b, V, c, xs[:t], targets[:t], only_loss=t, derivative="none")[0]


# -- dE/dW ---------------------------------------------------------------------------------------------


def grad_W(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets)[0]


def grad_W_explicit_only(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, implicit=False)[0]


def grad_W_no_derivative(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, derivative="none")[0]


def grad_W_derivative_of_a(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, derivative="pre-activation")[0]


def grad_W_sigmoid_derivative(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, derivative="sigmoid")[0]


def grad_W_returned_transposed(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets)[0].T


def grad_W_W_not_transposed(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, recurrent="W")[0]


def grad_W_current_state(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, state_offset=1)[0]


def grad_W_overwritten(W, U, b, V, c, xs, targets):
    """``dW = ...`` instead of ``dW += ...`` in a loop that goes forward over the copies."""
    hs = _states(W, U, b, xs)
    T = len(xs)
    das = []
    dh_next = np.zeros(len(b))
    for t in range(T - 1, -1, -1):
        dh = V.T @ (V @ hs[t + 1] + c - targets[t]) + dh_next
        da = (1 - hs[t + 1] ** 2) * dh
        das.insert(0, da)
        dh_next = W.T @ da
    for t in range(T):
        dW = np.outer(das[t], hs[t])
    return dW


def grad_W_mean(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, scale=1.0 / len(xs))[0]


def grad_W_y_minus_o(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, sign=-1.0)[0]


def grad_W_elementwise(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, outer=False)[0]


# -- dE/dU ---------------------------------------------------------------------------------------------


def grad_U(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets)[1]


def grad_U_explicit_only(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets, implicit=False)[1]


def grad_U_overwritten(W, U, b, V, c, xs, targets):
    """``dU = ...`` in the backward loop: the first copy's term is what is left."""
    return _backward(W, U, b, V, c, xs, targets, accumulate=False)[1]


def grad_U_previous_input(W, U, b, V, c, xs, targets):
    hs = _states(W, U, b, xs)
    g = np.zeros_like(U)
    dh_next = np.zeros(len(b))
    for t in range(len(xs) - 1, -1, -1):
        da = (1 - hs[t + 1] ** 2) * (V.T @ (V @ hs[t + 1] + c - targets[t]) + dh_next)
        if t > 0:
            g += np.outer(da, xs[t - 1])
        dh_next = W.T @ da
    return g


# -- truncated dE/dW --------------------------------------------------------------------------------------


def _truncated(W, U, b, V, c, xs, targets, copies):
    hs = _states(W, U, b, xs)
    dW = np.zeros_like(W)
    for t in range(len(xs)):
        dh = V.T @ (V @ hs[t + 1] + c - targets[t])
        for k in range(t, max(-1, t - copies), -1):
            da = (1 - hs[k + 1] ** 2) * dh
            dW += np.outer(da, hs[k])
            dh = W.T @ da
    return dW


def truncated_grad_W(W, U, b, V, c, xs, targets, k2):
    return _truncated(W, U, b, V, c, xs, targets, k2)


def truncated_grad_W_one_short(W, U, b, V, c, xs, targets, k2):
    return _truncated(W, U, b, V, c, xs, targets, k2 - 1)


def truncated_grad_W_one_long(W, U, b, V, c, xs, targets, k2):
    return _truncated(W, U, b, V, c, xs, targets, k2 + 1)


def truncated_grad_W_not_truncated(W, U, b, V, c, xs, targets, k2):
    return _truncated(W, U, b, V, c, xs, targets, len(xs))


def truncated_grad_W_mean(W, U, b, V, c, xs, targets, k2):
    return _truncated(W, U, b, V, c, xs, targets, k2) / len(xs)


# -- clipping ------------------------------------------------------------------------------------------


def clip_by_norm(grads, tau):
    norm = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
    if norm > tau:
        return {k: g * tau / norm for k, g in grads.items()}
    return dict(grads)


def clip_each(grads, tau):
    out = {}
    for k, g in grads.items():
        n = np.linalg.norm(g)
        out[k] = g * tau / n if n > tau else g
    return out


def clip_always(grads, tau):
    norm = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
    return {k: g * tau / norm for k, g in grads.items()}


def clip_values(grads, tau):
    return {k: np.clip(g, -tau, tau) for k, g in grads.items()}


# -- TBPTT update --------------------------------------------------------------------------------------------


def _tbptt(W, U, b, V, c, xs, targets, k1, k2, lr, per_loss=False):
    hs = _states(W, U, b, xs)
    T = len(xs)
    g = {"W": np.zeros_like(W), "U": np.zeros_like(U), "b": np.zeros_like(b), "V": np.zeros_like(V),
         "c": np.zeros_like(c)}
    for t in range(T - k1, T):  # the losses of the last k1 steps
        err = V @ hs[t + 1] + c - targets[t]
        g["V"] += np.outer(err, hs[t + 1])
        g["c"] += err
        dh = V.T @ err
        stop = t - k2 if per_loss else T - 1 - k2
        for k in range(t, max(-1, stop), -1):
            da = (1 - hs[k + 1] ** 2) * dh
            g["W"] += np.outer(da, hs[k])
            g["U"] += np.outer(da, xs[k])
            g["b"] += da
            dh = W.T @ da
    params = {"W": W, "U": U, "b": b, "V": V, "c": c}
    return {k: params[k] - lr * g[k] for k in params}


def tbptt_update(W, U, b, V, c, xs, targets, k1, k2, lr):
    return _tbptt(W, U, b, V, c, xs, targets, k1, k2, lr)


def tbptt_update_k1_steps_back(W, U, b, V, c, xs, targets, k1, k2, lr):
    return _tbptt(W, U, b, V, c, xs, targets, k1, k1, lr)


def tbptt_update_per_loss(W, U, b, V, c, xs, targets, k1, k2, lr):
    return _tbptt(W, U, b, V, c, xs, targets, k1, k2, lr, per_loss=True)


def tbptt_update_last_loss(W, U, b, V, c, xs, targets, k1, k2, lr):
    return _tbptt(W, U, b, V, c, xs, targets, 1, k2, lr)


def tbptt_update_plus(W, U, b, V, c, xs, targets, k1, k2, lr):
    return _tbptt(W, U, b, V, c, xs, targets, k1, k2, -lr)


def tbptt_update_mean(W, U, b, V, c, xs, targets, k1, k2, lr):
    return _tbptt(W, U, b, V, c, xs, targets, k1, k2, lr / k1)


# -- GRU update gate ------------------------------------------------------------------------------------------


def _gru(P, x, h_prev):
    def sig(a):
        return 1 / (1 + np.exp(-a))

    r = sig(P["U_r"] @ x + P["W_r"] @ h_prev + P["b_r"])
    z = sig(P["U_z"] @ x + P["W_z"] @ h_prev + P["b_z"])
    n = np.tanh(P["U_n"] @ x + P["b_n"] + r * (P["W_n"] @ h_prev + P["b_hn"]))
    return z, n, (1 - z) * n + z * h_prev


def gru_grad_Wz(P, x, h_prev, dh):
    z, n, _ = _gru(P, x, h_prev)
    return np.outer(dh * (h_prev - n) * z * (1 - z), h_prev)


def gru_grad_Wz_no_derivative(P, x, h_prev, dh):
    z, n, _ = _gru(P, x, h_prev)
    return np.outer(dh * (h_prev - n), h_prev)


def gru_grad_Wz_tanh_derivative(P, x, h_prev, dh):
    z, n, _ = _gru(P, x, h_prev)
    return np.outer(dh * (h_prev - n) * (1 - z ** 2), h_prev)


def gru_grad_Wz_n_minus_h(P, x, h_prev, dh):
    z, n, _ = _gru(P, x, h_prev)
    return np.outer(dh * (n - h_prev) * z * (1 - z), h_prev)


def gru_grad_Wz_new_state(P, x, h_prev, dh):
    z, n, h = _gru(P, x, h_prev)
    return np.outer(dh * (h_prev - n) * z * (1 - z), h)


def gru_grad_Wz_elementwise(P, x, h_prev, dh):
    z, n, _ = _gru(P, x, h_prev)
    return dh * (h_prev - n) * z * (1 - z) * h_prev


CORRECT = {
    "forward-pass": rnn_forward, "total-loss": total_loss, "grad-V": grad_V, "grad-hidden": grad_hidden,
    "explicit-dh-dW": explicit_dh_dW, "grad-Et-W": grad_Et_W, "grad-W": grad_W, "grad-U": grad_U,
    "truncated-grad-W": truncated_grad_W, "clip-norm": clip_by_norm, "tbptt-update": tbptt_update,
    "gru-update-gate": gru_grad_Wz,
}

MISTAKES = [
    ("forward-pass", rnn_forward_collects_before_update, "off_by_one_time"),
    ("forward-pass", rnn_forward_transposed, "transposed"),
    ("forward-pass", rnn_forward_elementwise, "elementwise_product"),
    ("total-loss", total_loss_mean, "mean_instead_of_sum"),
    ("total-loss", total_loss_overwritten, "no_accumulation"),
    ("total-loss", total_loss_output_before_update, "off_by_one_time"),
    ("grad-V", grad_V_y_minus_o, "sign_flipped"),
    ("grad-V", grad_V_outer_swapped, "transposed"),
    ("grad-V", grad_V_previous_state, "off_by_one_time"),
    ("grad-V", grad_V_overwritten, "no_accumulation"),
    ("grad-V", grad_V_mean, "mean_instead_of_sum"),
    ("grad-hidden", grad_hidden_no_future, "explicit_only"),
    ("grad-hidden", grad_hidden_no_derivative, "activation_derivative_missing"),
    ("grad-hidden", grad_hidden_derivative_of_a, "activation_derivative_wrong"),
    ("grad-hidden", grad_hidden_W_not_transposed, "transposed"),
    ("grad-hidden", grad_hidden_y_minus_o, "sign_flipped"),
    ("grad-hidden", grad_hidden_shifted, "off_by_one_time"),
    ("explicit-dh-dW", explicit_dh_dW_no_derivative, "activation_derivative_missing"),
    ("explicit-dh-dW", explicit_dh_dW_sigmoid_derivative, "activation_derivative_wrong"),
    ("explicit-dh-dW", explicit_dh_dW_current_state, "off_by_one_time"),
    ("explicit-dh-dW", explicit_dh_dW_transposed, "transposed"),
    ("grad-Et-W", grad_Et_W_explicit_only, "explicit_only"),
    ("grad-Et-W", grad_Et_W_elementwise, "elementwise_product"),
    ("grad-Et-W", grad_Et_W_no_derivative, "activation_derivative_missing"),
    ("grad-W", grad_W_explicit_only, "explicit_only"),
    ("grad-W", grad_W_no_derivative, "activation_derivative_missing"),
    ("grad-W", grad_W_derivative_of_a, "activation_derivative_wrong"),
    ("grad-W", grad_W_sigmoid_derivative, "activation_derivative_wrong"),
    ("grad-W", grad_W_returned_transposed, "transposed"),
    ("grad-W", grad_W_W_not_transposed, "transposed"),
    ("grad-W", grad_W_current_state, "off_by_one_time"),
    ("grad-W", grad_W_overwritten, "no_accumulation"),
    ("grad-W", grad_W_mean, "mean_instead_of_sum"),
    ("grad-W", grad_W_y_minus_o, "sign_flipped"),
    ("grad-W", grad_W_elementwise, "elementwise_product"),
    ("grad-U", grad_U_explicit_only, "explicit_only"),
    ("grad-U", grad_U_overwritten, "no_accumulation"),
    ("grad-U", grad_U_previous_input, "off_by_one_time"),
    ("truncated-grad-W", truncated_grad_W_one_short, "wrong_truncation"),
    ("truncated-grad-W", truncated_grad_W_one_long, "wrong_truncation"),
    ("truncated-grad-W", truncated_grad_W_not_truncated, "wrong_truncation"),
    ("truncated-grad-W", truncated_grad_W_mean, "mean_instead_of_sum"),
    ("clip-norm", clip_each, "per_tensor_clipping"),
    ("clip-norm", clip_always, "always_rescaled"),
    ("clip-norm", clip_values, "clipped_by_value"),
    ("tbptt-update", tbptt_update_k1_steps_back, "wrong_truncation"),
    ("tbptt-update", tbptt_update_per_loss, "wrong_truncation"),
    ("tbptt-update", tbptt_update_last_loss, "no_accumulation"),
    ("tbptt-update", tbptt_update_plus, "sign_flipped"),
    ("tbptt-update", tbptt_update_mean, "mean_instead_of_sum"),
    ("gru-update-gate", gru_grad_Wz_no_derivative, "activation_derivative_missing"),
    ("gru-update-gate", gru_grad_Wz_tanh_derivative, "activation_derivative_wrong"),
    ("gru-update-gate", gru_grad_Wz_n_minus_h, "sign_flipped"),
    ("gru-update-gate", gru_grad_Wz_new_state, "off_by_one_time"),
    ("gru-update-gate", gru_grad_Wz_elementwise, "elementwise_product"),
]
