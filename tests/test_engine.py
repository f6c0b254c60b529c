"""The engine against the naive NumPy reference (tests/naive.py), to relative error 1e-10.

Every cell x activation x loss x reduction, batched and unbatched, with and without truncation k2 and
with each clip mode; then forward traces, h0 and float32 inputs.
"""
from __future__ import annotations

import numpy as np
import pytest

import bpttlab as bl
import naive
from engine_cases import (ACTIVATIONS, CELLS, CLIP_MODES, LOSSES, REDUCTIONS, assert_close, biting_clip,
                          engine, make_case, reference, rel_err)

TOL = 1e-10


@pytest.mark.parametrize("clip_mode", CLIP_MODES)
@pytest.mark.parametrize("k2", [None, 2])
@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_bptt_matches_reference(cell, act, loss, reduction, batched, k2, clip_mode):
    case = make_case(cell, act, loss, batched, seed=len(act) + 7 * len(loss))
    clip = biting_clip(case, clip_mode, reduction, k2)
    res = engine(case, reduction, k2, clip)
    ref = reference(case, reduction, k2, clip)

    assert abs(res.loss - ref.loss) <= TOL * abs(ref.loss)
    assert rel_err(res.losses, ref.losses) < TOL
    assert_close(res.raw_grads, ref.raw_grads, TOL, "raw_grads")
    assert_close(res.grads, ref.grads, TOL, "grads")
    assert_close(res.by_copy, ref.by_copy, TOL, "by_copy")
    assert res.grad_norm == pytest.approx(np.sqrt(sum(np.sum(g ** 2) for g in ref.raw_grads.values())), rel=TOL)
    if clip_mode == "step" and k2 is None:
        with pytest.raises(ValueError, match="by_loss"):
            res.by_loss
    else:
        assert_close(res.by_loss, ref.by_loss, TOL, "by_loss")
    if clip_mode is not None:
        unclipped = reference(case, reduction, k2)
        assert max(rel_err(ref.grads[k], unclipped.grads[k]) for k in ref.grads) > 1e-3, "clip did not bite"
        assert res.clipped


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
@pytest.mark.parametrize("cell", CELLS)
def test_forward_trace_matches_reference(cell, batched):
    case = make_case(cell, "tanh", "mse", batched, seed=3, h0=True)
    tr = bl.forward(case.net, case.xs, h0=case.h0)
    ref = reference(case).trace
    view = (lambda a: a) if batched else (lambda a: a[:, 0])
    assert tr.outputs.shape == view(ref.o).shape
    assert rel_err(tr.outputs, view(ref.o)) < TOL
    assert rel_err(tr.states, view(ref.s)) < TOL
    assert rel_err(tr.h[1:], view(ref.h)) < TOL
    assert rel_err(tr.states[0], case.h0) == 0.0


@pytest.mark.parametrize("shape", ["vector", "per_sequence"])
@pytest.mark.parametrize("cell", CELLS)
def test_h0_matches_reference_and_matters(cell, shape):
    case = make_case(cell, "tanh", "mse", True, seed=5, B=3)
    S = case.net.state_size
    rng = np.random.default_rng(11)
    case.h0 = rng.normal(size=(S,) if shape == "vector" else (3, S))
    res, ref = engine(case, k2=3), reference(case, k2=3)
    assert_close(res.grads, ref.grads, TOL, "grads")
    assert_close(res.by_loss, ref.by_loss, TOL, "by_loss")
    zero = bl.bptt(case.net, case.xs, case.y, k2=3)
    assert rel_err(zero.grads["W"], res.grads["W"]) > 1e-3


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("cell", CELLS)
def test_float32_inputs_are_computed_in_float64(cell, loss):
    case = make_case(cell, "sigmoid", loss, True, seed=2)
    xs32 = case.xs.astype(np.float32)
    y32 = case.y.astype(np.float32) if loss == "mse" else case.y.astype(np.int32)
    params32 = {k: v.astype(np.float32) for k, v in case.net.params.items()}
    case.net.params = dict(params32)
    res = bl.bptt(case.net, xs32, y32, loss=loss)
    ref = naive.bptt(cell, "sigmoid", {k: v.astype(np.float64) for k, v in params32.items()},
                     xs32.astype(np.float64), y32.astype(np.float64) if loss == "mse" else y32, loss)
    assert all(g.dtype == np.float64 for g in res.grads.values())
    assert all(p.dtype == np.float64 for p in case.net.params.values())
    assert res.trace.outputs.dtype == np.float64
    assert_close(res.grads, ref.grads, TOL, "grads")


def test_integer_inputs_and_one_dimensional_sequences():
    """A 1-D sequence is (T,) with n_in = 1; integer arrays are numbers too."""
    net = bl.make("elman", n_in=1, n_hidden=3, n_out=1, seed=4)
    xs = np.array([1, -2, 0, 3])
    y = np.array([0.5, -1.0, 0.0, 2.0])
    res = bl.bptt(net, xs, y)
    ref = naive.bptt("elman", "tanh", net.params, xs[:, None].astype(float), y[:, None], "mse")
    assert_close(res.grads, ref.grads, TOL, "grads")


@pytest.mark.parametrize("cell", CELLS)
def test_k2_at_least_T_is_full_bptt(cell):
    case = make_case(cell, "tanh", "mse", True, seed=9)
    full = engine(case)
    for k2 in (case.T, case.T + 3):
        assert_close(engine(case, k2=k2).grads, full.grads, 1e-12, f"k2={k2}")


@pytest.mark.parametrize("cell", CELLS)
def test_result_is_a_snapshot_of_the_parameters(cell):
    """by_loss is computed lazily, from the parameters the pass ran with, even if they change after."""
    case = make_case(cell, "tanh", "mse", False, seed=6)
    res = engine(case)
    expected = reference(case).by_loss
    case.net.params["W"] += 1.0
    assert_close(res.by_loss, expected, TOL, "by_loss after editing net.params")


@pytest.mark.parametrize("cell", CELLS)
def test_initialisations(cell):
    """normal: N(0, 1/fan_in), biases 0; orthogonal: orthonormal columns or rows; identity: W = I (IRNN);
    the same seed gives the same network, another seed another one."""
    big = bl.make(cell, n_in=40, n_hidden=60, n_out=50, seed=0)
    for name, p in big.params.items():
        if p.ndim == 1:
            assert np.all(p == 0)
        else:
            assert p.std() * np.sqrt(p.shape[1]) == pytest.approx(1.0, rel=0.05)
    W = bl.make(cell, n_in=2, n_hidden=5, n_out=5, init="orthogonal", seed=1).params["W"]
    assert rel_err(W.T @ W, np.eye(5)) < 1e-12
    W = bl.make(cell, n_in=2, n_hidden=3, n_out=3, activation="relu", init="identity", seed=1).params["W"]
    assert np.array_equal(W, np.eye(3))
    a, b, c = (bl.make(cell, n_in=2, n_hidden=3, n_out=3, seed=s).params for s in (7, 7, 8))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["U"], c["U"])
