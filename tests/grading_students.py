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


def _forward(W, U, b, xs, *, recurrent="W @ h", collect_before_update=False):
    """The forward loop, with the switches the mistaken students below flip."""
    h = np.zeros(len(b))
    out = []
    for x in xs:
        if collect_before_update:
            out.append(h)
        Wh = {"W @ h": W @ h, "W.T @ h": W.T @ h, "W * h": W * h}[recurrent]
        h = np.tanh(Wh + U @ x + b)
        if not collect_before_update:
            out.append(h)
    return np.array(out)


def rnn_forward(W, U, b, xs):
    return _forward(W, U, b, xs)


def rnn_forward_collects_before_update(W, U, b, xs):
    return _forward(W, U, b, xs, collect_before_update=True)


def rnn_forward_transposed(W, U, b, xs):
    return _forward(W, U, b, xs, recurrent="W.T @ h")


def rnn_forward_elementwise(W, U, b, xs):
    return _forward(W, U, b, xs, recurrent="W * h")


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
              state_offset=0, outer=True, accumulate=True, mean=False, only_loss=None):
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
    scale = 1.0 / T if mean else 1.0
    return dW * scale, dU * scale, np.array(dhs)


def _student(name: str, part: str, **how):
    """The student whose backward loop is :func:`_backward` written with the choices ``how``, returning
    dE/dW ("W"), dE/dU ("U") or the dE/dh_t ("dh")."""
    def answer(W, U, b, V, c, xs, targets):
        return _backward(W, U, b, V, c, xs, targets, **how)[("W", "U", "dh").index(part)]
    answer.__name__ = answer.__qualname__ = name
    return answer


# -- dE/dh_t ------------------------------------------------------------------------------------------


grad_hidden = _student("grad_hidden", "dh")
grad_hidden_no_future = _student("grad_hidden_no_future", "dh", implicit=False)
grad_hidden_no_derivative = _student("grad_hidden_no_derivative", "dh", derivative="none")
grad_hidden_derivative_of_a = _student("grad_hidden_derivative_of_a", "dh", derivative="pre-activation")
grad_hidden_W_not_transposed = _student("grad_hidden_W_not_transposed", "dh", recurrent="W")
grad_hidden_y_minus_o = _student("grad_hidden_y_minus_o", "dh", sign=-1.0)


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


def _explicit(W, U, b, xs, t, *, derivative="tanh", h_in_offset=-1, transposed=False):
    """J[i, i, :] = f'(a_t)[i] h_{t-1}, written with the switches the mistaken students below flip."""
    hs = _states(W, U, b, xs)
    H = len(b)
    J = np.zeros((H, H, H))
    for i in range(H):
        h = hs[t][i]
        slope = {"tanh": 1 - h ** 2, "none": 1.0, "sigmoid": h * (1 - h)}[derivative]
        if transposed:
            J[i, :, i] = slope * hs[t + h_in_offset]
        else:
            J[i, i, :] = slope * hs[t + h_in_offset]
    return J


def explicit_dh_dW(W, U, b, xs, t):
    return _explicit(W, U, b, xs, t)


def explicit_dh_dW_no_derivative(W, U, b, xs, t):
    return _explicit(W, U, b, xs, t, derivative="none")


def explicit_dh_dW_sigmoid_derivative(W, U, b, xs, t):
    return _explicit(W, U, b, xs, t, derivative="sigmoid")


def explicit_dh_dW_current_state(W, U, b, xs, t):
    return _explicit(W, U, b, xs, t, h_in_offset=0)


def explicit_dh_dW_transposed(W, U, b, xs, t):
    return _explicit(W, U, b, xs, t, transposed=True)


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


grad_W = _student("grad_W", "W")
grad_W_explicit_only = _student("grad_W_explicit_only", "W", implicit=False)
grad_W_no_derivative = _student("grad_W_no_derivative", "W", derivative="none")
grad_W_derivative_of_a = _student("grad_W_derivative_of_a", "W", derivative="pre-activation")
grad_W_sigmoid_derivative = _student("grad_W_sigmoid_derivative", "W", derivative="sigmoid")
grad_W_W_not_transposed = _student("grad_W_W_not_transposed", "W", recurrent="W")
grad_W_current_state = _student("grad_W_current_state", "W", state_offset=1)
grad_W_mean = _student("grad_W_mean", "W", mean=True)
grad_W_y_minus_o = _student("grad_W_y_minus_o", "W", sign=-1.0)
grad_W_elementwise = _student("grad_W_elementwise", "W", outer=False)


def grad_W_returned_transposed(W, U, b, V, c, xs, targets):
    return _backward(W, U, b, V, c, xs, targets)[0].T


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


# -- dE/dU ---------------------------------------------------------------------------------------------


grad_U = _student("grad_U", "U")
grad_U_explicit_only = _student("grad_U_explicit_only", "U", implicit=False)
# ``dU = ...`` in the backward loop: the first copy's term is what is left
grad_U_overwritten = _student("grad_U_overwritten", "U", accumulate=False)


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


def _truncated(W, U, b, V, c, xs, targets, copies, recurrent="W.T"):
    hs = _states(W, U, b, xs)
    dW = np.zeros_like(W)
    for t in range(len(xs)):
        dh = V.T @ (V @ hs[t + 1] + c - targets[t])
        for k in range(t, max(-1, t - copies), -1):
            da = (1 - hs[k + 1] ** 2) * dh
            dW += np.outer(da, hs[k])
            dh = W.T @ da if recurrent == "W.T" else W @ da
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


def truncated_grad_W_W_not_transposed(W, U, b, V, c, xs, targets, k2):
    return _truncated(W, U, b, V, c, xs, targets, k2, recurrent="W")


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


def _tbptt(W, U, b, V, c, xs, targets, k1, k2, lr, per_loss=False, recurrent="W.T"):
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
            dh = W.T @ da if recurrent == "W.T" else W @ da
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


def tbptt_update_W_not_transposed(W, U, b, V, c, xs, targets, k1, k2, lr):
    return _tbptt(W, U, b, V, c, xs, targets, k1, k2, lr, recurrent="W")


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
    ("truncated-grad-W", truncated_grad_W_W_not_transposed, "transposed"),
    ("clip-norm", clip_each, "per_tensor_clipping"),
    ("clip-norm", clip_always, "always_rescaled"),
    ("clip-norm", clip_values, "clipped_by_value"),
    ("tbptt-update", tbptt_update_k1_steps_back, "wrong_truncation"),
    ("tbptt-update", tbptt_update_per_loss, "wrong_truncation"),
    ("tbptt-update", tbptt_update_last_loss, "no_accumulation"),
    ("tbptt-update", tbptt_update_plus, "sign_flipped"),
    ("tbptt-update", tbptt_update_mean, "mean_instead_of_sum"),
    ("tbptt-update", tbptt_update_W_not_transposed, "transposed"),
    ("gru-update-gate", gru_grad_Wz_no_derivative, "activation_derivative_missing"),
    ("gru-update-gate", gru_grad_Wz_tanh_derivative, "activation_derivative_wrong"),
    ("gru-update-gate", gru_grad_Wz_n_minus_h, "sign_flipped"),
    ("gru-update-gate", gru_grad_Wz_new_state, "off_by_one_time"),
    ("gru-update-gate", gru_grad_Wz_elementwise, "elementwise_product"),
]

# Exercises with a module of their own (bpttlab/grading/pack_*.py) keep their students beside their tests.
from charlm_students import CORRECT as _CHARLM_CORRECT, MISTAKES as _CHARLM_MISTAKES  # noqa: E402
from pack_students import CORRECT as _TOPIC_CORRECT  # noqa: E402
from students_checkpoint import segment_backward  # noqa: E402
from students_jacobian import jacobian_products  # noqa: E402
from students_lstm import cell_state_grads  # noqa: E402
from test_pack_sweep import backward_sweep  # noqa: E402

CORRECT.update(_TOPIC_CORRECT)
CORRECT.update(_CHARLM_CORRECT)
CORRECT.update({"jacobian-product": jacobian_products, "lstm-cell-state": cell_state_grads,
                "checkpoint-segment": segment_backward, "backward-sweep": backward_sweep})
MISTAKES.extend(_CHARLM_MISTAKES)
