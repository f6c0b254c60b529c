"""The per-timestep decomposition C[t][k] and its identities (ARCHITECTURE.md).

Row sums are by_loss, column sums by_copy, the total is the gradient; the diagonal is the explicit part;
truncation zeroes exactly the entries with k <= t - k2 and leaves the others unchanged; an Elman
network's output layer (V, c) has no implicit part, a Jordan network's does.
"""
from __future__ import annotations

import numpy as np
import pytest

import bpttlab as bl
import naive
from engine_cases import CELLS, assert_close, engine, make_case, rel_err

TOL = 1e-12


def table(case, name, **kw):
    return bl.contributions(case.net, case.xs, case.y, name, loss=case.loss, h0=case.h0, **kw)


@pytest.mark.parametrize("k2", [None, 1, 3])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("cell", CELLS)
def test_rows_columns_and_total(cell, loss, k2):
    case = make_case(cell, "tanh", loss, True, seed=4, T=5, h0=True)
    res = bl.bptt(case.net, case.xs, case.y, loss=loss, k2=k2, h0=case.h0)
    for name in case.net.params:
        C = table(case, name, k2=k2)
        assert C.shape == (5, 5) + case.net.params[name].shape
        assert rel_err(C.sum(axis=1), res.by_loss[name]) < TOL
        assert rel_err(C.sum(axis=0), res.by_copy[name]) < TOL
        assert rel_err(C.sum(axis=(0, 1)), res.grads[name]) < TOL
        assert rel_err(res.by_loss[name].sum(axis=0), res.grads[name]) < TOL


@pytest.mark.parametrize("cell", CELLS)
def test_diagonal_is_the_explicit_part(cell):
    """C[t][t] = d+E_t/dtheta (the previous state held constant), i.e. truncation at k2 = 1."""
    case = make_case(cell, "sigmoid", "mse", False, seed=5, T=5)
    explicit = engine(case, k2=1).by_loss
    xs, y = naive.batched(case.xs, case.y, "mse")
    for name in case.net.params:
        C = table(case, name)
        diag = np.array([C[t, t] for t in range(5)])
        assert rel_err(diag, explicit[name]) < TOL
        # independently: perturb only the copy at step t and keep the state entering it fixed
        eps = 1e-6
        t = 3
        tr = naive.forward(cell, "sigmoid", [case.net.params] * 5, xs, np.zeros((1, case.S)))
        fd = np.zeros_like(case.net.params[name])
        for idx in np.ndindex(*fd.shape):
            E = []
            for sign in (1, -1):
                p = {k: v.copy() for k, v in case.net.params.items()}
                p[name][idx] += sign * eps
                o = naive.step(cell, p, tr.s[t], xs[t], naive.ACTIVATIONS["sigmoid"][0])[3]
                E.append(naive.loss_values("mse", o[None], y[t:t + 1]).sum())
            fd[idx] = (E[0] - E[1]) / (2 * eps)
        assert rel_err(C[t, t], fd) < 1e-7


@pytest.mark.parametrize("cell", CELLS)
def test_truncation_zeroes_exactly_the_old_copies(cell):
    case = make_case(cell, "tanh", "mse", True, seed=6, T=6)
    T = 6
    t, k = np.indices((T, T))
    for name in ("W", "U", "b", "V"):
        full = table(case, name)
        assert np.all(full[k > t] == 0), "C[t][k] must vanish for k > t (E_t does not see later copies)"
        for k2 in (1, 2, 4):
            C = table(case, name, k2=k2)
            dropped = (k > t) | (t - k >= k2)
            assert np.all(C[dropped] == 0)
            assert rel_err(C[~dropped], full[~dropped]) < TOL
        if name != "V" or cell == "jordan":  # an Elman V has no implicit part (test below)
            assert np.any(full[k < t] != 0)


def test_elman_output_layer_has_no_implicit_part():
    case = make_case("elman", "tanh", "mse", True, seed=7, T=5)
    res = engine(case)
    for name in ("V", "c"):
        C = table(case, name)
        off = C[~np.eye(5, dtype=bool)]
        assert np.all(off == 0), f"Elman {name}: C[t][k] for k != t must be exactly zero"
        assert rel_err(res.by_copy[name], res.by_loss[name]) < TOL
    assert np.any(table(case, "W")[~np.eye(5, dtype=bool)] != 0)


def test_jordan_output_layer_has_an_implicit_part():
    case = make_case("jordan", "tanh", "mse", True, seed=7, T=5)
    for name in ("V", "c"):
        C = table(case, name)
        explicit = np.array([C[t, t] for t in range(5)])
        implicit = C.sum(axis=1) - explicit
        assert np.linalg.norm(implicit) > 1e-3 * np.linalg.norm(explicit)
        assert np.all(implicit[0] == 0), "the first loss has no earlier copies"


@pytest.mark.parametrize("cell", CELLS)
def test_mean_reduction_divides_every_term_by_T_times_B(cell):
    case = make_case(cell, "tanh", "cross_entropy", True, seed=8, T=4, B=3)
    s, m = engine(case, "sum", k2=2), engine(case, "mean", k2=2)
    assert m.loss == pytest.approx(s.loss / 12, rel=TOL)
    for name in case.net.params:
        for part in ("grads", "by_loss", "by_copy"):
            assert rel_err(getattr(m, part)[name] * 12, getattr(s, part)[name]) < TOL
        assert rel_err(table(case, name, reduction="mean") * 12, table(case, name)) < TOL


@pytest.mark.parametrize("cell", CELLS)
def test_by_loss_and_table_follow_the_naive_rows(cell):
    """The engine's per-loss chains against the naive ones, with truncation and per-loss step clipping."""
    case = make_case(cell, "relu", "mse", True, seed=9, T=5)
    ref = naive.bptt(cell, "relu", case.net.params, case.xs, case.y, k2=3, clip=("step", 0.05))
    res = bl.bptt(case.net, case.xs, case.y, k2=3, clip=("step", 0.05))
    assert_close(res.by_loss, ref.by_loss, 1e-10, "by_loss with step clipping")
    for name in ("W", "V"):
        assert rel_err(table(case, name, k2=3), naive.bptt(cell, "relu", case.net.params, case.xs, case.y,
                                                            k2=3).table[name]) < 1e-10
