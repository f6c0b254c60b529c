"""Students' answers to the exercises of the topic modules (bpttlab/grading/pack_end_of_window.py,
pack_jordan.py, pack_evolution.py), written in plain NumPy loops the way students write them: one right
answer per exercise, and one function per catalogued mistake, made by flipping the switch a student
would get wrong (a missing context, ``W @`` for ``W.T @``, ``y - o``, ``=`` for ``+=``), not by
transforming the right answer. Nothing here imports bpttlab.

``CORRECT[exercise id]`` is the right answer; ``MISTAKES[exercise id]`` lists (name, function, catalogue key).
"""
from __future__ import annotations

import numpy as np


# -- end-of-window-update (chapter 7b) -----------------------------------------------------------------


def _update(W, U, b, V, c, h0, xs, targets, lr, *, context=True, every_error=False, carry=True,
            error_row=-1, derivative="1-h^2", back="W.T", direction=-1.0):
    """A student's loop, with the switches the mistaken students below flip."""
    h = [np.array(h0, dtype=float) if context else np.zeros(len(b))]
    for x in xs:
        h.append(np.tanh(W @ h[-1] + U @ x + b))
    T = len(xs)
    g = {"W": np.zeros_like(W), "U": np.zeros_like(U), "b": np.zeros_like(b), "V": np.zeros_like(V),
         "c": np.zeros_like(c)}
    last = T + error_row + 1 if T > 1 else T       # 1-based step whose output gives the error
    dh_next = np.zeros(len(b))
    for t in range(T, 0, -1):
        dh = dh_next
        if t == last or every_error:
            err = V @ h[t] + c - targets[t - 1]
            g["V"] += np.outer(err, h[t])
            g["c"] += err
            dh = dh + V.T @ err
        a = W @ h[t - 1] + U @ xs[t - 1] + b
        fprime = {"1-h^2": 1 - h[t] ** 2, "none": 1.0, "1-a^2": 1 - a ** 2}[derivative]
        da = dh * fprime
        g["W"] += np.outer(da, h[t - 1])
        g["U"] += np.outer(da, xs[t - 1])
        g["b"] += da
        dh_next = ({"W.T": W.T, "W": W}[back] @ da) if carry else np.zeros(len(b))
    params = {"W": W, "U": U, "b": b, "V": V, "c": c}
    return {k: params[k] + direction * lr * g[k] for k in params}


def end_of_window_update(**kw):
    return _update(**kw)


def _eow_student(**switches):
    return lambda **kw: _update(**kw, **switches)


END_OF_WINDOW_MISTAKES = [
    ("every_error", _eow_student(every_error=True), "wrong_truncation"),
    ("not_back_propagated", _eow_student(carry=False), "explicit_only"),
    ("context_dropped", _eow_student(context=False), "wrong_truncation"),
    ("second_to_last_error", _eow_student(error_row=-2), "off_by_one_time"),
    ("no_derivative", _eow_student(derivative="none"), "activation_derivative_missing"),
    ("derivative_at_a", _eow_student(derivative="1-a^2"), "activation_derivative_wrong"),
    ("W_not_transposed", _eow_student(back="W"), "transposed"),
    ("uphill", _eow_student(direction=1.0), "sign_flipped"),
]


# -- jordan-grad-V (chapter 8) ---------------------------------------------------------------------------


def _grad_V(W, U, b, V, c, xs, targets, *, steps_back=None, derivative="1-h^2", answer="V", h_shift=0,
            accumulate=True, error_sign=1.0):
    """A student's Jordan backward pass, with the switches the mistaken students below flip."""
    o, h, a = [np.zeros(len(c))], [None], [None]
    for x in xs:
        a.append(W @ o[-1] + U @ x + b)
        h.append(np.tanh(a[-1]))
        o.append(V @ h[-1] + c)
    T = len(xs)
    h[0] = np.zeros(len(b))
    g = np.zeros_like(V)
    for t in range(T, 0, -1):
        # dE/do_t: its own error plus what the later losses send back through o_t, up to steps_back steps
        obar = np.zeros(len(c))
        for s in range(t, T + 1 if steps_back is None else min(T, t + steps_back - 1) + 1):
            d = error_sign * (o[s] - targets[s - 1])      # dE_s/do_s, carried back to o_t
            for j in range(s, t, -1):
                fprime = {"1-h^2": 1 - h[j] ** 2, "none": 1.0, "1-a^2": 1 - a[j] ** 2}[derivative]
                d = W.T @ (fprime * (V.T @ d))
            obar += d
        term = np.outer(obar, h[t - h_shift])
        g = g + term if accumulate or t == T else g
    return g.T if answer == "V.T" else g


def jordan_grad_V(**kw):
    return _grad_V(**kw)


def _jordan_student(**switches):
    return lambda **kw: _grad_V(**kw, **switches)


JORDAN_MISTAKES = [
    ("elman_formula", _jordan_student(steps_back=1), "explicit_only"),
    ("one_step_of_feedback", _jordan_student(steps_back=2), "wrong_truncation"),
    ("no_derivative", _jordan_student(derivative="none"), "activation_derivative_missing"),
    ("derivative_at_a", _jordan_student(derivative="1-a^2"), "activation_derivative_wrong"),
    ("transposed_answer", _jordan_student(answer="V.T"), "transposed"),
    ("previous_hidden", _jordan_student(h_shift=1), "off_by_one_time"),
    ("only_last_term", _jordan_student(accumulate=False), "no_accumulation"),
    ("y_minus_o", _jordan_student(error_sign=-1.0), "sign_flipped"),
]


# -- es-gradient (chapter 9) -----------------------------------------------------------------------------


def _es_loss(p, xs, targets, *, recurrent="W", readout="h_t", reduce="sum"):
    W = p["W"].T if recurrent == "W.T" else p["W"]
    h, losses = np.zeros(len(p["b"])), []
    for x, y in zip(xs, targets):
        h_new = np.tanh(W @ h + p["U"] @ x + p["b"])
        o = p["V"] @ (h_new if readout == "h_t" else h) + p["c"]
        losses.append(0.5 * np.sum((o - y) ** 2))
        h = h_new
    return np.sum(losses) if reduce == "sum" else np.mean(losses)


def _es(W, U, b, V, c, xs, targets, eps, sigma, *, accumulate=True, order=1.0, **forward):
    theta = {"W": W, "U": U, "b": b, "V": V, "c": c}
    m = len(eps["W"])
    g = {k: np.zeros_like(v) for k, v in theta.items()}
    for i in range(m):
        up = _es_loss({k: theta[k] + sigma * eps[k][i] for k in theta}, xs, targets, **forward)
        down = _es_loss({k: theta[k] - sigma * eps[k][i] for k in theta}, xs, targets, **forward)
        for k in theta:
            term = order * (up - down) * eps[k][i]
            g[k] = g[k] + term if accumulate else term
    return {k: v / (2 * m * sigma) for k, v in g.items()}


def es_gradient(**kw):
    return _es(**kw)


def _es_student(**switches):
    return lambda **kw: _es(**kw, **switches)


ES_MISTAKES = [
    ("down_minus_up", _es_student(order=-1.0), "sign_flipped"),
    ("overwritten", _es_student(accumulate=False), "no_accumulation"),
    ("mean_loss", _es_student(reduce="mean"), "mean_instead_of_sum"),
    ("readout_of_previous_state", _es_student(readout="h_prev"), "off_by_one_time"),
    ("W_transposed_forward", _es_student(recurrent="W.T"), "transposed"),
]


CORRECT = {"end-of-window-update": end_of_window_update, "jordan-grad-V": jordan_grad_V, "es-gradient": es_gradient}
MISTAKES = {"end-of-window-update": END_OF_WINDOW_MISTAKES, "jordan-grad-V": JORDAN_MISTAKES, "es-gradient": ES_MISTAKES}
