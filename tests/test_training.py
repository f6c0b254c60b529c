"""bl.train, TBPTT(k1, k2), against the step-by-step reference in tests/naive.py.

The reference runs one time step at a time, keeps the parameter version each step ran with, and after
each block back-propagates the block's losses through those versions down to copy e - k2 + 1. With
k2 > k1 the window spans several versions, which is what tells "the computation as it happened" apart
from a recomputation with the current parameters.
"""
from __future__ import annotations

import numpy as np
import pytest

import bpttlab as bl
import naive
from engine_cases import CELLS, leaky_integrator, make_case, rel_err

TOL = 1e-10


def run_both(case, k1, k2, lr=0.1, epochs=2, **kw):
    net = case.net.copy()
    hist = bl.train(net, case.xs, case.y, k1=k1, k2=k2, lr=lr, epochs=epochs, loss=case.loss, h0=case.h0,
                    progress=False, **kw)
    ref = naive.tbptt(case.cell, case.act, case.net.params, case.xs, case.y, k1, k2, lr, loss=case.loss,
                      epochs=epochs, h0=case.h0, **kw)
    return net, hist, ref


def assert_same_run(net, hist, ref):
    assert len(hist.loss) == len(ref.loss)
    assert rel_err(hist.loss, ref.loss) < TOL
    assert rel_err(hist.grad_norm, ref.grad_norm) < TOL
    assert rel_err(hist.epoch_loss, ref.epoch_loss) < TOL
    for k in ref.params:
        assert rel_err(net.params[k], ref.params[k]) < TOL, k


@pytest.mark.parametrize("k1,k2", [(1, 1), (1, 3), (2, 2), (2, 5), (3, 4), (3, 7), (7, 7)])
@pytest.mark.parametrize("cell", CELLS)
def test_tbptt_matches_step_by_step_reference(cell, k1, k2):
    case = make_case(cell, "tanh", "mse", True, seed=10, T=7, B=2, h0=True)
    net, hist, ref = run_both(case, k1, k2, lr=0.3)
    assert len(hist.loss) == 2 * -(-7 // k1)
    assert (hist.k1, hist.k2) == (k1, k2)
    assert_same_run(net, hist, ref)


@pytest.mark.parametrize("clip_mode", ["norm", "value", "step"])
@pytest.mark.parametrize("cell", CELLS)
def test_tbptt_with_clipping_and_mean_matches_reference(cell, clip_mode):
    case = make_case(cell, "relu", "cross_entropy", True, seed=11, T=6, B=3)
    clip = (clip_mode, 0.02)
    net, hist, ref = run_both(case, 2, 3, lr=0.5, epochs=3, clip=clip, reduction="mean")
    assert_same_run(net, hist, ref)
    _, _, unclipped = run_both(case, 2, 3, lr=0.5, epochs=3, reduction="mean")
    assert rel_err(ref.params["W"], unclipped.params["W"]) > 1e-6, "clip did not bite"


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
@pytest.mark.parametrize("act", ["sigmoid", "identity"])
def test_tbptt_other_activations_and_unbatched(act, batched):
    case = make_case("jordan", act, "mse", batched, seed=12, T=5)
    assert_same_run(*run_both(case, 2, 4, lr=0.05, epochs=2))


@pytest.mark.parametrize("cell", CELLS)
def test_full_bptt_is_one_update_per_pass(cell):
    """k1 = k2 = T: one update with the full-BPTT gradient."""
    case = make_case(cell, "tanh", "mse", True, seed=13, T=5)
    grads = bl.bptt(case.net, case.xs, case.y).grads
    net = case.net.copy()
    hist = bl.train(net, case.xs, case.y, lr=0.1, epochs=1)
    assert len(hist.loss) == 1
    for k, g in grads.items():
        assert rel_err(net.params[k], case.net.params[k] - 0.1 * g) < 1e-12


@pytest.mark.parametrize("cell", CELLS)
def test_training_reduces_the_loss(cell):
    """Learn a leaky integrator y_t = 0.6 y_{t-1} + 0.5 x_t: the loss falls tenfold."""
    xs, y = leaky_integrator(T=20, B=4, decay=0.6, seed=0)
    net = bl.make(cell, n_in=1, n_hidden=8, n_out=1, seed=1)
    hist = bl.train(net, xs, y, k1=5, k2=10, lr=0.05, epochs=60, reduction="mean", clip=("norm", 1.0),
                    progress=False)
    assert hist.epoch_loss[-1] < 0.1 * hist.epoch_loss[0]
    assert len(hist.grad_norm) == 60 * 4
    assert "TBPTT(k1=5, k2=10)" in repr(hist)


def test_progress_bar_option(capsys):
    net = bl.make("elman", n_in=1, n_hidden=2, n_out=1, seed=0)
    xs = np.linspace(-1, 1, 6)[:, None]
    bl.train(net, xs, xs, k1=1, k2=1, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "TBPTT updates" in err and "12/12" in err
    bl.train(net, xs, xs, k1=1, k2=1, epochs=2, progress=False)
    assert capsys.readouterr().err == ""
    bl.train(net, xs, xs, k1=1, k2=1, epochs=2)  # few updates: no bar by default
    assert capsys.readouterr().err == ""
    bl.train(net, xs, xs, k1=1, k2=1, epochs=90)  # 540 updates: a bar by default
    assert "540/540" in capsys.readouterr().err
