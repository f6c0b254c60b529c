"""bpttlab.engine.flow: state Jacobians and per-loss state gradients against the textbook recursion (tests/naive.py)
and against finite differences through the public forward pass, for every registered cell."""
from __future__ import annotations

import numpy as np
import pytest

import bpttlab as bl
import naive
from bpttlab.engine.flow import state_gradients, state_jacobians

ALL_CELLS = ("elman", "jordan", "gru", "lstm")


def _case(cell, seed=0, T=5, D=2, H=3, O=2, activation="tanh", batched=False):
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, activation=activation, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for name, p in net.params.items():
        if p.ndim == 1:
            net.params[name] = rng.normal(scale=0.3, size=p.shape)
    shape = (T, 3) if batched else (T,)
    return net, rng.normal(size=shape + (D,)), rng.normal(size=shape + (O,))


def _naive_state_gradients(net, xs, ys, k2=None, tau=0.0, reduction="sum"):
    """dE_t/ds_k by the textbook recursion, one loss at a time (Elman and Jordan), xs (T, B, D)."""
    cell, act = net.cell.name, net.activation.name
    p = net.params
    T, B, _ = xs.shape
    tr = naive.forward(cell, act, [p] * T, xs, np.zeros((B, net.state_size)))
    dO = naive.loss_grads("mse", tr.o, ys) / (T * B if reduction == "mean" else 1.0)
    df = naive.ACTIVATIONS[act][1]
    out = np.zeros((T, T, B, net.state_size))
    for t in range(T):
        ds = naive.clip_rows(dO[t] @ p["V"] if cell == "elman" else dO[t], tau)
        out[t, t] = ds
        for k in range(t - 1, -1 if k2 is None else max(-1, t - k2), -1):
            dh = ds if cell == "elman" else ds @ p["V"]
            ds = naive.clip_rows((df(tr.a[k + 1]) * dh) @ p["W"], tau)
            out[t, k] = ds
    return out


@pytest.mark.parametrize("cell", ["elman", "jordan"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("k2", [None, 2])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_state_gradients_match_the_textbook_recursion(cell, activation, k2, reduction):
    net, xs, ys = _case(cell, seed=3, activation=activation, batched=True)
    G = state_gradients(net, xs, ys, k2=k2, reduction=reduction)
    np.testing.assert_allclose(G, _naive_state_gradients(net, xs, ys, k2=k2, reduction=reduction),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", ["elman", "jordan"])
def test_step_clipping_rescales_every_back_propagated_state_gradient(cell):
    net, xs, ys = _case(cell, seed=1, batched=True)
    free = state_gradients(net, xs, ys)
    tau = 0.5 * float(np.median(np.linalg.norm(free, axis=-1)[np.tril_indices(5)]))
    G = state_gradients(net, xs, ys, clip=("step", tau))
    np.testing.assert_allclose(G, _naive_state_gradients(net, xs, ys, tau=tau), rtol=1e-12, atol=1e-14)
    assert np.linalg.norm(G, axis=-1).max() <= tau * (1 + 1e-12)
    assert not np.allclose(G, free)
    np.testing.assert_array_equal(state_gradients(net, xs, ys, clip=("norm", tau)), free)


def test_state_gradients_sum_to_the_parameter_gradients_of_the_engine():
    """Elman: dE/dW reaching copy k is sum_t (f'(a_k) * dE_t/dh_k) h_{k-1}^T, the engine's by_copy."""
    net, xs, ys = _case("elman", seed=2, T=6)
    for k2 in (None, 3):
        G = state_gradients(net, xs, ys, k2=k2)
        res = bl.bptt(net, xs, ys, k2=k2)
        h = res.trace.h
        delta = G.sum(axis=0) * (1.0 - h[1:] ** 2)
        np.testing.assert_allclose(np.einsum("ki,kj->kij", delta, h[:-1]), res.by_copy["W"], rtol=1e-12,
                                   atol=1e-14)


def _loss_from_state(net, xs, ys, k, t, s):
    """E_t as a function of s_k (1-based k < t): run copies k+1..t from h0 = s."""
    o = bl.forward(net, xs[k:t], h0=s).outputs[-1]
    return 0.5 * float(np.sum((o - ys[t - 1]) ** 2))


def _fd(fun, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        g.flat[i] = (fun(x + e) - fun(x - e)) / (2 * eps)
    return g


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_state_gradients_match_finite_differences(cell):
    net, xs, ys = _case(cell, seed=4, T=4)
    G = state_gradients(net, xs, ys)
    states = bl.forward(net, xs).states
    for t in range(2, 5):
        for k in range(1, t):
            fd = _fd(lambda s: _loss_from_state(net, xs, ys, k, t, s), states[k].copy())
            np.testing.assert_allclose(G[t - 1, k - 1], fd, rtol=1e-6, atol=1e-9)
    assert np.all(G[np.triu_indices(4, 1)] == 0.0)


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_state_jacobians_match_finite_differences(cell):
    net, xs, _ = _case(cell, seed=5, T=4)
    J = state_jacobians(net, xs)
    states = bl.forward(net, xs).states
    S = net.state_size
    for t in range(1, 5):
        np.testing.assert_array_equal(J[t - 1, t - 1], np.eye(S))
        for k in range(1, t):
            fd = np.stack([_fd(lambda s: bl.forward(net, xs[k:t], h0=s).states[-1][i], states[k].copy())
                           for i in range(S)])
            np.testing.assert_allclose(J[t - 1, k - 1], fd, rtol=1e-6, atol=1e-9)
    assert np.all(J[np.triu_indices(4, 1)] == 0.0)


def test_batched_inputs_give_one_map_per_sequence():
    net, xs, ys = _case("elman", seed=6, batched=True)
    G, J = state_gradients(net, xs, ys), state_jacobians(net, xs)
    assert G.shape == (5, 5, 3, 3) and J.shape == (5, 5, 3, 3, 3)
    for b in range(3):
        np.testing.assert_allclose(G[:, :, b], state_gradients(net, xs[:, b], ys[:, b]), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(J[:, :, b], state_jacobians(net, xs[:, b]), rtol=1e-13, atol=1e-15)


def test_readout_vjp_is_what_each_loss_puts_on_its_state():
    net, xs, ys = _case("elman", seed=7)
    rng = np.random.default_rng(0)
    dO, s = rng.normal(size=(4, 2)), rng.normal(size=(4, 3))
    ds, grads = net.cell.readout_vjp(net.params, s, dO)
    np.testing.assert_allclose(ds, dO @ net.params["V"], rtol=1e-15)
    np.testing.assert_allclose(grads["V"], sum(np.outer(dO[b], s[b]) for b in range(4)), rtol=1e-14)
    jnet, _, _ = _case("jordan", seed=7)
    ds, grads = jnet.cell.readout_vjp(jnet.params, dO, dO)
    np.testing.assert_array_equal(ds, dO)
    assert grads == {}


def test_bad_inputs_are_named():
    net, xs, ys = _case("elman")
    with pytest.raises(ValueError, match="k2"):
        state_gradients(net, xs, ys, k2=0)
    with pytest.raises(ValueError, match="clip"):
        state_gradients(net, xs, ys, clip=("bogus", 1.0))
    with pytest.raises(ValueError, match="xs"):
        state_jacobians(net, xs[:, :1])
    with pytest.raises(TypeError, match="net"):
        state_jacobians("net", xs)
