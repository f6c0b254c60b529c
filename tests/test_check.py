"""bl.check: the SymPy derivation, evaluated at a network's numbers, against the engine term by term.

The two sides share no code: the symbolic side runs the cell's SymPy step and the derived expressions
(lambdified), the engine its Numba kernels. A plugin whose kernel is subtly wrong must be caught, with
the parameter and time step named.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bpttlab as bl
from bpttlab.agreement import CheckReport

HERE = Path(__file__).parent

CELL_ACTIVATIONS = [(c, a) for c in ("elman", "jordan") for a in ("tanh", "relu", "sigmoid", "identity")]
CELL_ACTIVATIONS += [("gru", "tanh"), ("lstm", "tanh")]


def data(rng, T, B, D, O, loss):
    xs = rng.normal(size=(T, B, D))
    ys = rng.integers(0, O, size=(T, B)) if loss == "cross_entropy" else rng.normal(size=(T, B, O))
    return xs, ys


def network(cell, act, D, H, O, seed):
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, activation=act, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for p in net.params.values():  # every entry nonzero, biases included
        p[...] = rng.normal(scale=0.8, size=p.shape)
    return net


def sympy_rows(rep: CheckReport, name: str, what: str | None = None):
    return [r for r in rep.rows if r.parameter == name and r.source == "sympy"
            and (what is None or r.what == what or (what == "C" and r.what.startswith("C[")))]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("cell, act", CELL_ACTIVATIONS)
def test_check_passes_on_random_networks(cell, act, loss, reduction):
    rng = np.random.default_rng(sum(map(ord, cell + act + loss + reduction)))
    T, B, D, H, O = (3, 2, 1, 2, 2) if cell in ("gru", "lstm") else (4, 2, 2, 2, 2)
    net = network(cell, act, D, H, O, seed=int(rng.integers(1000)))
    xs, ys = data(rng, T, B, D, O, loss)
    rep = bl.check(net, xs, ys, loss=loss, reduction=reduction)
    assert rep.passed, str(rep)
    res = bl.bptt(net, xs, ys, loss=loss, reduction=reduction)
    for name, shape in net.shapes.items():
        terms = sympy_rows(rep, name, "C")
        assert [(r.t, r.k) for r in terms] == [(t, k) for t in range(1, T + 1) for k in range(1, t + 1)]
        assert all(r.reference.shape == shape for r in terms)
        # the symbolic terms add up to the engine's gradient (independently of the report's own verdict)
        np.testing.assert_allclose(sum(r.reference for r in terms), res.grads[name], rtol=1e-10, atol=1e-14)
        if act != "relu":
            (fd,) = [r for r in rep.rows if r.parameter == name and r.source == "fd"]
            assert fd.passed and fd.rel_error < 1e-6


@pytest.mark.parametrize("cell", ["elman", "jordan"])
def test_truncation_drops_the_same_terms(cell):
    rng = np.random.default_rng(5)
    T, k2 = 5, 2
    net = network(cell, "tanh", 2, 2, 1, seed=4)
    xs, ys = data(rng, T, 1, 2, 1, "mse")
    rep = bl.check(net, xs[:, 0], ys[:, 0], k2=k2)
    assert rep.passed, str(rep)
    assert "k2=2" in rep.title and "truncated" in rep.fd_note
    full = bl.bptt(net, xs[:, 0], ys[:, 0]).by_loss
    for name in ("W", "U"):
        dropped = [r for r in sympy_rows(rep, name, "C") if r.dropped]
        assert [(r.t, r.k) for r in dropped] == [(t, k) for t in range(1, T + 1) for k in range(1, t - k2 + 1)]
        assert all(not r.reference.any() and not r.engine.any() for r in dropped)
        totals = sympy_rows(rep, name, "total")
        # what was dropped mattered: the truncated totals are not the full ones from t = k2 + 1 on
        assert not np.allclose(totals[-1].reference, full[name][-1], rtol=1e-6)
        np.testing.assert_allclose(totals[0].reference, full[name][0], rtol=1e-12)


def test_relu_derivative_at_an_exact_zero_matches_the_engine():
    rng = np.random.default_rng(2)
    net = network("elman", "relu", 2, 3, 1, seed=2)
    net.params["b"][:] = 0.0
    xs, ys = data(rng, 4, 1, 2, 1, "mse")
    xs[0] = 0.0  # a_1 = W h_0 + U x_1 + b = 0 exactly: C[t][1] for b is dE_t/dh_1 relu'(0)
    assert not bl.forward(net, xs).states[1].any()
    rep = bl.check(net, xs, ys)
    assert rep.passed, str(rep)
    for name in ("W", "U", "b"):
        first_copy = [r for r in sympy_rows(rep, name, "C") if r.k == 1]
        assert first_copy and all(not r.reference.any() and not r.engine.any() for r in first_copy)
        assert any(r.reference.any() for r in sympy_rows(rep, name, "C") if r.k > 1)
    assert "kink" in rep.fd_note and "a_1" in rep.fd_note
    assert not [r for r in rep.rows if r.source == "fd"]


def test_batch_and_initial_state():
    rng = np.random.default_rng(8)
    net = network("jordan", "tanh", 1, 2, 2, seed=8)
    xs, ys = data(rng, 3, 3, 1, 2, "mse")
    h0 = rng.normal(size=(3, 2))
    rep = bl.check(net, xs, ys, h0=h0)
    assert rep.passed, str(rep)
    np.testing.assert_allclose(sympy_rows(rep, "W", "dE/dθ")[0].reference,
                               bl.bptt(net, xs, ys, h0=h0).grads["W"], rtol=1e-10)
    without = bl.check(net, xs, ys)
    assert not np.allclose(sympy_rows(without, "W", "dE/dθ")[0].reference,
                           sympy_rows(rep, "W", "dE/dθ")[0].reference)


@pytest.fixture
def leaky_cells(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    from plugins.leaky_cell import LeakyCell
    from plugins.wrong_leaky_cell import WrongLeakyCell

    right = bl.registry.cells.register("leaky", LeakyCell(0.5))
    wrong = bl.registry.cells.register("wrong_leaky", WrongLeakyCell(0.5))
    yield right, wrong
    bl.registry.cells.unregister("leaky")
    bl.registry.cells.unregister("wrong_leaky")


def test_a_plugin_with_a_wrong_kernel_is_caught(leaky_cells):
    rng = np.random.default_rng(11)
    xs, ys = data(rng, 4, 1, 2, 1, "mse")
    reps = {}
    for name in ("leaky", "wrong_leaky"):
        net = network(name, "tanh", 2, 2, 1, seed=3)
        reps[name] = bl.check(net, xs[:, 0], ys[:, 0])
    assert reps["leaky"].passed, str(reps["leaky"])
    rep = reps["wrong_leaky"]
    assert not rep.passed
    bad = {r.parameter for r in rep.failures}
    assert bad == {"W", "U", "b"}
    assert all(r.passed for r in rep.rows if r.what == "explicit" or r.parameter in ("V", "c"))
    # the earliest wrong term is C[2][1]; for W it is 0 on both sides (h_0 = 0), so U is named first
    first = rep.first_failure
    assert (first.parameter, first.t, first.k, first.what) == ("U", 2, 1, "C[2][1]")
    assert min((r.t, r.k) for r in rep.failures if r.parameter == "W" and r.k is not None) == (3, 2)
    assert rep.worst.parameter in bad and not rep.worst.passed and rep.worst.rel_error > 1e-3
    text = str(rep)
    assert "FAILED" in text and "first at U, t=2, C[2][1]" in text
    assert "\nW " in text and " NO" in text
    assert "disagreements" in rep._repr_html_()
    errors = rep.max_rel_error_by_parameter()
    assert errors["W"] > 1e-3 and errors["V"] < 1e-10


def test_text_and_html_rendering():
    rng = np.random.default_rng(0)
    net = network("elman", "tanh", 1, 1, 1, seed=0)
    xs, ys = data(rng, 3, 1, 1, 1, "mse")
    rep = bl.check(net, xs[:, 0], ys[:, 0])
    text = str(rep)
    assert text.startswith("bl.check: elman tanh, D=1 H=1 O=1, T=3, loss mse (sum)")
    lines = text.splitlines()
    assert lines[1].split()[:3] == ["parameter", "shape", "terms"]
    rows = {line.split()[0]: line.split() for line in lines[3:8]}
    assert list(rows) == ["W", "U", "b", "V", "c"]
    assert all(row[-5] == "6" and row[-1] == "yes" for row in rows.values())  # 3 + 2 + 1 terms
    assert "PASSED: all" in text and "relative error < 1e-10" in text
    page = rep._repr_html_()
    assert page.count("<table>") == 2 and "<details>" in page and "C[3][1]" in page
    assert "SymPy vs engine" in page and "engine vs FD" in page
    assert "<td>&lt; 1e-10</td>" not in page and "<td>&lt; 1e-10</td>" in rep.rounded()._repr_html_()
    detail = rep.to_text(detail=True)
    assert "C[2][1]" in detail and "dE/dθ" in detail


@pytest.mark.parametrize("kwargs, message", [
    ({"tol": 0}, "tol must be a number in (0, 1), got 0"),
    ({"fd_tol": "x"}, "fd_tol must be a number in (0, 1), got 'x'"),
    ({"k2": 0}, "k2 must be a positive int or None, got 0"),
    ({"reduction": "max"}, "reduction must be 'sum' or 'mean', got 'max'"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    net = bl.make("elman", n_in=1, n_hidden=1, n_out=1, seed=0)
    with pytest.raises(ValueError) as err:
        bl.check(net, np.ones((2, 1)), np.zeros((2, 1)), **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("cell, D, H, O, T, largest", [
    ("elman", 1, 1, 1, 13, "the largest is t=12"),
    ("elman", 1, 4, 1, 3, "e.g. size=(1, 3, 1)"),
    ("gru", 1, 2, 1, 5, "the largest is t=4"),
])
def test_beyond_the_derivable_sizes_a_clear_error_names_the_largest(cell, D, H, O, T, largest):
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, seed=0)
    with pytest.raises(ValueError) as err:
        bl.check(net, np.ones((T, D)), np.zeros((T, O)))
    assert str(err.value).startswith("check: ") and largest in str(err.value)
