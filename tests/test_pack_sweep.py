"""Exercise ``backward-sweep`` (chapter 03): every gradient from one O(T) backward sweep.

Oracles independent of bpttlab: the total loss written in NumPy and differentiated by central finite
differences, and the O(T^2) per-loss sum (each loss walked back on its own). Students' answers are written
the way students write them, each with one slip of the catalogue; the grader must name the slip, find the
first time step where it goes wrong and give it 0 points, on the public and on hidden instances.
"""
from __future__ import annotations

import numpy as np
import pytest

import bpttlab as bl
from bpttlab.grading import get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances
from bpttlab.grading.pack import CORE_PACK

EXERCISE = "backward-sweep"
PARAMETERS = ("W", "U", "b", "V", "c")
SEEDS = (0, 1, 20240607)


def _states(W, U, b, xs):
    hs = [np.zeros(len(b))]
    for x in xs:
        hs.append(np.tanh(W @ hs[-1] + U @ x + b))
    return hs


def _loss(p, xs, targets):
    hs = _states(p["W"], p["U"], p["b"], xs)
    return sum(0.5 * np.sum((p["V"] @ h + p["c"] - y) ** 2) for h, y in zip(hs[1:], targets))


def finite_differences(W, U, b, V, c, xs, targets, eps=1e-6):
    p = {"W": W, "U": U, "b": b, "V": V, "c": c}
    out = {}
    for name in PARAMETERS:
        g = np.zeros_like(p[name])
        for i in np.ndindex(g.shape):
            up = {k: v.copy() for k, v in p.items()}
            down = {k: v.copy() for k, v in p.items()}
            up[name][i] += eps
            down[name][i] -= eps
            g[i] = (_loss(up, xs, targets) - _loss(down, xs, targets)) / (2 * eps)
        out[name] = g
    return out


def per_loss_sum(W, U, b, V, c, xs, targets):
    """The O(T^2) way: every loss E_t walked back from step t to step 1 on its own."""
    hs = _states(W, U, b, xs)
    g = {"W": np.zeros_like(W), "U": np.zeros_like(U), "b": np.zeros_like(b), "V": np.zeros_like(V),
         "c": np.zeros_like(c)}
    for t in range(1, len(xs) + 1):
        obar = V @ hs[t] + c - targets[t - 1]
        g["V"] += np.outer(obar, hs[t])
        g["c"] += obar
        dh = V.T @ obar
        for k in range(t, 0, -1):
            da = (1 - hs[k] ** 2) * dh
            g["W"] += np.outer(da, hs[k - 1])
            g["U"] += np.outer(da, xs[k - 1])
            g["b"] += da
            dh = W.T @ da
    return g


# -- students -------------------------------------------------------------------------------------------


def _student(W, U, b, V, c, xs, targets, *, carry=True, derivative="1 - h**2", own_only=False, carry_dh=False,
             forward_W=False, pair_h_t=False, overwrite=False, y_minus_o=False, mean=False):
    """A student's sweep; each keyword flips one line the way a student gets it wrong."""
    T = len(xs)
    hs = [np.zeros(len(b))]
    As = [None]
    for x in xs:
        As.append(W @ hs[-1] + U @ x + b)
        hs.append(np.tanh(As[-1]))
    gW, gU, gb, gV, gc = (np.zeros_like(p) for p in (W, U, b, V, c))
    back = np.zeros(len(b))                 # what step t+1 sends back to h_t
    for t in range(T, 0, -1):
        obar = (targets[t - 1] - (V @ hs[t] + c)) if y_minus_o else (V @ hs[t] + c - targets[t - 1])
        slope = {"1 - h**2": 1 - hs[t] ** 2, "1 - a**2": 1 - As[t] ** 2, "h*(1-h)": hs[t] * (1 - hs[t]),
                 "none": np.ones(len(b))}[derivative]
        own = V.T @ obar
        dh = own + (back if carry else 0.0)
        abar = slope * own + back if own_only else slope * dh
        M = W if forward_W else W.T
        back = M @ (dh if carry_dh else abar)
        terms = (np.outer(abar, hs[t] if pair_h_t else hs[t - 1]), np.outer(abar, xs[t - 1]), abar,
                 np.outer(obar, hs[t]), obar)
        if overwrite:
            gW, gU, gb, gV, gc = terms
        else:
            gW, gU, gb, gV, gc = (g + d for g, d in zip((gW, gU, gb, gV, gc), terms))
    grads = {"W": gW, "U": gU, "b": gb, "V": gV, "c": gc}
    return {k: g / T for k, g in grads.items()} if mean else grads


def backward_sweep(W, U, b, V, c, xs, targets):
    return _student(W, U, b, V, c, xs, targets)


def _flip(**switch):
    def student(W, U, b, V, c, xs, targets):
        return _student(W, U, b, V, c, xs, targets, **switch)
    student.__name__ = "_".join(f"{k}_{v}" for k, v in switch.items())
    return student


#: (student, mistake the grader must name, the slip's detail begins with)
MISTAKES = [
    (_flip(carry=False), "explicit_only", "nothing carried back"),
    (_flip(derivative="none"), "activation_derivative_missing", "the factor f'(a_t) left out"),
    (_flip(derivative="1 - a**2"), "activation_derivative_wrong", "f'(a_t) written as 1 - a_t²"),
    (_flip(derivative="h*(1-h)"), "activation_derivative_wrong", "f'(a_t) written as h_t (1 - h_t)"),
    (_flip(own_only=True), "activation_derivative_missing", "f'(a_t) applied to Vᵀ(o_t - y_t) only"),
    (_flip(carry_dh=True), "activation_derivative_missing", "Wᵀ dE/dh_{t+1} carried back"),
    (_flip(forward_W=True), "transposed", "W ā_{t+1} carried back"),
    (_flip(pair_h_t=True), "off_by_one_time", "dE/dW from ā_t h_tᵀ"),
    (_flip(overwrite=True), "no_accumulation", "= where += belongs"),
    (_flip(y_minus_o=True), "sign_flipped", "dE_t/do_t taken as y_t - o_t"),
    (_flip(mean=True), "mean_instead_of_sum", "every gradient divided by T"),
]


def _instances(seed):
    ex = get_exercise(EXERCISE)
    return public_instances(ex) + hidden_instances(ex, seed)


def _same(a, b):
    return all(np.allclose(a[k], b[k], rtol=1e-6, atol=1e-9) for k in PARAMETERS)


def first_wrong_step(student, inputs):
    """The first n for which the student's answer on x_1..x_n differs from the right one, found directly."""
    for n in range(1, len(inputs["xs"]) + 1):
        cut = dict(inputs, xs=inputs["xs"][:n], targets=inputs["targets"][:n])
        if not _same(student(**cut), backward_sweep(**cut)):
            return n
    raise AssertionError("the slip never shows")


# -- tests ----------------------------------------------------------------------------------------------


def test_the_exercise_is_in_the_core_pack_after_the_per_loss_gradient():
    ids = CORE_PACK.ids()
    assert EXERCISE in ids and ids.index("grad-W") < ids.index(EXERCISE)
    assert get_exercise(EXERCISE).chapter.startswith("3")


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_agrees_with_finite_differences_and_with_the_per_loss_sum(seed):
    for inst in _instances(seed):
        fd = finite_differences(**inst.inputs)
        slow = per_loss_sum(**inst.inputs)
        for name in PARAMETERS:
            np.testing.assert_allclose(inst.answer[name], fd[name], rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(inst.answer[name], slow[name], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_right_sweep_gets_full_marks(seed):
    fb = bl.grade(EXERCISE, backward_sweep, hidden_seed=seed)
    assert fb.passed and fb.score == get_exercise(EXERCISE).points == 3.0, fb.text


def test_the_per_loss_sum_is_right_too_only_slower():
    assert bl.grade(EXERCISE, per_loss_sum, hidden_seed=3).passed


@pytest.mark.parametrize("student, mistake, detail", MISTAKES, ids=[m[0].__name__ for m in MISTAKES])
@pytest.mark.parametrize("seed", SEEDS)
def test_each_mistake_is_named_located_and_scores_zero(student, mistake, detail, seed):
    fb = bl.grade(EXERCISE, student, hidden_seed=seed)
    assert fb.score == 0.0, fb.text
    assert fb.diagnosis == mistake, fb.text
    for v, inst in zip(fb.verdicts, _instances(seed)):
        assert not v.passed
        assert v.mistake == mistake and v.detail.startswith(detail), (v.mistake, v.detail)
        assert v.step == first_wrong_step(student, inst.inputs)
    assert f"at t = {fb.main.step}" in fb.text


def test_first_wrong_steps_are_where_the_slip_first_matters():
    """A slip in what is carried back cannot show on one step; a slip in a step's own term shows at once."""
    inputs = _instances(0)[0].inputs
    steps = {student.__name__: first_wrong_step(student, inputs) for student, _, _ in MISTAKES}
    assert steps["carry_False"] == steps["forward_W_True"] == steps["own_only_True"] == 2
    assert steps["carry_dh_True"] == steps["overwrite_True"] == steps["mean_True"] == 2
    assert steps["derivative_none"] == steps["pair_h_t_True"] == steps["y_minus_o_True"] == 1
