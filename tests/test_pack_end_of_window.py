"""Exercise ``end-of-window-update`` (chapter 7): the reference against finite differences of the window's
last loss, a right NumPy answer, and each catalogued mistake written as a student would."""
from __future__ import annotations

import numpy as np

from bpttlab.grading import get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances
from pack_checks import SEEDS, finite_difference_gradient, standard_tests

ID = "end-of-window-update"


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


def right(**kw):
    return _update(**kw)


def _student(**switches):
    return lambda **kw: _update(**kw, **switches)


MISTAKES = [
    ("every_error", _student(every_error=True), "wrong_truncation"),
    ("not_back_propagated", _student(carry=False), "explicit_only"),
    ("context_dropped", _student(context=False), "wrong_truncation"),
    ("second_to_last_error", _student(error_row=-2), "off_by_one_time"),
    ("no_derivative", _student(derivative="none"), "activation_derivative_missing"),
    ("derivative_at_a", _student(derivative="1-a^2"), "activation_derivative_wrong"),
    ("W_not_transposed", _student(back="W"), "transposed"),
    ("uphill", _student(direction=1.0), "sign_flipped"),
]


def _last_loss(h0, xs, targets):
    def loss(p):
        h = np.array(h0, dtype=float)
        for x in xs:
            h = np.tanh(p["W"] @ h + p["U"] @ x + p["b"])
        return 0.5 * float(np.sum((p["V"] @ h + p["c"] - targets[-1]) ** 2))
    return loss


def test_reference_is_a_step_down_the_finite_difference_gradient_of_the_last_loss():
    ex = get_exercise(ID)
    for inst in public_instances(ex) + hidden_instances(ex, SEEDS[0]):
        kw = inst.inputs
        params = {k: kw[k] for k in "WUbVc"}
        fd = finite_difference_gradient(_last_loss(kw["h0"], kw["xs"], kw["targets"]), params)
        for k in params:
            np.testing.assert_allclose(inst.answer[k], params[k] - kw["lr"] * fd[k], rtol=1e-7, atol=1e-8)
        assert set(inst.answer) == set(params)


(test_a_right_answer_gets_full_marks, test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero,
 test_every_slip_of_the_exercise_is_made_by_some_student) = standard_tests(ID, right, MISTAKES)
