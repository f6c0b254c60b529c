"""The engine against finite differences, to relative error 1e-7.

Two oracles that never run a backward recursion (tests/naive.py):

* ``fd_table``: central differences of each E_t with respect to the copy of the parameters used at step
  k give C[t][k]; its sums give by_loss, by_copy and the gradient, and masking gives truncation;
* ``fd_chain``: the chain rule assembled from finite-difference local Jacobians, which is what ("step",
  tau) clipping changes (it rescales the back-propagated dE/ds_t, so the result is no longer the
  derivative of anything).

For relu, the cases keep every pre-activation at least 1e-3 from the kink, far beyond the step 1e-6.
"""
from __future__ import annotations

import pytest

import bpttlab as bl
import naive
from engine_cases import (ACTIVATIONS, CELLS, LOSSES, REDUCTIONS, assert_close, biting_clip, engine, make_case)

TOL = 1e-7


def sums(table):
    """by_loss (row sums), by_copy (column sums) and the gradient from a C table."""
    return ({k: c.sum(axis=1) for k, c in table.items()}, {k: c.sum(axis=0) for k, c in table.items()},
            {k: c.sum(axis=(0, 1)) for k, c in table.items()})


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_engine_matches_finite_differences(cell, act, loss, reduction, batched):
    case = make_case(cell, act, loss, batched, seed=1, T=4, margin=1e-3, h0=batched)
    fd = naive.fd_table(cell, act, case.net.params, case.xs, case.y, loss, reduction, case.h0)

    # the reference the other tests trust agrees with the oracle too
    assert_close(naive.bptt(cell, act, case.net.params, case.xs, case.y, loss, reduction, h0=case.h0).table,
                 fd, TOL, "naive table")

    for k2 in (None, 2):
        table = naive.truncate(fd, k2)
        by_loss, by_copy, grads = sums(table)
        res = engine(case, reduction, k2)
        assert_close(res.grads, grads, TOL, f"grads k2={k2}")
        assert_close(res.by_loss, by_loss, TOL, f"by_loss k2={k2}")
        assert_close(res.by_copy, by_copy, TOL, f"by_copy k2={k2}")
        for name in ("W", "V"):
            C = bl.contributions(case.net, case.xs, case.y, name, loss=loss, reduction=reduction, k2=k2, h0=case.h0)
            assert_close({name: C}, {name: table[name]}, TOL, f"C[{name}] k2={k2}")
        for mode in ("norm", "value"):
            clip = biting_clip(case, mode, reduction, k2)
            assert_close(engine(case, reduction, k2, clip).grads, naive.clip_after(grads, clip), TOL,
                         f"clip {clip} k2={k2}")


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_step_clipping_matches_local_finite_differences(cell, act, batched):
    loss, reduction = ("mse", "sum") if batched else ("cross_entropy", "mean")
    case = make_case(cell, act, loss, batched, seed=2, T=4, margin=1e-3)
    transition, readout = naive.CHAIN_CELLS[cell]
    for k2 in (None, 2):
        clip = biting_clip(case, "step", reduction, k2)
        fd = naive.fd_chain(transition(act), readout, case.net.params, case.S, case.xs, case.y, loss, reduction,
                            k2=k2, tau=clip[1])
        res = engine(case, reduction, k2, clip)
        assert_close(res.grads, fd.grads, TOL, f"grads k2={k2}")
        assert_close(res.by_copy, fd.by_copy, TOL, f"by_copy k2={k2}")
        if k2 is not None:
            assert_close(res.by_loss, {k: c.sum(axis=1) for k, c in fd.table.items()}, TOL, "by_loss")


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_passes_and_its_differences_are_right(cell, act, loss):
    case = make_case(cell, act, loss, True, seed=3, T=3, margin=1e-3)
    fd = naive.fd_table(cell, act, case.net.params, case.xs, case.y, loss)
    report = bl.gradcheck(case.net, case.xs, case.y, loss=loss)
    assert report.passed, report
    assert report.max_error < 1e-6
    assert_close(report.numeric, sums(fd)[2], 1e-7, "gradcheck.numeric")
