"""The GRU and LSTM cells against the naive references in naive_gated.py and finite differences."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import bpttlab as bl
from bpttlab.network import Network

from naive_gated import CELLS, naive_bptt, naive_contributions, naive_forward

GATED = ("gru", "lstm")
TORCH_NAMES = {
    "gru": ["U_r", "W_r", "b_r", "U_z", "W_z", "b_z", "U_n", "W_n", "b_n", "b_hn", "V", "c"],
    "lstm": ["U_i", "W_i", "b_i", "U_f", "W_f", "b_f", "U_g", "W_g", "b_g", "U_o", "W_o", "b_o", "V", "c"],
}


def random_net(cell, D=2, H=3, O=2, seed=0, scale=0.7):
    """A network with every parameter (biases too) drawn at random, so every gradient entry matters."""
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, seed=seed)
    rng = np.random.default_rng(seed + 100)
    net.params = {k: rng.normal(scale=scale, size=v.shape) for k, v in net.params.items()}
    return net


def data(net, T=7, B=None, seed=1):
    rng = np.random.default_rng(seed)
    lead = (T,) if B is None else (T, B)
    s0 = rng.normal(scale=0.5, size=lead[1:] + (net.state_size,))
    return rng.normal(size=lead + (net.n_in,)), rng.normal(size=lead + (net.n_out,)), s0


def naive_sum(cell, params, xs, ys, s0, **kw):
    """The naive gradient summed over the sequences of a batch (or of the one sequence)."""
    if xs.ndim == 2:
        return naive_bptt(cell, params, xs, ys, s0, **kw)
    grads = [naive_bptt(cell, params, xs[:, b], ys[:, b], s0[b], **kw) for b in range(xs.shape[1])]
    return {k: sum(g[k] for g in grads) for k in params}


def assert_grads_close(got, want, rtol=1e-10):
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=rtol * np.abs(want[k]).max(), err_msg=k)


@pytest.mark.parametrize("cell", GATED)
def test_registered_with_pytorch_parameter_names(cell):
    net = bl.make(cell, n_in=2, n_hidden=3, n_out=4)
    assert cell in bl.registry.cells.names()
    assert list(net.params) == TORCH_NAMES[cell]
    assert net.state_size == (3 if cell == "gru" else 6)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("B", [None, 3])
def test_forward_matches_naive(cell, B):
    net = random_net(cell)
    xs, _, s0 = data(net, B=B)
    tr = bl.forward(net, xs, h0=s0)
    for b in range(1 if B is None else B):
        x = xs if B is None else xs[:, b]
        s = s0 if B is None else s0[b]
        states, _, outputs = naive_forward(cell, net.params, x, s)
        np.testing.assert_allclose(tr.states if B is None else tr.states[:, b], states, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(tr.outputs if B is None else tr.outputs[:, b], outputs, rtol=1e-12,
                                   atol=1e-14)
        hidden = CELLS[cell][2]
        np.testing.assert_allclose(tr.h if B is None else tr.h[:, b], [hidden(v) for v in states], rtol=1e-12)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("B", [None, 3])
@pytest.mark.parametrize("k2, clip", [(None, None), (3, None), (7, None), (None, ("step", 0.4)),
                                      (3, ("step", 0.4)), (12, ("step", 0.4))])
def test_gradients_match_naive(cell, B, k2, clip):
    net = random_net(cell)
    xs, ys, s0 = data(net, B=B)
    res = bl.bptt(net, xs, ys, k2=k2, clip=clip, h0=s0)
    tau = clip[1] if clip else 0.0
    want = naive_sum(cell, net.params, xs, ys, s0, k2=None if k2 is None or (k2 >= 7 and not tau) else k2,
                     tau=tau)
    assert_grads_close(res.grads, want)


@pytest.mark.parametrize("cell", GATED)
def test_truncation_changes_the_gradient(cell):
    net = random_net(cell)
    xs, ys, s0 = data(net, T=9)
    full, cut = bl.bptt(net, xs, ys, h0=s0), bl.bptt(net, xs, ys, k2=2, h0=s0)
    W = "W_z" if cell == "gru" else "W_f"
    assert not np.allclose(full.grads[W], cut.grads[W], rtol=1e-3)
    np.testing.assert_allclose(full.grads["V"], cut.grads["V"], rtol=1e-12)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("clip", [("norm", 0.5), ("value", 0.05)])
def test_norm_and_value_clipping(cell, clip):
    net = random_net(cell)
    xs, ys, s0 = data(net, B=2)
    res = bl.bptt(net, xs, ys, clip=clip, h0=s0)
    raw = naive_sum(cell, net.params, xs, ys, s0)
    norm = np.sqrt(sum(np.sum(g ** 2) for g in raw.values()))
    assert res.grad_norm == pytest.approx(norm, rel=1e-11)
    assert norm > 0.5
    want = ({k: g * 0.5 / norm for k, g in raw.items()} if clip[0] == "norm"
            else {k: np.clip(g, -0.05, 0.05) for k, g in raw.items()})
    assert_grads_close(res.grads, want)
    assert res.clipped


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("loss, reduction, B", [("mse", "sum", None), ("mse", "mean", 2),
                                                ("cross_entropy", "sum", 2), ("cross_entropy", "mean", None)])
def test_gradients_match_finite_differences(cell, loss, reduction, B):
    net = random_net(cell, O=3)
    xs, ys, s0 = data(net, T=5, B=B)
    if loss == "cross_entropy":
        ys = np.random.default_rng(3).integers(0, 3, size=xs.shape[:-1])
    fd = bl.gradcheck(net, xs, ys, loss=loss, reduction=reduction, h0=s0, tol=1e-6)
    assert fd.passed, fd


@pytest.mark.parametrize("cell, wrt", [("gru", "W_r"), ("gru", "b_hn"), ("gru", "U_z"), ("gru", "V"),
                                       ("lstm", "W_f"), ("lstm", "b_i"), ("lstm", "U_o"), ("lstm", "c")])
def test_contributions_match_naive_paths(cell, wrt):
    net = random_net(cell)
    xs, ys, s0 = data(net, T=6)
    C = bl.contributions(net, xs, ys, wrt, h0=s0)
    want = naive_contributions(cell, net.params, xs, ys, s0, wrt)
    np.testing.assert_allclose(C, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
    res = bl.bptt(net, xs, ys, h0=s0)
    np.testing.assert_allclose(res.by_loss[wrt], want.sum(axis=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.by_copy[wrt], want.sum(axis=0), rtol=1e-10, atol=1e-12)


def test_lstm_cell_state_carries_the_gradient_through_the_forget_gate():
    """With f = 1, i = 0, o constant the LSTM's cell-state path is the identity: C[T][1] of b_g is as
    large as C[T][T] (no decay), while an Elman net with the same size loses it."""
    net = bl.make("lstm", n_in=1, n_hidden=1, n_out=1, seed=0)
    net.params = {k: np.zeros_like(v) for k, v in net.params.items()}
    net.params |= {"b_f": np.array([40.0]), "b_i": np.array([-40.0]), "b_o": np.array([0.0]),
                   "V": np.array([[1.0]])}
    xs, ys = np.zeros((12, 1)), np.ones((12, 1))
    C = bl.contributions(net, xs, ys, "b_g")
    row = np.abs(C[-1, :, 0])
    assert row[0] > 0 and row[0] == pytest.approx(row[-1], rel=1e-12)


@pytest.mark.parametrize("cell", GATED)
def test_tbptt_full_sequence_is_one_sgd_step(cell):
    net = random_net(cell)
    xs, ys, s0 = data(net, B=2)
    grads = bl.bptt(net, xs, ys, h0=s0).grads
    before = {k: v.copy() for k, v in net.params.items()}
    bl.train(net, xs, ys, lr=0.05, epochs=1, h0=s0)
    for k in before:
        np.testing.assert_allclose(net.params[k], before[k] - 0.05 * grads[k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "identity"])
def test_activation_other_than_tanh_is_rejected(cell, activation):
    with pytest.raises(ValueError, match=r"activation must be 'tanh' for the .* cell, got '" + activation):
        bl.make(cell, activation=activation)
    tanh_net = bl.make(cell, n_in=1, n_hidden=2, n_out=1)
    hand_built = Network(tanh_net.cell, bl.registry.activations.get(activation), 1, 2, 1, tanh_net.params)
    with pytest.raises(ValueError, match="activation must be 'tanh'"):
        bl.forward(hand_built, np.ones((3, 1)))
    P = {k: sp.Matrix(np.atleast_2d(v).T if v.ndim == 1 else v) for k, v in tanh_net.params.items()}
    with pytest.raises(ValueError, match="activation must be 'tanh'"):
        tanh_net.cell.symbolic_step(P, sp.zeros(tanh_net.state_size, 1), sp.Matrix([0.5]),
                                    bl.registry.activations.get(activation).symbolic)


def test_lstm_initial_state_has_h_and_c():
    net = bl.make("lstm", n_in=1, n_hidden=3, n_out=1)
    with pytest.raises(ValueError, match=r"h0 must have shape \(6,\)"):
        bl.forward(net, np.ones((4, 1)), h0=np.zeros(3))
    s0 = np.r_[np.zeros(3), np.ones(3)]
    tr = bl.forward(net, np.zeros((1, 1)), h0=s0)
    np.testing.assert_array_equal(tr.states[0], s0)
    np.testing.assert_array_equal(tr.h[0], np.zeros(3))


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("H", [1, 2])
def test_symbolic_step_matches_the_naive_step(cell, H):
    """The symbolic step, evaluated at numbers, is the same function as the NumPy step."""
    net = random_net(cell, D=2, H=H, O=2, seed=H)
    xs, _, s0 = data(net, T=1)
    P = {k: sp.Matrix(v.reshape(v.shape[0], -1)) for k, v in net.params.items()}
    s, o = net.cell.symbolic_step(P, sp.Matrix(s0), sp.Matrix(xs[0]), sp.tanh)
    states, _, outputs = naive_forward(cell, net.params, xs, s0)
    np.testing.assert_allclose(np.array(s.evalf(30), dtype=float).ravel(), states[1], rtol=1e-13)
    np.testing.assert_allclose(np.array(o.evalf(30), dtype=float).ravel(), outputs[0], rtol=1e-13)
