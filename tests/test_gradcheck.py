"""bl.gradcheck: its relative error where finite differences cannot resolve the gradient, and that it puts
every parameter back whatever interrupts it."""
from __future__ import annotations

import numpy as np
import pytest

import bpttlab as bl
from bpttlab.engine import finite_differences


def saturated_lstm():
    """An LSTM whose gates are pinned at 1: U = 5, W = 0, b = 25 and inputs in [0.5, 1], so every gate's
    pre-activation is 27.5..30 and sigma' is about 1e-12. The gates' parameters then have gradients far
    below what a central difference with eps = 1e-6 resolves (their effect on E is below its rounding)."""
    net = bl.make("lstm", n_in=1, n_hidden=2, n_out=1, seed=0)
    for name, p in net.params.items():
        if name[0] in "UWb":
            net.params[name] = np.full_like(p, {"U": 5.0, "W": 0.0, "b": 25.0}[name[0]])
    xs, ys = np.linspace(0.5, 1.0, 4)[:, None], np.linspace(1.0, 0.0, 4)[:, None]
    return net, xs, ys


def report_loss(net, xs, ys) -> float:
    return bl.bptt(net, xs, ys).loss


def test_no_false_failure_when_the_differences_round_to_zero():
    net, xs, ys = saturated_lstm()
    report = bl.gradcheck(net, xs, ys)
    g, fd = report.analytic["U_i"], report.numeric["U_i"]
    rounding = np.finfo(float).eps * max(1.0, report_loss(net, xs, ys)) / 1e-6
    assert np.abs(fd).max() <= rounding and 0.0 < np.abs(g).max() < 1e-10  # both below the resolution
    old = np.linalg.norm(fd - g) / (np.linalg.norm(fd) + np.linalg.norm(g))
    assert old > 0.5  # the bare relative error calls this a disagreement of the size of the numbers
    assert report.passed, report
    assert report.rel_error["V"] < 1e-6 and report.rel_error["U_i"] < 1e-9


def test_a_wrong_gradient_still_fails(monkeypatch):
    net = bl.make("elman", n_in=1, n_hidden=2, n_out=1, seed=1)
    xs, ys = np.linspace(-1, 1, 5)[:, None], np.zeros((5, 1))
    right = bl.bptt(net, xs, ys)
    wrong = bl.bptt(net, xs, ys)
    wrong.grads["W"] = right.grads["W"] * 1.001
    monkeypatch.setattr(finite_differences, "bptt", lambda *a, **k: wrong)
    report = bl.gradcheck(net, xs, ys)
    assert not report.passed and 1e-4 < report.rel_error["W"] < 1e-3 and report.rel_error["U"] < 1e-7


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_parameters_are_restored_when_interrupted(monkeypatch, exc):
    net = bl.make("gru", n_in=1, n_hidden=2, n_out=1, seed=2)
    before = {k: v.copy() for k, v in net.params.items()}
    xs, ys = np.ones((3, 1)), np.zeros((3, 1))
    real, calls = finite_differences.total_loss, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 7:  # in the middle of a parameter, after its "+eps" evaluation
            raise exc("stop")
        return real(*args)

    monkeypatch.setattr(finite_differences, "total_loss", interrupted)
    with pytest.raises(exc):
        bl.gradcheck(net, xs, ys)
    assert len(calls) == 7
    for name, value in before.items():
        np.testing.assert_array_equal(net.params[name], value, err_msg=name)
